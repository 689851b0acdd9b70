// The interactive shell (thesis 4.5): data commands over the public NATS contract, and process
// commands (kill, rmi-down, zk-down, …) through a ShellControl, in-process under `zistore up`
// or over the admin subject when attached with `zistore shell`.
import { createInterface } from 'node:readline';
import { readFileSync, appendFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ZiClient, ZiStoreError, ZiTimeoutError, type TxnCondition, type TxnWrite } from '../client/index.ts';
import type { NodeView } from '../cluster/local-cluster.ts';

const decoder = new TextDecoder();

/** What the shell may do to processes; present only when a `zistore up` is in charge. */
export interface ShellControl {
  newClient(): Promise<string>;
  kill(id: string): Promise<void>;
  restart(id: string): Promise<void>;
  rmiDown(id: string): Promise<void>;
  rmiUp(id: string): Promise<void>;
  zkDown(id: string): Promise<void>;
  zkUp(id: string): Promise<void>;
  view(): Promise<NodeView[]>;
  logFile?(id: string): Promise<string>;
}

export const HELP = `commands:
  get KEY [NODE]            read a key (at NODE, or any node)
  put KEY VALUE [NODE] [--ttl DURATION]
                            write a key (quote VALUE with "..." for spaces); with --ttl
                            (10s, 500ms, 2m) it is deleted that long after, unless kept alive
  keepalive KEY             restart the time to live of a key put with --ttl
  delete KEY [NODE]         delete a key
  scan [PREFIX] [--values] [--limit N] [--after KEY] [--node NODE]
                            keys in key order (a snapshot), with values when asked
  count [PREFIX] [--node NODE]  how many keys
  watch [PREFIX | --key KEY] [--after REV] [--count N] [--node NODE] [--poll]
                            print each change after REV (default: from now) as it happens,
                            in the background (with --count: the next N, then the prompt);
                            it resumes at another node by itself; changes come through a
                            node's change feed, or with --poll by long polls
  unwatch [ID]              stop one watch, or all
  txn [if KEY rev N | if KEY absent | if KEY is VALUE]... put KEY VALUE [--ttl DURATION] | delete KEY ...
                            writes at one revision, atomically, if every condition holds
  list                      members: role, state, epoch, leader, replica set, faults
  new-client                start one more node
  kill NODE                 kill -9 a node
  restart NODE              start a killed node again (same id)
  rmi-down NODE / rmi-up NODE   cut / restore NODE's messaging (its NATS connection)
  zk-down NODE / zk-up NODE     cut / restore NODE's ZooKeeper connection
  help                      this text
  quit                      leave (under 'zistore up': stop the cluster)`;

/** Splits a command line into words; "double quotes" keep spaces, \\" escapes a quote. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m !== null; m = re.exec(line)) {
    words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  }
  return words;
}

export class Shell {
  /** Watches running in the background, by the id printed when each started. */
  private readonly watches = new Map<number, AbortController>();
  private watchCount = 0;

  constructor(
    private readonly client: ZiClient,
    private readonly control: ShellControl | null,
    private readonly print: (text: string) => void,
  ) {}

  /** Runs one command line; returns false on quit. Never throws: errors are printed. */
  async run(line: string): Promise<boolean> {
    const [command, ...args] = splitWords(line.trim());
    if (command === undefined) return true;
    try {
      return await this.dispatch(command, args);
    } catch (err) {
      if (err instanceof ZiStoreError) this.print(`error ${err.code}: ${err.reason}`);
      else if (err instanceof ZiTimeoutError) this.print(`timeout: ${err.message}`);
      else this.print(`error: ${err instanceof Error ? err.message : String(err)}`);
      return true;
    }
  }

  private needControl(): ShellControl {
    if (!this.control) throw new Error('this command needs a cluster started by `zistore up`');
    return this.control;
  }

  /** `if KEY rev N`, `if KEY absent`, `if KEY is VALUE`, `put KEY VALUE`, `delete KEY`, in any number. */
  private static txnWords(args: string[]): { ops: TxnWrite[]; compare: TxnCondition[] } {
    const usage = new Error('usage: txn [if KEY rev N | if KEY absent | if KEY is VALUE]... put KEY VALUE [--ttl DURATION] | delete KEY ...');
    const ops: TxnWrite[] = [];
    const compare: TxnCondition[] = [];
    for (let i = 0; i < args.length; ) {
      const [word, key, a, b] = args.slice(i, i + 4);
      if (key === undefined) throw usage;
      if (word === 'put' && a !== undefined && b === '--ttl' && args[i + 4] !== undefined) {
        ops.push({ op: 'put', key, value: a, ttlMs: Shell.duration(args[i + 4]!) });
        i += 5;
      } else if (word === 'put' && a !== undefined) {
        ops.push({ op: 'put', key, value: a });
        i += 3;
      } else if (word === 'delete') {
        ops.push({ op: 'delete', key });
        i += 2;
      } else if (word === 'if' && a === 'absent') {
        compare.push({ key, absent: true });
        i += 3;
      } else if (word === 'if' && a === 'rev' && b !== undefined && /^\d+$/.test(b)) {
        compare.push({ key, revision: Number(b) });
        i += 4;
      } else if (word === 'if' && a === 'is' && b !== undefined) {
        compare.push({ key, value: b });
        i += 4;
      } else {
        throw usage;
      }
    }
    if (ops.length === 0) throw usage;
    return { ops, compare };
  }

  /** Splits `--name` switches and `--name VALUE` options from the other words. */
  private static flags(command: string, args: string[], switches: string[], options: string[], usage: string): { words: string[]; flags: Record<string, string | undefined> } {
    const words: string[] = [];
    const flags: Record<string, string | undefined> = {};
    for (let i = 0; i < args.length; i++) {
      const name = args[i]!.startsWith('--') ? args[i]!.slice(2) : null;
      if (name === null) words.push(args[i]!);
      else if (switches.includes(name)) flags[name] = '';
      else if (options.includes(name) && i + 1 < args.length) flags[name] = args[++i]!;
      else throw new Error(`usage: ${command} ${usage}`);
    }
    return { words, flags };
  }

  /** "10s", "500ms", "2m", "1h", or plain milliseconds. */
  private static duration(text: string): number {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
    if (m === null) throw new Error(`not a duration: ${text} (e.g. 10s, 500ms, 2m)`);
    const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
    if (!Number.isSafeInteger(Math.round(ms)) || ms < 1) throw new Error(`duration out of range: ${text}`);
    return Math.round(ms);
  }

  private static arity(command: string, args: string[], min: number, max: number, usage: string): void {
    if (args.length < min || args.length > max) throw new Error(`usage: ${command} ${usage}`);
  }

  private async dispatch(command: string, args: string[]): Promise<boolean> {
    switch (command) {
      case 'get': {
        Shell.arity(command, args, 1, 2, 'KEY [NODE]');
        const r = await this.client.get(args[0]!, { node: args[1] });
        this.print(r === null ? '(not found)' : `${JSON.stringify(r.text())} (revision ${r.revision})`);
        return true;
      }
      case 'put': {
        const usage = 'KEY VALUE [NODE] [--ttl DURATION]';
        const { words, flags } = Shell.flags(command, args, [], ['ttl'], usage);
        Shell.arity(command, words, 2, 3, usage);
        const ttlMs = flags.ttl === undefined ? undefined : Shell.duration(flags.ttl);
        const r = await this.client.put(words[0]!, words[1]!, { node: words[2], ttlMs });
        this.print(`ok (revision ${r.revision}${ttlMs !== undefined ? `, expires in ${flags.ttl} unless kept alive` : ''})`);
        return true;
      }
      case 'keepalive': {
        Shell.arity(command, args, 1, 1, 'KEY');
        const r = await this.client.keepAlive(args[0]!);
        this.print(`kept alive (revision ${r.revision})`);
        return true;
      }
      case 'delete': {
        Shell.arity(command, args, 1, 2, 'KEY [NODE]');
        const r = await this.client.delete(args[0]!, { node: args[1] });
        this.print(`deleted (revision ${r.revision})`);
        return true;
      }
      case 'scan': {
        const { words, flags } = Shell.flags(command, args, ['values'], ['limit', 'after', 'node'], '[PREFIX] [--values] [--limit N] [--after KEY] [--node NODE]');
        Shell.arity(command, words, 0, 1, '[PREFIX] [--values] [--limit N] [--after KEY] [--node NODE]');
        const limit = flags.limit === undefined ? 100 : Number(flags.limit);
        if (!Number.isSafeInteger(limit) || limit < 1) throw new Error('--limit must be a positive integer');
        const page = await this.client.scan({ prefix: words[0], values: flags.values !== undefined, limit, after: flags.after, node: flags.node });
        for (const e of page.entries) this.print(e.value === undefined ? `${e.key} (revision ${e.revision})` : `${e.key} = ${JSON.stringify(decoder.decode(e.value))} (revision ${e.revision})`);
        this.print(`${page.entries.length} key(s) at revision ${page.revision}${page.more ? `; more: scan ${words[0] ?? '""'} --after ${JSON.stringify(page.next)}` : ''}`);
        return true;
      }
      case 'count': {
        const { words, flags } = Shell.flags(command, args, [], ['node'], '[PREFIX] [--node NODE]');
        Shell.arity(command, words, 0, 1, '[PREFIX] [--node NODE]');
        const r = await this.client.count({ prefix: words[0], node: flags.node });
        this.print(`${r.count} key(s) at revision ${r.revision}`);
        return true;
      }
      case 'watch': {
        const usage = '[PREFIX | --key KEY] [--after REV] [--count N] [--node NODE] [--poll]';
        const { words, flags } = Shell.flags(command, args, ['poll'], ['key', 'after', 'count', 'node'], usage);
        Shell.arity(command, words, 0, flags.key === undefined ? 1 : 0, usage);
        const after = flags.after === undefined ? undefined : Number(flags.after);
        if (after !== undefined && !(Number.isSafeInteger(after) && after >= 0)) throw new Error('--after must be a revision (0 or more)');
        const count = flags.count === undefined ? undefined : Number(flags.count);
        if (count !== undefined && !(Number.isSafeInteger(count) && count >= 1)) throw new Error('--count must be a positive integer');
        const watching = this.watch({ key: flags.key, prefix: words[0], afterRevision: after, node: flags.node, push: flags.poll === undefined }, count);
        if (count !== undefined) await watching;
        return true;
      }
      case 'unwatch': {
        Shell.arity(command, args, 0, 1, '[ID]');
        const ids = args[0] === undefined ? [...this.watches.keys()] : [Number(args[0])];
        if (ids.length === 0 || !ids.every((id) => this.watches.has(id))) throw new Error(args[0] === undefined ? 'no watch is running' : `no watch ${args[0]}`);
        for (const id of ids) this.watches.get(id)!.abort();
        return true;
      }
      case 'txn': {
        const { ops, compare } = Shell.txnWords(args);
        const r = await this.client.txn(ops, compare);
        this.print(`ok (revision ${r.revision}, ${r.written} key(s) written)`);
        return true;
      }
      case 'list':
        Shell.arity(command, args, 0, 0, '');
        await this.list();
        return true;
      case 'new-client': {
        Shell.arity(command, args, 0, 0, '');
        this.print(`started ${await this.needControl().newClient()}`);
        return true;
      }
      case 'kill':
      case 'restart':
      case 'rmi-down':
      case 'rmi-up':
      case 'zk-down':
      case 'zk-up': {
        Shell.arity(command, args, 1, 1, 'NODE');
        const control = this.needControl();
        const id = args[0]!;
        const action = {
          kill: () => control.kill(id),
          restart: () => control.restart(id),
          'rmi-down': () => control.rmiDown(id),
          'rmi-up': () => control.rmiUp(id),
          'zk-down': () => control.zkDown(id),
          'zk-up': () => control.zkUp(id),
        }[command];
        await action();
        this.print(`${command} ${id}: done`);
        return true;
      }
      case 'help':
      case '?':
        this.print(HELP);
        return true;
      case 'quit':
      case 'exit':
        return false;
      default:
        throw new Error(`unknown command '${command}' (type 'help')`);
    }
  }

  /** Start a watch printing its changes as they come; it runs until `count` changes, unwatch or quit. */
  private watch(options: { key?: string; prefix?: string; afterRevision?: number; node?: string; push: boolean }, count = Infinity): Promise<void> {
    const id = ++this.watchCount;
    const abort = new AbortController();
    this.watches.set(id, abort);
    const what = options.key !== undefined ? `key ${JSON.stringify(options.key)}` : options.prefix ? `prefix ${JSON.stringify(options.prefix)}` : 'every key';
    this.print(`watch ${id}: ${what}${options.afterRevision !== undefined ? ` after revision ${options.afterRevision}` : ''} ('unwatch ${id}' stops it)`);
    return (async () => {
      try {
        let printed = 0;
        for await (const e of this.client.watch({ ...options, signal: abort.signal })) {
          const value = e.value === null ? '' : ` = ${JSON.stringify(decoder.decode(e.value))}`;
          this.print(`[watch ${id}] ${e.kind} ${e.key}${value} (revision ${e.revision})`);
          if (++printed >= count) break;
        }
        this.print(`[watch ${id}] stopped`);
      } catch (err) {
        this.print(`[watch ${id}] ended: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        this.watches.delete(id);
      }
    })();
  }

  /** Stop every watch (the shell is leaving). */
  stopWatches(): void {
    for (const abort of this.watches.values()) abort.abort();
  }

  private async list(): Promise<void> {
    const processes = this.control ? await this.control.view() : null;
    const ids = processes ? processes.map((p) => p.id) : (await this.client.members()).members.map((m) => m.id);
    const rows: string[][] = [['node', 'role', 'state', 'keys', 'epoch', 'leader', 'pid', 'rmi', 'zk']];
    let replicas: string[] | null = null;
    for (const id of ids) {
      const proc = processes?.find((p) => p.id === id);
      const row = [id, '-', proc && !proc.running ? 'down' : 'unreachable', '-', '-', '-', String(proc?.pid ?? '-'), proc?.rmi ?? '-', proc?.zk ?? '-'];
      if (!proc || proc.running) {
        try {
          const view = await this.client.members({ node: id, timeoutMs: 1500 });
          const self = view.members.find((m) => m.id === id);
          row[1] = self?.role ?? '-';
          row[2] = self?.state ?? '-';
          row[3] = self?.keys === undefined ? '-' : String(self.keys);
          row[4] = String(view.epoch);
          row[5] = view.leader ?? '-';
          if (view.leader === id || replicas === null) replicas = view.replicas;
        } catch {
          // unreachable over NATS (rmi-down, paused or starting): the row says so
        }
      }
      rows.push(row);
    }
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const r of rows) this.print(r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd());
    this.print(`replica set: ${replicas ? replicas.join(', ') || '(empty)' : 'unknown'}`);
  }
}

const HISTORY_FILE = join(homedir(), '.zistore_history');

function loadHistory(): string[] {
  try {
    return readFileSync(HISTORY_FILE, 'utf8').split('\n').filter(Boolean).reverse().slice(0, 500);
  } catch {
    return [];
  }
}

/** An interactive prompt with history (kept in ~/.zistore_history). Resolves on quit or EOF. */
export async function interactiveShell(shell: Shell, banner: string): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: 'zistore> ', history: loadHistory(), historySize: 500 });
  rl.on('SIGINT', () => rl.close()); // Ctrl-C leaves like quit
  process.stdout.write(`${banner}\ntype 'help' for commands\n`);
  rl.prompt();
  for await (const line of rl) {
    if (line.trim()) {
      try {
        appendFileSync(HISTORY_FILE, `${line}\n`);
      } catch {
        // history is a convenience; a read-only home must not break the shell
      }
    }
    if (!(await shell.run(line))) break;
    rl.prompt();
  }
  shell.stopWatches();
  rl.close();
}

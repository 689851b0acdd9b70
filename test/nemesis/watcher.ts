// A watcher through the whole nemesis run: the typed client's watch of every key from revision 0,
// resuming by itself across the faults. What it reported must be every acknowledged write of the
// revisions it covered, once, in revision order, and nothing that was not written
// (test/check/watch-check.ts): a watch that skips, repeats or invents fails the run. A watch may
// end with 410 when no node kept the history it needed (docs/PROTOCOL.md "Watch"), a failure of the
// run here (runner.ts); the watcher records it (`ended`) and starts a new watch from the current
// revision, as a user would after a scan, so the check still covers each watch's own span.
import type { NatsConnection } from 'nats';
import { ZiClient, ZiStoreError } from '../../client/index.ts';
import type { Operation } from '../check/history.ts';
import { checkChangeLogs, type NodeChanges } from '../check/watch-check.ts';

/** One watch, from `after` (exclusive) to `reached`, and what it reported. */
interface Span {
  after: number | null;
  reached: number;
  changes: NodeChanges['changes'];
}

export class RunWatcher {
  private readonly spans: Span[] = [];
  /** Why watches ended early (410). */
  readonly ended: string[] = [];
  private failure: unknown = null;
  private readonly abort = new AbortController();
  private readonly running: Promise<void>;

  /** `push`: through the nodes' change feeds (watch({push: true})) rather than long polls. */
  constructor(nc: NatsConnection, cluster: string, timeoutMs: number, private readonly push: boolean) {
    const client = new ZiClient(nc, { cluster, timeoutMs });
    const decoder = new TextDecoder();
    this.running = (async () => {
      let afterRevision: number | undefined = 0;
      while (!this.abort.signal.aborted) {
        const span: Span = { after: afterRevision ?? null, reached: afterRevision ?? 0, changes: [] };
        this.spans.push(span);
        const onProgress = (r: number) => {
          span.after ??= r;
          span.reached = r;
        };
        try {
          for await (const e of client.watch({ afterRevision, waitMs: 1000, push, signal: this.abort.signal, onProgress })) {
            span.changes.push({ rev: e.revision, key: e.key, kind: e.kind, value: e.value === null ? null : decoder.decode(e.value) });
          }
        } catch (err) {
          if (!(err instanceof ZiStoreError && err.code === 410)) {
            this.failure = err;
            return;
          }
          this.ended.push(`after revision ${span.reached}: ${err.reason}`);
          afterRevision = undefined; // from now on
        }
      }
    })();
  }

  get name(): string {
    return this.push ? 'push watcher' : 'watcher';
  }

  /** The newest revision the watch has reached. */
  private get reached(): number {
    return this.spans.at(-1)?.reached ?? 0;
  }

  /** Once the watch has reached the newest acknowledged revision (or `timeoutMs` passed), stop it and say what is wrong. */
  async finish(history: readonly Operation[], timeoutMs: number): Promise<string[]> {
    const newest = Math.max(0, ...history.map((op) => (op.output.status === 'ok' ? (op.output.revision ?? 0) : 0)));
    const deadline = performance.now() + timeoutMs;
    while (this.failure === null && this.reached < newest && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.abort.abort();
    await this.running;
    const problems: string[] = [];
    if (this.failure !== null) problems.push(`the watch failed: ${this.failure instanceof Error ? this.failure.message : String(this.failure)}`);
    else if (this.reached < newest) problems.push(`the watch reached revision ${this.reached} only, ${timeoutMs / 1000}s after the end; the newest acknowledged write is at ${newest}`);
    const logs = this.spans.filter((s) => s.after !== null).map((s, i) => ({ node: `watch ${i + 1}`, floor: s.after!, stable: s.reached, changes: s.changes }));
    for (const p of checkChangeLogs(history, logs)) problems.push(`watch: ${p}`);
    return problems;
  }

  get count(): number {
    return this.spans.reduce((n, s) => n + s.changes.length, 0);
  }
}

// A typed client for the ZiStore contract (PROTOCOL.md) over any NATS connection.
//   import { connect } from 'zistore';
//   const kv = await connect({ servers: 'nats://127.0.0.1:4222' });
//   const { revision } = await kv.put('greeting', 'hello');
import { Buffer } from 'node:buffer';
import { connect as natsConnect, headers as natsHeaders, type ConnectionOptions, type Msg, type NatsConnection, type Subscription } from 'nats';
import { BusTimeoutError, NoRespondersError } from '../bus/errors.ts';
// A call on a closed connection rejects with it.
export { BusClosedError } from '../bus/errors.ts';
import { RequestMux } from '../bus/request-mux.ts';

import { FAILED_COMPARE_HEADER, IF_REVISION_HEADER, KEY_HEADER, REVISION_HEADER, TTL_HEADER } from '../actors/protocol.ts';
import { SCAN_HEADERS, readBinaryScanReply, type ScanForm, type ScanResult } from '../actors/scan.ts';
import type { TxnResult } from '../actors/txn.ts';
import { FEED_HEARTBEAT_MS, WATCH_HEADERS, type WatchResult } from '../actors/watch.ts';
export type { TxnResult } from '../actors/txn.ts';
import { subjects } from '../bus/subjects.ts';
import { credentialsConnectOptions, findCredentials } from './credentials.ts';
import { WatchRetry, type WatchFailure } from './watch-retry.ts';
export { CredentialsError, credentialsPath, readCredentials, type ZiCredentials } from './credentials.ts';

// Wire names and shapes are the nodes' own: one definition.
export { FAILED_COMPARE_HEADER, IF_REVISION_HEADER, KEY_HEADER, REVISION_HEADER, TTL_HEADER } from '../actors/protocol.ts';
export type { MembersView } from '../actors/protocol.ts';
import type { ClientOp, MembersView } from '../actors/protocol.ts';

/** A request the store answered with an error code (PROTOCOL.md "Errors"). */
export class ZiStoreError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    /** A transaction's 409: the index of the first compare that did not hold. */
    readonly failedCompare?: number,
  ) {
    super(`${code} ${reason}`);
    this.name = 'ZiStoreError';
  }
  /** 503: guaranteed to have had no effect; safe to retry. */
  get retryable(): boolean {
    return this.code === 503;
  }
}

/** No reply in time: the outcome is unknown, as with ZooKeeper's ConnectionLoss. */
export class ZiTimeoutError extends Error {
  constructor(subject: string, options?: { cause?: unknown }) {
    super(`no reply on ${subject} in time; the outcome is unknown`, options);
    this.name = 'ZiTimeoutError';
  }
}

export interface GetResult {
  value: Uint8Array;
  revision: number;
  text(): string;
}

export interface CallOptions {
  /** Send to this node only (`zistore.<cluster>.node.<node>.*`). */
  node?: string;
  /** Per-call timeout; default the client's timeoutMs. */
  timeoutMs?: number;
}

export interface WriteOptions extends CallOptions {
  /** Succeed only if the key is at this revision; 0 = the key must not exist. */
  ifRevision?: number;
}

export interface PutOptions extends WriteOptions {
  /** The cluster deletes the key this many ms after the put or its last keepAlive (PROTOCOL.md "Expiring keys"). */
  ttlMs?: number;
}

/** Which keys a scan covers (PROTOCOL.md "Scan"); every bound is optional. */
export interface ScanRange {
  /** Keys starting with this. */
  prefix?: string;
  /** Keys at or above this. */
  from?: string;
  /** Keys below this. */
  to?: string;
}

export interface ScanOptions extends ScanRange, CallOptions {
  /** Keys above this one: the `next` of the previous page. */
  after?: string;
  /** At most this many entries (default 1000, at most 10,000). */
  limit?: number;
  /** Return the values too (default: keys and revisions only). */
  values?: boolean;
}

export interface ScanEntry {
  key: string;
  revision: number;
  /** With `values: true` only. */
  value?: Uint8Array;
}

/** One reply: a snapshot of one point in time, at `revision`. */
export interface ScanPage {
  revision: number;
  entries: ScanEntry[];
  /** More keys follow: ask again with `after: next`. */
  more: boolean;
  next?: string;
}

/** A transaction's condition on one key: at this revision, absent, or holding exactly this value. */
export type TxnCondition = { key: string; revision: number } | { key: string; absent: true } | { key: string; value: Uint8Array | string };

/** A transaction's write. */
/** A transaction's write; a put's `ttlMs` makes the key expire, as PutOptions.ttlMs does. */
export type TxnWrite = { op: 'put'; key: string; value: Uint8Array | string; ttlMs?: number } | { op: 'delete'; key: string };

/** A change a watch reports (PROTOCOL.md "Watch"). */
export interface WatchEvent {
  kind: 'put' | 'delete' | 'expire';
  key: string;
  revision: number;
  /** The value put; null for a delete or an expiry. */
  value: Uint8Array | null;
}

export interface WatchOptions {
  /** Changes of this key only. */
  key?: string;
  /** Changes of every key starting with this (default: every key). */
  prefix?: string;
  /** Start after this revision (the last one seen); default: from now. */
  afterRevision?: number;
  /** How long each request waits for a change at the node, ms (default 10,000). */
  waitMs?: number;
  /** Start at this node; after a failure the watch goes on at any node. */
  node?: string;
  /** Ends the watch (the iterator returns). */
  signal?: AbortSignal;
  /** Called with each revision the watch has reached, events or not (progress on an idle watch). */
  onProgress?: (revision: number) => void;
  /**
   * Have changes pushed through a node's change feed (PROTOCOL.md "Watch", "Push") rather than
   * asked for by long polls: one message per change for every watcher, fanned out by NATS. Same
   * guarantees; a missed message is fetched, a silent node is left for another. Default false.
   */
  push?: boolean;
}

/** Internal: the headers a call sends. */
interface SendOptions extends WriteOptions {
  headers?: Record<string, string>;
}

export interface ClientOptions {
  cluster?: string;
  /** Default 5000: a little longer than a node's 4 s operation timeout. */
  timeoutMs?: number;
  /** Retries of a 503 (which had no effect), with exponential backoff from 20 ms; default 8 (about 5 s in all, longer than a failover). */
  retries503?: number;
  /** Send writes straight to the leader when it is known (saves the forwarding hop); default true. */
  writesToLeader?: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const toBytes = (v: Uint8Array | string) => (typeof v === 'string' ? encoder.encode(v) : v);

export class ZiClient {
  readonly cluster: string;
  readonly timeoutMs: number;
  private readonly retries503: number;
  private readonly writesToLeader: boolean;
  /** The leader as last reported by `members`; null when unknown (then any node takes writes). */
  private leader: string | null = null;
  private leaderLookup: Promise<void> | null = null;
  private readonly requests: RequestMux;
  /** Every node id `members` has named (as a member or a replica). */
  private readonly nodesSeen = new Set<string>();

  constructor(
    readonly nc: NatsConnection,
    options: ClientOptions = {},
  ) {
    this.requests = new RequestMux(nc);
    this.cluster = options.cluster ?? 'default';
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.retries503 = options.retries503 ?? 8;
    this.writesToLeader = options.writesToLeader ?? true;
  }

  subject(op: ClientOp, node?: string): string {
    return node ? subjects.nodeClient(this.cluster, node, op) : subjects.client(this.cluster, op);
  }

  /** Retries 503s (no effect, safe) with backoff within the call's time budget; nothing else. */
  private async call(op: ClientOp, key: string | null, body: Uint8Array, opts: SendOptions = {}): Promise<Msg> {
    const budgetMs = opts.timeoutMs ?? this.timeoutMs;
    const started = Date.now();
    const isWrite = op === 'put' || op === 'delete' || op === 'txn' || op === 'keepalive';
    for (let attempt = 0; ; attempt++) {
      const node = opts.node ?? (isWrite && this.writesToLeader ? this.knownLeader() : undefined);
      const leftMs = budgetMs - (Date.now() - started);
      try {
        return await this.callOnce(op, key, body, { ...opts, node, timeoutMs: Math.max(1, leftMs) });
      } catch (err) {
        if (!(err instanceof ZiStoreError) || err.code !== 503) throw err;
        if (node !== undefined && opts.node === undefined) this.leader = null; // stale leader: ask again
        const backoffMs = 20 * 2 ** attempt;
        if (attempt >= this.retries503 || Date.now() - started + backoffMs >= budgetMs) throw err;
        await new Promise((r) => setTimeout(r, backoffMs));
      }
    }
  }

  /** The cached leader; starts a lookup in the background when there is none. */
  private knownLeader(): string | undefined {
    if (this.leader === null && this.leaderLookup === null) {
      this.leaderLookup = this.members({ timeoutMs: 1000 })
        .then((view) => {
          if (view.members.some((m) => m.id === view.leader && m.state === 'serving')) this.leader = view.leader;
        })
        .catch(() => undefined)
        .finally(() => {
          this.leaderLookup = null;
        });
    }
    return this.leader ?? undefined;
  }

  private async callOnce(op: ClientOp, key: string | null, body: Uint8Array, opts: SendOptions = {}): Promise<Msg> {
    const h = natsHeaders();
    if (key !== null) h.set(KEY_HEADER, key);
    for (const [name, value] of Object.entries(opts.headers ?? {})) h.set(name, value);
    if (opts.ifRevision !== undefined) h.set(IF_REVISION_HEADER, String(opts.ifRevision));
    const subject = this.subject(op, opts.node);
    let msg: Msg;
    try {
      msg = await this.requests.request(subject, body, opts.timeoutMs ?? this.timeoutMs, h);
    } catch (err) {
      if (err instanceof BusTimeoutError) throw new ZiTimeoutError(subject, { cause: err });
      if (err instanceof NoRespondersError) throw new ZiStoreError(503, 'no node is serving this subject');
      throw err;
    }
    const errorCode = msg.headers?.get('Nats-Service-Error-Code');
    if (errorCode) {
      const failed = msg.headers?.get(FAILED_COMPARE_HEADER);
      throw new ZiStoreError(Number(errorCode), msg.headers?.get('Nats-Service-Error') ?? '', failed ? Number(failed) : undefined);
    }
    return msg;
  }

  private static revision(msg: Msg): number {
    return Number(msg.headers?.get(REVISION_HEADER) ?? NaN);
  }

  /** The value and its revision, or null when the key does not exist. */
  async get(key: string, opts?: CallOptions): Promise<GetResult | null> {
    try {
      const msg = await this.call('get', key, new Uint8Array(0), opts);
      const value = msg.data;
      return { value, revision: ZiClient.revision(msg), text: () => decoder.decode(value) };
    } catch (err) {
      if (err instanceof ZiStoreError && err.code === 404) return null;
      throw err;
    }
  }

  async put(key: string, value: Uint8Array | string, opts: PutOptions = {}): Promise<{ revision: number }> {
    const { ttlMs, ...rest } = opts;
    const headers = ttlMs !== undefined ? { [TTL_HEADER]: String(ttlMs) } : undefined;
    return { revision: ZiClient.revision(await this.call('put', key, toBytes(value), { ...rest, headers })) };
  }

  /** Restart the time to live of a key put with `ttlMs`, without writing it; its revision. 404 (ZiStoreError) once it has expired. */
  async keepAlive(key: string, opts?: CallOptions): Promise<{ revision: number }> {
    return { revision: ZiClient.revision(await this.call('keepalive', key, new Uint8Array(0), opts)) };
  }

  async delete(key: string, opts?: WriteOptions): Promise<{ revision: number }> {
    return { revision: ZiClient.revision(await this.call('delete', key, new Uint8Array(0), opts)) };
  }

  /** One page of keys (and values) in key order, a snapshot at one point in time; any node answers. */
  async scan(opts: ScanOptions = {}): Promise<ScanPage> {
    // The binary form: values as their bytes, no base64 or JSON to write and read.
    const msg = await this.scanMessage(opts.values ? 'values' : 'keys', opts, { [SCAN_HEADERS.format]: 'binary' });
    const { revision, more, entries } = readBinaryScanReply(msg.data);
    return { revision, entries, more, ...(more && entries.length > 0 ? { next: entries.at(-1)!.key } : {}) };
  }

  /** Every entry of the range, page after page (each page its own snapshot: see its revision). */
  async *scanAll(opts: Omit<ScanOptions, 'after'> = {}): AsyncGenerator<ScanEntry> {
    let after: string | undefined;
    for (;;) {
      const page = await this.scan({ ...opts, ...(after !== undefined ? { after } : {}) });
      yield* page.entries;
      if (!page.more) return;
      after = page.next;
    }
  }

  /** How many keys the range holds, and the revision of that snapshot. */
  async count(opts: ScanRange & CallOptions = {}): Promise<{ count: number; revision: number }> {
    const { count, revision } = JSON.parse(decoder.decode((await this.scanMessage('count', opts)).data)) as ScanResult;
    return { count, revision };
  }

  private async scanMessage(form: ScanForm, opts: ScanOptions, extra: Record<string, string> = {}) {
    const headers: Record<string, string> = { [SCAN_HEADERS.form]: form, ...extra };
    for (const field of ['prefix', 'from', 'to', 'after', 'limit'] as const) if (opts[field] !== undefined) headers[SCAN_HEADERS[field]] = String(opts[field]);
    return this.call('scan', null, new Uint8Array(0), { node: opts.node, timeoutMs: opts.timeoutMs, headers });
  }

  /**
   * Writes every op at one revision if every compare holds, atomically (PROTOCOL.md
   * "Transactions"). A compare that does not hold throws ZiStoreError 409 (with the index of the
   * first compare that did not: failedCompare) and writes nothing.
   */
  async txn(ops: TxnWrite[], compare: TxnCondition[] = [], opts: CallOptions = {}): Promise<TxnResult> {
    const b64 = (v: Uint8Array | string) => Buffer.from(toBytes(v)).toString('base64');
    const body = JSON.stringify({
      compare: compare.map((c) => ('value' in c ? { key: c.key, value: b64(c.value) } : c)),
      ops: ops.map((o) => (o.op === 'put' ? { op: 'put', key: o.key, value: b64(o.value), ...(o.ttlMs !== undefined ? { ttl: o.ttlMs } : {}) } : { op: 'delete', key: o.key })),
    });
    const msg = await this.call('txn', null, encoder.encode(body), opts);
    return JSON.parse(decoder.decode(msg.data)) as TxnResult;
  }

  /**
   * The changes of a key or a prefix, each exactly once, in revision order, as an async iterator
   * (PROTOCOL.md "Watch"). It resumes by itself at another node when its node fails or falls
   * behind, from the last revision it reached, so nothing is skipped or repeated. It throws
   * ZiStoreError 410 only when no node keeps the history it needs (older than every node's
   * retention): every node it has heard of answered 410, or those that did not stayed
   * unreachable for 30 s (HISTORY_SEARCH_MS). It ends when `signal` aborts.
   */
  async *watch(opts: WatchOptions = {}): AsyncGenerator<WatchEvent> {
    if (opts.push === true) {
      yield* this.pushedWatch(opts);
      return;
    }
    const waitMs = opts.waitMs ?? 10_000;
    const { signal } = opts;
    const stopped = new Promise<null>((resolve) => {
      if (signal?.aborted) resolve(null);
      signal?.addEventListener('abort', () => resolve(null), { once: true });
    });
    let after = opts.afterRevision;
    let node = opts.node;
    const retry = this.watchRetry();
    while (!signal?.aborted) {
      // From now: a first request that does not wait fixes where "now" is, at once.
      const headers = watchHeaders(opts, after, after === undefined ? 0 : waitMs);
      let msg: Msg | null;
      try {
        msg = await Promise.race([this.callOnce('watch', null, new Uint8Array(0), { node, headers, timeoutMs: waitMs + this.timeoutMs }), stopped]);
      } catch (err) {
        node = await retry.nextNode(err, watchFailure(err), node, stopped);
        continue;
      }
      if (msg === null) return;
      retry.succeeded();
      const result = JSON.parse(decoder.decode(msg.data)) as WatchResult;
      for (const e of result.events) yield watchEvent(e);
      after = result.revision;
      opts.onProgress?.(after);
    }
  }

  /**
   * watch() with `push`: subscribes to one serving node's change feed, then catches up from
   * `afterRevision` with a watch request there (no wait). A feed message carries every key's
   * changes in (its Zi-After-Revision, its Zi-Revision]: it is taken when it starts at or below
   * where the watch stands, and a gap before it is filled by another watch request. A node whose
   * feed is silent for FEED_SILENCE_MS (it sends a heartbeat every FEED_HEARTBEAT_MS while it
   * serves), or that fails a request, is left for another, from the same revision.
   */
  private async *pushedWatch(opts: WatchOptions): AsyncGenerator<WatchEvent> {
    const { signal } = opts;
    const stopped = new Promise<null>((resolve) => {
      if (signal?.aborted) resolve(null);
      signal?.addEventListener('abort', () => resolve(null), { once: true });
    });
    const wanted = (key: string) => (opts.key !== undefined ? key === opts.key : key.startsWith(opts.prefix ?? ''));
    let after = opts.afterRevision;
    let node = opts.node;
    const retry = this.watchRetry();
    const decode = (data: Uint8Array) => JSON.parse(decoder.decode(data)) as WatchResult;
    while (!signal?.aborted) {
      const feed = new FeedQueue();
      try {
        node ??= await this.servingNode();
        feed.start(this.nc, subjects.changes(this.cluster, node));
        await this.nc.flush();
        // Every change up to where `node` stands now; the feed has the rest.
        for (let more = true; more; ) {
          const msg = await Promise.race([this.callOnce('watch', null, new Uint8Array(0), { node, headers: watchHeaders(opts, after, 0), timeoutMs: this.timeoutMs }), stopped]);
          if (msg === null) return;
          const result = decode(msg.data);
          for (const e of result.events) yield watchEvent(e);
          after = result.revision;
          more = result.more;
          opts.onProgress?.(after);
        }
        retry.succeeded();
        for (;;) {
          const msg = await Promise.race([feed.next(FEED_SILENCE_MS), stopped]);
          if (msg === null) return;
          if (msg === 'silent') throw new ZiStoreError(503, `node ${node}'s change feed is silent`);
          const from = Number(msg.headers?.get(WATCH_HEADERS.after));
          const through = Number(msg.headers?.get(REVISION_HEADER));
          if (!Number.isSafeInteger(from) || !Number.isSafeInteger(through)) throw new ZiStoreError(503, `node ${node}'s change feed sent a message without its revisions`);
          if (through <= after!) continue;
          // A message missed (a slow consumer, a reconnect): ask the node for what lies between.
          if (from > after!) break;
          for (const e of decode(msg.data).events) if (e.revision > after! && wanted(e.key)) yield watchEvent(e);
          after = through;
          opts.onProgress?.(after);
        }
      } catch (err) {
        node = await retry.nextNode(err, watchFailure(err), node, stopped);
      } finally {
        feed.stop();
      }
    }
  }

  /**
   * A watch looking for its history asks every node this client has heard of, not only the
   * members of the moment: a node restarting is missing from them for a while, with its history.
   */
  private watchRetry(): WatchRetry {
    return new WatchRetry(async () => {
      await this.members({ timeoutMs: this.timeoutMs }).catch(() => null);
      return this.nodesSeen.size > 0 ? [...this.nodesSeen] : null;
    });
  }

  /** A member that says it serves, at random (spreads watchers over the nodes); 503 when none. */
  private async servingNode(): Promise<string> {
    const serving = (await this.members({ timeoutMs: this.timeoutMs })).members.filter((m) => m.state === 'serving');
    if (serving.length === 0) throw new ZiStoreError(503, 'no node is serving');
    return serving[Math.floor(Math.random() * serving.length)]!.id;
  }

  async members(opts?: CallOptions): Promise<MembersView> {
    const msg = await this.callOnce('members', null, new Uint8Array(0), { timeoutMs: this.timeoutMs, ...opts });
    const view = JSON.parse(decoder.decode(msg.data)) as MembersView;
    for (const m of view.members) this.nodesSeen.add(m.id);
    for (const id of view.replicas) this.nodesSeen.add(id);
    return view;
  }
}

/**
 * Connect to NATS and return a client; `close()` closes the connection. Without credentials of its
 * own (user, token or authenticator) it uses those of `creds` (a credentials file), or else those
 * `zistore up --secure` wrote for this cluster and these servers (client/credentials.ts).
 */
export async function connect(options: ConnectionOptions & ClientOptions & { creds?: string } = {}): Promise<ZiClient & { close(): Promise<void> }> {
  const { cluster, timeoutMs, retries503, writesToLeader, creds, ...natsOptions } = options;
  const servers = natsOptions.servers === undefined ? undefined : ([] as string[]).concat(natsOptions.servers);
  const own = natsOptions.user !== undefined || natsOptions.token !== undefined || natsOptions.authenticator !== undefined;
  const found = own ? null : findCredentials(cluster ?? 'default', servers, creds);
  const auth = found ? { servers: servers ?? found.servers, ...credentialsConnectOptions(found) } : {};
  const nc = await natsConnect({ maxReconnectAttempts: -1, reconnectTimeWait: 250, ...natsOptions, ...auth });
  const client = new ZiClient(nc, { cluster, timeoutMs, retries503, writesToLeader });
  return Object.assign(client, { close: () => nc.close() });
}

/** A node's feed is taken for gone after this long without a message (it beats every FEED_HEARTBEAT_MS). */
const FEED_SILENCE_MS = 3 * FEED_HEARTBEAT_MS + 500;

/** Feed messages a watch keeps for its consumer at most; beyond, it drops them and fills the gap by request (bounded pages). */
const FEED_QUEUE_MAX = 1000;

/** The messages of one change-feed subscription, waited for one at a time. */
class FeedQueue {
  private sub: Subscription | null = null;
  private readonly queued: Msg[] = [];
  private wake: (() => void) | null = null;

  start(nc: NatsConnection, subject: string): void {
    this.sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        // A consumer this far behind: the next message kept shows the gap, which a request fills.
        if (this.queued.length >= FEED_QUEUE_MAX) this.queued.length = 0;
        this.queued.push(msg);
        this.wake?.();
      },
    });
  }

  /** The next message, or 'silent' when none came within `silenceMs`. */
  async next(silenceMs: number): Promise<Msg | 'silent'> {
    if (this.queued.length === 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        timer = setTimeout(resolve, silenceMs);
      });
      clearTimeout(timer);
      this.wake = null;
    }
    return this.queued.shift() ?? 'silent';
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = null;
    // A wait the watch no longer needs (it was stopped): end it now, not at its timeout.
    this.wake?.();
  }
}

/** The headers of a watch request for `opts` from `after` (undefined: from now), waiting up to `waitMs`. */
function watchHeaders(opts: WatchOptions, after: number | undefined, waitMs: number): Record<string, string> {
  const headers: Record<string, string> = { [WATCH_HEADERS.wait]: String(waitMs) };
  if (opts.key !== undefined) headers[WATCH_HEADERS.key] = opts.key;
  if (opts.prefix !== undefined) headers[WATCH_HEADERS.prefix] = opts.prefix;
  if (after !== undefined) headers[WATCH_HEADERS.after] = String(after);
  return headers;
}

const watchEvent = (e: WatchResult['events'][number]): WatchEvent => ({ kind: e.kind, key: e.key, revision: e.revision, value: e.value === undefined ? null : (Buffer.from(e.value, 'base64') as Uint8Array) });

/** What a failed watch request means for the watch (WatchRetry). */
function watchFailure(err: unknown): WatchFailure {
  if (err instanceof ZiStoreError && err.code === 410) return 'history';
  if (err instanceof ZiTimeoutError || (err instanceof ZiStoreError && err.code === 503)) return 'unavailable';
  return 'fatal';
}

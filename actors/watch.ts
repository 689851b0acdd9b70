// Watches (PROTOCOL.md "Watch"): a long poll over plain request-reply. Each request names the
// last revision its watcher has seen; the reply carries the changes after it from this node's
// change log (change-log.ts), or, when none comes within the wait asked for, the revision the
// watcher may resume from (a progress message). The node keeps nothing per watcher between
// requests, so a watcher resumes at any node, and a slow one costs nothing but its own history.
import { Buffer } from 'node:buffer';
import type { Change, ChangeLog } from './change-log.ts';
import type { Clock } from './ports.ts';
import { KEY_HEADER, type ClientReply, type ClientRequest } from './protocol.ts';
import { base64, fail, headersOf, keyProblem } from './request.ts';

export const WATCH_HEADERS = {
  key: KEY_HEADER,
  prefix: 'Zi-Prefix',
  after: 'Zi-After-Revision',
  wait: 'Zi-Wait',
  limit: 'Zi-Limit',
} as const;

export const DEFAULT_WATCH_LIMIT = 1000;
export const MAX_WATCH_LIMIT = 10_000;
export const MAX_WATCH_WAIT_MS = 60_000;
/** Keys and values of one reply, in bytes, before it stops with `more` (as scans: the reply stays well under max_payload). */
export const WATCH_REPLY_BYTES = 512 * 1024;
/** Requests one node keeps waiting at once; beyond, 503 (another node may take it). */
export const MAX_WAITING_WATCHES = 10_000;

/** The changes a watcher asked for: of one key, or of every key with a prefix ('' = all), after a revision (null: from now). */
export interface WatchQuery {
  key: string | null;
  prefix: string;
  after: number | null;
  waitMs: number;
  limit: number;
}

/** The JSON body of a watch reply. */
export interface WatchResult {
  revision: number;
  events: { kind: Change['kind']; key: string; revision: number; value?: string }[];
  more: boolean;
}

const encoder = new TextEncoder();

function integer(text: string, name: string, min: number, max: number): number | ClientReply {
  if (!/^\d+$/.test(text)) return fail(400, `${name} must be a decimal integer`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) return fail(400, `${name} must be ${min} to ${max}`);
  return n;
}

/** The watch a client asked for, or an error reply. */
export function parseWatch(request: ClientRequest): WatchQuery | ClientReply {
  const text = headersOf(request, WATCH_HEADERS);
  if ('ok' in text) return text as ClientReply;
  if (text.key != null && text.prefix != null) return fail(400, `give ${WATCH_HEADERS.key} or ${WATCH_HEADERS.prefix}, not both`);
  for (const field of ['key', 'prefix'] as const) {
    const bound = text[field];
    if (bound == null || (field === 'prefix' && bound === '')) continue;
    const problem = keyProblem(bound);
    if (problem !== null) return fail(400, `${WATCH_HEADERS[field]}: ${problem}`);
  }
  const after = text.after == null ? null : integer(text.after, WATCH_HEADERS.after, 0, Number.MAX_SAFE_INTEGER);
  const waitMs = text.wait == null ? 0 : integer(text.wait, WATCH_HEADERS.wait, 0, MAX_WATCH_WAIT_MS);
  const limit = text.limit == null ? DEFAULT_WATCH_LIMIT : integer(text.limit, WATCH_HEADERS.limit, 1, MAX_WATCH_LIMIT);
  for (const n of [after, waitMs, limit]) if (n !== null && typeof n === 'object') return n;
  return { key: text.key ?? null, prefix: text.prefix ?? '', after: after as number | null, waitMs: waitMs as number, limit: limit as number };
}

const matches = (query: WatchQuery, key: string): boolean => (query.key !== null ? key === query.key : key.startsWith(query.prefix));

/**
 * The changes after `after` the query covers, as the reply's JSON, or null when there are none
 * yet. A reply ends at the limit (or the byte budget) only between two revisions: the changes of
 * one transaction always travel together, so resuming after a reply's revision skips nothing.
 */
export function collectChanges(log: ChangeLog, query: WatchQuery, after: number): Answer | null {
  const events: string[] = [];
  let bytes = 0;
  let last = 0;
  let more = false;
  for (const change of log.since(after)) {
    if (!matches(query, change.key)) continue;
    if (change.rev !== last && (events.length >= query.limit || (events.length > 0 && bytes >= WATCH_REPLY_BYTES))) {
      more = true;
      break;
    }
    last = change.rev;
    bytes += Buffer.byteLength(change.key) + (change.value?.byteLength ?? 0);
    const head = `{"kind":"${change.kind}","key":${JSON.stringify(change.key)},"revision":${change.rev}`;
    events.push(change.value !== null ? `${head},"value":"${base64(change.value)}"}` : `${head}}`);
  }
  if (events.length === 0) return null;
  return reply(more ? last : Math.max(after, log.stable), events, more);
}

/** A reply with no change: the revision the watcher resumes after. */
const progress = (revision: number): Answer => reply(revision, [], false);

/** A watch reply with its changes (or none). */
type Answer = { ok: true; revision: number; data: Uint8Array };

function reply(revision: number, events: string[], more: boolean): Answer {
  return { ok: true, revision, data: encoder.encode(`{"revision":${revision},"events":[${events.join(',')}],"more":${more}}`) };
}

/** A reply for a watcher whose revision is older than what this node keeps, or null. */
function tooOld(log: ChangeLog, after: number): ClientReply | null {
  if (after >= log.floor) return null;
  return fail(410, `revision ${after} is older than the history this node keeps (changes after ${log.floor}); resume at another node, or start again from a scan`);
}

/** Serves the watch requests of one node, each from its change log; keeps only the requests waiting. */
export class WatchServer {
  private readonly waiting = new Set<(reply: ClientReply) => void>();

  constructor(
    private readonly log: ChangeLog,
    private readonly clock: Clock,
    /** May this node answer now (ZiNode.canServe)? A node that cannot may be behind without knowing it. */
    private readonly canServe: () => boolean,
  ) {}

  /** How many requests wait now (for metrics). */
  get waitingCount(): number {
    return this.waiting.size;
  }

  async serve(request: ClientRequest): Promise<ClientReply> {
    const query = parseWatch(request);
    if ('ok' in query) return query;
    if (!this.canServe()) return fail(503, 'this node cannot serve now (no lease or no live ZooKeeper session)');
    const { log } = this;
    // Changes in (after, scanned] were looked at: none is for this watcher.
    let scanned = query.after ?? log.stable;
    const answer = (): ClientReply | null => {
      const old = tooOld(log, scanned);
      if (old !== null) return old;
      const changes = collectChanges(log, query, scanned);
      if (changes !== null) return changes;
      scanned = Math.max(scanned, log.stable);
      return null;
    };
    const now = answer();
    if (now !== null) return now;
    if (query.waitMs === 0) return progress(scanned);
    if (this.waiting.size >= MAX_WAITING_WATCHES) return fail(503, `${MAX_WAITING_WATCHES} watches already wait at this node; try another node`);
    return new Promise<ClientReply>((resolve) => {
      const finish = (r: ClientReply) => {
        this.clock.clearTimeout(timer);
        unlisten();
        this.waiting.delete(finish);
        resolve(r);
      };
      const timer = this.clock.setTimeout(() => finish(progress(scanned)), query.waitMs);
      const unlisten = log.listen(() => {
        const r = this.canServe() ? answer() : progress(scanned);
        if (r !== null) finish(r);
      });
      this.waiting.add(finish);
    });
  }

  /** The node stops: every waiting watcher hears so now (and resumes elsewhere). */
  close(): void {
    for (const finish of [...this.waiting]) finish(fail(503, 'node is shutting down'));
  }
}

/** How often an idle node's feed says it is alive and where it stands, ms. */
export const FEED_HEARTBEAT_MS = 1000;

/** Every key, as many changes as a message may hold: what a feed message carries. */
const EVERY_CHANGE: WatchQuery = { key: null, prefix: '', after: null, waitMs: 0, limit: MAX_WATCH_LIMIT };

/**
 * A node's change feed (PROTOCOL.md "Watch", "Push"): every change of every key its log takes in,
 * published once, in revision order, for any number of subscribers; NATS does the fan-out. Each
 * message names the revision it follows, so a subscriber that missed one (a slow consumer, a
 * reconnect) sees the gap and fills it with a watch request. Idle, a heartbeat every
 * FEED_HEARTBEAT_MS. A node that cannot serve publishes nothing: its silence sends watchers elsewhere.
 */
export class ChangeFeed {
  /** Changes at or below this are published. */
  private published: number;
  private due = false;
  private lastSent = 0;
  private heartbeat: unknown = null;
  private readonly unlisten: () => void;

  constructor(
    private readonly log: ChangeLog,
    private readonly clock: Clock,
    private readonly canServe: () => boolean,
    private readonly publish: (after: number, revision: number, data: Uint8Array) => void,
  ) {
    this.published = log.stable;
    // One message per turn, however many revisions the turn decided.
    this.unlisten = log.listen(() => {
      if (this.due) return;
      this.due = true;
      queueMicrotask(() => this.flush());
    });
    this.beat();
  }

  close(): void {
    this.unlisten();
    if (this.heartbeat !== null) this.clock.clearTimeout(this.heartbeat);
    this.heartbeat = null;
  }

  private flush(): void {
    this.due = false;
    if (!this.canServe()) return;
    // History gone before it was published (the node could not serve for long): the next message
    // starts above it and subscribers see the gap.
    if (this.published < this.log.floor) this.published = this.log.floor;
    // A log taken over from a transfer may stand lower; messages never claim more than it holds.
    if (this.published > this.log.stable) this.published = this.log.stable;
    for (;;) {
      const page = collectChanges(this.log, EVERY_CHANGE, this.published);
      if (page === null) break;
      this.send(page.revision, page.data);
      if (page.revision >= this.log.stable) break;
    }
  }

  private beat(): void {
    this.heartbeat = this.clock.setTimeout(() => {
      if (this.clock.now() - this.lastSent >= FEED_HEARTBEAT_MS / 2) {
        this.flush();
        // After the flush no change lies between what was published and `stable`.
        const stable = this.log.stable;
        if (this.canServe() && this.clock.now() - this.lastSent >= FEED_HEARTBEAT_MS / 2 && stable >= this.published) this.send(stable, progress(stable).data);
      }
      this.beat();
    }, FEED_HEARTBEAT_MS);
  }

  private send(revision: number, data: Uint8Array): void {
    this.publish(this.published, revision, data);
    this.published = revision;
    this.lastSent = this.clock.now();
  }
}

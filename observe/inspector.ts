// The inspector's node side: turns observer hooks and XState inspection events into small
// records, buffers them, and publishes one JSON batch every ~50 ms on
// `zistore.<cluster>.inspect.<node>`. The hooks only push onto a bounded array, so the node
// never waits on the inspector; when the buffer is full, records are dropped and counted.
// Every batch carries the node's status when it changed, and at least once a second
// (a heartbeat: the viewer marks a node that stops sending as gone).
import type { InspectionEvent } from 'xstate';
import type { NodeObserver } from '../actors/ports.ts';
import type { NodeStatus } from './metrics.ts';

export const INSPECT_BATCH_VERSION = 1;

export type ContextFields = Record<string, string | number | boolean | null>;

/** One fact in a batch. `t` is wall-clock ms (Date.now), comparable across the nodes of one machine. */
export type InspectRecord =
  /** An XState machine actor's new snapshot: state value, status and its plain context fields. */
  | { kind: 'snapshot'; t: number; actor: string; value: unknown; status: string; context: ContextFields }
  /** An event a machine actor received; `from` names the sending actor when there is one. */
  | { kind: 'event'; t: number; actor: string; event: string; from: string | null }
  | { kind: 'entry'; t: number; key: string; state: 'absent' | 'valid' | 'invalid'; rev: number }
  /** A peer message this node sent (out, to `peer`) or handled (in, from `peer`). */
  | { kind: 'message'; t: number; direction: 'in' | 'out'; type: string; peer: string; keys: string[]; keyCount: number }
  /** The leader got a replica's answer to an invalidate batch (ok false: the attempt failed). */
  | { kind: 'ack'; t: number; peer: string; entries: number; ms: number; ok: boolean }
  | { kind: 'resync'; t: number; peer: string; entries: number; done: boolean };

export interface InspectBatch {
  v: typeof INSPECT_BATCH_VERSION;
  node: string;
  /** Increases by one per batch published; a gap means batches were lost on the way. */
  seq: number;
  t: number;
  /** Records dropped by this node since it started. */
  dropped: number;
  status?: NodeStatus;
  records: InspectRecord[];
}

export interface InspectorTimers {
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const realTimers: InspectorTimers = {
  now: () => Date.now(),
  setInterval: (fn, ms) => {
    const handle = setInterval(fn, ms);
    // The inspector alone must not keep a process alive.
    handle.unref();
    return handle;
  },
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

export interface InspectorOptions {
  nodeId: string;
  /** Sends one encoded batch (NATS publish); may throw, which drops the batch. */
  publish(data: Uint8Array): void;
  flushMs?: number;
  heartbeatMs?: number;
  /** Records kept between two flushes; more are dropped and counted. */
  recordsMax?: number;
  /** Keys listed per message record (the count is always exact). */
  messageKeysMax?: number;
  timers?: InspectorTimers;
}

/** Keys can be up to 1 KiB; the viewer shows a prefix. */
const KEY_CHARS_MAX = 200;
const CONTEXT_FIELDS_MAX = 8;
const clip = (key: string) => (key.length > KEY_CHARS_MAX ? `${key.slice(0, KEY_CHARS_MAX)}…` : key);

/** Peer message types the view shows; lease renewals (several a second per follower) would drown it. */
const SHOWN_MESSAGES = new Set(['invalidate', 'validate', 'forward', 'read', 'join', 'sync', 'snapshot', 'history']);

interface ActorLike {
  id?: string;
  logic?: { id?: unknown; config?: unknown };
}

/** A machine actor is named by its machine id (`follower`, `leader`); other actors by their own id. */
function actorName(ref: unknown): { name: string; machine: boolean } {
  const actor = ref as ActorLike | undefined;
  const logic = actor?.logic;
  if (logic !== undefined && logic.config !== undefined && typeof logic.id === 'string') return { name: logic.id, machine: true };
  return { name: typeof actor?.id === 'string' ? actor.id : '?', machine: false };
}

/**
 * The plain fields of a machine's context (numbers, strings, booleans, null), leaving out
 * settings and timers (names ending in Ms): what the viewer shows, never a client or a map.
 */
export function contextFields(context: unknown): ContextFields {
  const out: ContextFields = {};
  if (typeof context !== 'object' || context === null) return out;
  let n = 0;
  for (const [name, value] of Object.entries(context)) {
    if (n >= CONTEXT_FIELDS_MAX) break;
    if (name.endsWith('Ms')) continue;
    if (value === null || typeof value === 'number' || typeof value === 'boolean' || (typeof value === 'string' && value.length <= 200)) {
      out[name] = value;
      n++;
    }
  }
  return out;
}

const encoder = new TextEncoder();

export class InspectorStream {
  readonly observer: NodeObserver;
  private readonly nodeId: string;
  private readonly publishBatch: (data: Uint8Array) => void;
  private readonly timers: InspectorTimers;
  private readonly flushMs: number;
  private readonly heartbeatMs: number;
  private readonly recordsMax: number;
  private readonly messageKeysMax: number;
  private records: InspectRecord[] = [];
  /** Last snapshot sent per actor (value + context, as JSON): unchanged snapshots are not repeated. */
  private readonly lastSnapshot = new Map<string, string>();
  private status: (() => NodeStatus) | null = null;
  private lastStatusJson = '';
  private lastStatusAt = -Infinity;
  private timer: unknown = null;
  private seq = 0;
  private counters = { batches: 0, events: 0, dropped: 0 };

  constructor(options: InspectorOptions) {
    this.nodeId = options.nodeId;
    this.publishBatch = options.publish;
    this.timers = options.timers ?? realTimers;
    this.flushMs = options.flushMs ?? 50;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.recordsMax = options.recordsMax ?? 2000;
    this.messageKeysMax = options.messageKeysMax ?? 8;
    const now = () => this.timers.now();
    // Closures, not methods: XState calls `inspect` unbound.
    this.observer = {
      inspect: (event) => this.inspect(event),
      entry: (key, state, rev) => this.push({ kind: 'entry', t: now(), key: clip(key), state, rev }),
      message: (direction, type, peer, keys) => {
        if (!SHOWN_MESSAGES.has(type)) return;
        const shown = keys.length > this.messageKeysMax ? keys.slice(0, this.messageKeysMax) : keys;
        this.push({ kind: 'message', t: now(), direction, type, peer, keys: shown.map(clip), keyCount: keys.length });
      },
      replication: (peer, entries, ms, ok) => this.push({ kind: 'ack', t: now(), peer, entries, ms: Math.round(ms * 100) / 100, ok }),
      resync: (peer, entries, done) => this.push({ kind: 'resync', t: now(), peer, entries, done }),
    };
  }

  /** Where each batch reads the node's status. */
  attach(status: () => NodeStatus): void {
    this.status = status;
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = this.timers.setInterval(() => this.flush(), this.flushMs);
  }

  /** Stops the timer after publishing what is buffered. */
  stop(): void {
    if (this.timer === null) return;
    this.timers.clearInterval(this.timer);
    this.timer = null;
    this.flush();
  }

  stats(): { batches: number; events: number; dropped: number } {
    return { ...this.counters };
  }

  /** Publishes the buffered records (and the status when it changed or a heartbeat is due). */
  flush(): void {
    const now = this.timers.now();
    let status: NodeStatus | undefined;
    if (this.status !== null) {
      try {
        const current = this.status();
        const json = JSON.stringify(current);
        if (json !== this.lastStatusJson || now - this.lastStatusAt >= this.heartbeatMs) {
          status = current;
          this.lastStatusJson = json;
          this.lastStatusAt = now;
        }
      } catch {
        // status() reads plain fields; should it ever throw, the batch goes without it.
      }
    }
    if (this.records.length === 0 && status === undefined) return;
    const records = this.records;
    this.records = [];
    const batch: InspectBatch = { v: INSPECT_BATCH_VERSION, node: this.nodeId, seq: this.seq + 1, t: now, dropped: this.counters.dropped, records };
    if (status !== undefined) batch.status = status;
    try {
      this.publishBatch(encoder.encode(JSON.stringify(batch)));
      this.seq++;
      this.counters.batches++;
      this.counters.events += records.length;
    } catch {
      // NATS closed or refusing (the node is stopping, or cut off): count the loss and go on.
      this.counters.dropped += records.length;
      this.lastStatusJson = '';
    }
  }

  private push(record: InspectRecord): void {
    if (this.records.length >= this.recordsMax) {
      this.counters.dropped++;
      return;
    }
    this.records.push(record);
  }

  private inspect(event: InspectionEvent): void {
    if (event.type === '@xstate.snapshot') {
      const { name, machine } = actorName(event.actorRef);
      if (!machine) return;
      const snapshot = event.snapshot as { value?: unknown; status?: string; context?: unknown };
      const context = contextFields(snapshot.context);
      const status = snapshot.status ?? 'active';
      const key = JSON.stringify([snapshot.value, status, context]);
      if (this.lastSnapshot.get(name) === key) return;
      this.lastSnapshot.set(name, key);
      this.push({ kind: 'snapshot', t: this.timers.now(), actor: name, value: snapshot.value ?? null, status, context });
    } else if (event.type === '@xstate.event') {
      const { name, machine } = actorName(event.actorRef);
      if (!machine) return;
      const from = event.sourceRef === undefined ? null : actorName(event.sourceRef).name;
      this.push({ kind: 'event', t: this.timers.now(), actor: name, event: String(event.event.type), from });
    }
  }
}

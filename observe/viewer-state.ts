// The viewer's model of a cluster, built from the nodes' inspector batches. Plain data, no I/O:
// the viewer server feeds it and serves toJSON() as /state and over server-sent events.
// Everything is bounded: the most recent keys, a few transitions per key, a window of messages.
import type { ContextFields, InspectBatch, InspectRecord } from './inspector.ts';
import type { NodeStatus } from './metrics.ts';

export type EntryState = 'absent' | 'valid' | 'invalid';

export interface ViewerLimits {
  /** Keys shown, most recently changed first. */
  keysMax: number;
  /** Transitions kept per key (over all nodes). */
  keyHistoryMax: number;
  messagesMax: number;
  /** Events kept per node (consecutive repeats are folded into a count). */
  eventsMax: number;
  /** A node that sent nothing for this long is shown as gone (heartbeats come every second). */
  staleMs: number;
}

export const defaultViewerLimits: ViewerLimits = { keysMax: 40, keyHistoryMax: 8, messagesMax: 150, eventsMax: 12, staleMs: 3000 };

export interface ViewerActor {
  value: unknown;
  /** The state value as dotted text: `replica.serving`. */
  state: string;
  status: string;
  context: ContextFields;
  t: number;
}

export interface ViewerNode {
  id: string;
  live: boolean;
  lastSeen: number;
  status: NodeStatus | null;
  actors: Record<string, ViewerActor>;
  events: { t: number; actor: string; event: string; from: string | null; count: number }[];
  resync: Record<string, { entries: number; done: boolean; t: number }>;
  dropped: number;
  /** Batches that never arrived (gaps in seq). */
  lostBatches: number;
}

export interface KeyTransition {
  node: string;
  state: EntryState;
  rev: number;
  t: number;
}

export interface ViewerKey {
  key: string;
  t: number;
  nodes: Record<string, { state: EntryState; rev: number; t: number }>;
  /** Oldest first. */
  history: KeyTransition[];
}

export interface ViewerFlow {
  t: number;
  /** ack: a replica's answer to an invalidate batch, as the leader saw it. */
  type: string;
  from: string;
  to: string;
  keys: string[];
  keyCount: number;
  /** Reported by the sender (out) and/or the receiver (in). */
  sent: boolean;
  received: boolean;
  ok?: boolean;
  ms?: number;
  entries?: number;
}

export interface ViewerSnapshot {
  cluster: string;
  now: number;
  /** The replica set, as the live leader reports it. */
  leader: string | null;
  replicas: string[] | null;
  nodes: ViewerNode[];
  keys: ViewerKey[];
  messages: ViewerFlow[];
  batches: number;
}

/** `{ replica: 'serving' }` → `replica.serving`; parallel states joined by `, `. */
export function stateText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) return String(value);
  return Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => {
      const inner = stateText(v);
      return inner.includes(', ') ? `${k}.(${inner})` : `${k}.${inner}`;
    })
    .join(', ');
}

/** Two reports of one message (sender's out, receiver's in) are merged when this close in time. */
const PAIR_WINDOW_MS = 2000;
const PAIR_SEARCH = 64;

export class ViewerState {
  private readonly nodes = new Map<string, ViewerNode & { seq: number }>();
  /** Insertion order = least recently changed first. */
  private readonly keys = new Map<string, ViewerKey>();
  private messages: ViewerFlow[] = [];
  private batches = 0;
  /** Changes with every applied batch: the server pushes only when it moved. */
  version = 0;

  constructor(
    readonly cluster: string,
    private readonly limits: ViewerLimits = defaultViewerLimits,
  ) {}

  apply(batch: InspectBatch, receivedAt: number): void {
    let node = this.nodes.get(batch.node);
    if (node === undefined) {
      node = { id: batch.node, live: true, lastSeen: receivedAt, status: null, actors: {}, events: [], resync: {}, dropped: 0, lostBatches: 0, seq: 0 };
      this.nodes.set(batch.node, node);
    }
    // A restarted node counts from 1 again; only a forward jump is a loss.
    if (node.seq > 0 && batch.seq > node.seq + 1) node.lostBatches += batch.seq - node.seq - 1;
    node.seq = batch.seq;
    node.lastSeen = receivedAt;
    node.dropped = batch.dropped;
    if (batch.status !== undefined) node.status = batch.status;
    for (const record of batch.records) this.record(node, record);
    this.batches++;
    this.version++;
  }

  private record(node: ViewerNode, r: InspectRecord): void {
    switch (r.kind) {
      case 'snapshot':
        node.actors[r.actor] = { value: r.value, state: stateText(r.value), status: r.status, context: r.context, t: r.t };
        return;
      case 'event': {
        const last = node.events[node.events.length - 1];
        if (last !== undefined && last.actor === r.actor && last.event === r.event && last.from === r.from) {
          last.count++;
          last.t = r.t;
          return;
        }
        node.events.push({ t: r.t, actor: r.actor, event: r.event, from: r.from, count: 1 });
        if (node.events.length > this.limits.eventsMax) node.events.shift();
        return;
      }
      case 'entry':
        this.entry(node.id, r.key, r.state, r.rev, r.t);
        return;
      case 'message': {
        const from = r.direction === 'out' ? node.id : r.peer;
        const to = r.direction === 'out' ? r.peer : node.id;
        this.flow({ t: r.t, type: r.type, from, to, keys: r.keys, keyCount: r.keyCount, sent: r.direction === 'out', received: r.direction === 'in' });
        return;
      }
      case 'ack':
        this.flow({ t: r.t, type: 'ack', from: r.peer, to: node.id, keys: [], keyCount: 0, sent: false, received: true, ok: r.ok, ms: r.ms, entries: r.entries });
        return;
      case 'resync':
        node.resync[r.peer] = { entries: r.entries, done: r.done, t: r.t };
        return;
    }
  }

  private entry(nodeId: string, key: string, state: EntryState, rev: number, t: number): void {
    let view = this.keys.get(key);
    if (view === undefined) {
      view = { key, t, nodes: {}, history: [] };
    } else {
      this.keys.delete(key);
    }
    // Re-inserted at the end: the most recently changed key.
    this.keys.set(key, view);
    view.t = Math.max(view.t, t);
    view.nodes[nodeId] = { state, rev, t };
    // Batches of different nodes arrive in any order: keep the transitions in time order.
    const history = view.history;
    history.push({ node: nodeId, state, rev, t });
    for (let i = history.length - 1; i > 0 && history[i].t < history[i - 1].t; i--) [history[i - 1], history[i]] = [history[i], history[i - 1]];
    if (view.history.length > this.limits.keyHistoryMax) view.history.shift();
    while (this.keys.size > this.limits.keysMax) {
      const oldest = this.keys.keys().next().value as string;
      this.keys.delete(oldest);
    }
  }

  private flow(f: ViewerFlow): void {
    if (f.type !== 'ack') {
      // Merge the other side's report of the same message, when it came first.
      const searchFrom = Math.max(0, this.messages.length - PAIR_SEARCH);
      for (let i = this.messages.length - 1; i >= searchFrom; i--) {
        const m = this.messages[i];
        if (Math.abs(m.t - f.t) > PAIR_WINDOW_MS) continue;
        const complements = (f.sent && !m.sent) || (f.received && !m.received);
        if (complements && m.type === f.type && m.from === f.from && m.to === f.to && m.keyCount === f.keyCount && m.keys.join('\0') === f.keys.join('\0')) {
          m.sent ||= f.sent;
          m.received ||= f.received;
          m.t = Math.min(m.t, f.t);
          return;
        }
      }
    }
    this.messages.push(f);
    if (this.messages.length > this.limits.messagesMax) this.messages.splice(0, this.messages.length - this.limits.messagesMax);
  }

  toJSON(now: number): ViewerSnapshot {
    const nodes = [...this.nodes.values()]
      .map(({ seq: _seq, ...n }) => ({ ...n, live: now - n.lastSeen < this.limits.staleMs }))
      .sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }));
    const leader = nodes.find((n) => n.live && n.status?.role === 'leader' && n.status.state !== 'suspended') ?? null;
    return {
      cluster: this.cluster,
      now,
      leader: leader?.id ?? null,
      replicas: leader?.status?.replicas ?? null,
      nodes,
      keys: [...this.keys.values()].reverse(),
      messages: [...this.messages].sort((a, b) => b.t - a.t),
      batches: this.batches,
    };
  }
}

/** Checks the shape of a received batch enough to apply it safely. */
export function isInspectBatch(value: unknown): value is InspectBatch {
  if (typeof value !== 'object' || value === null) return false;
  const b = value as Partial<InspectBatch>;
  return b.v === 1 && typeof b.node === 'string' && typeof b.seq === 'number' && Array.isArray(b.records);
}

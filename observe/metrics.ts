// Prometheus metrics of one node. Counters and histograms are fed by the NodeObserver hooks
// (hot paths: one cached child lookup and an add each); gauges of the node's state (role,
// epoch, keys, bytes…) are sampled from ZiNode.status() when scraped, so they cost nothing
// between scrapes. Each node gets its own Registry, so several nodes can share a process.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ZiNode } from '../actors/node.ts';
import type { MemberState, NodeObserver, Role, SessionState } from '../actors/ports.ts';
import type { ClientOp } from '../actors/protocol.ts';

export type NodeStatus = ReturnType<ZiNode['status']>;

const ROLES: readonly Role[] = ['leader', 'follower'];
const MEMBER_STATES: readonly MemberState[] = ['syncing', 'serving', 'suspended', 'removed'];
const SESSION_STATES: readonly SessionState[] = ['connecting', 'connected', 'suspended', 'expired'];

/** Seconds; client requests take from well under a millisecond (local read) to the 4 s op timeout. */
export const REQUEST_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Seconds; one invalidate batch to one replica and its ack. */
export const REPLICATION_BUCKETS_S = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export interface NodeMetricsOptions {
  nodeId: string;
  cluster: string;
  /** Also collect the process metrics of prom-client (CPU, memory, event loop lag). */
  processMetrics?: boolean;
}

/** Counters another part of the process can offer to the scrape (the inspector's). */
export interface InspectorCounters {
  stats(): { batches: number; events: number; dropped: number };
}

export class NodeMetrics {
  readonly registry = new Registry();
  readonly observer: NodeObserver;
  private status: (() => NodeStatus) | null = null;
  private inspector: InspectorCounters | null = null;

  constructor(options: NodeMetricsOptions) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: options.nodeId, cluster: options.cluster });
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
    // Getters, because prom-client calls collect() with the metric as `this`.
    const sample = () => this.sample();
    const inspectorStats = () => this.inspector?.stats() ?? null;

    const requests = new Counter({
      name: 'zistore_requests_total',
      help: 'Client requests answered by this node, by operation and PROTOCOL.md code (200 = success).',
      labelNames: ['op', 'code'] as const,
      registers,
    });
    const requestSeconds = new Histogram({
      name: 'zistore_request_duration_seconds',
      help: 'Time from receiving a client request to answering it, by operation.',
      labelNames: ['op'] as const,
      buckets: REQUEST_BUCKETS_S,
      registers,
    });
    const replicationSeconds = new Histogram({
      name: 'zistore_replication_round_trip_seconds',
      help: 'Leader: time from sending an invalidate batch to one replica to its ack (outcome failed: the attempt gave up).',
      labelNames: ['peer', 'outcome'] as const,
      buckets: REPLICATION_BUCKETS_S,
      registers,
    });
    const replicationEntries = new Counter({
      name: 'zistore_replication_entries_total',
      help: 'Leader: writes carried by acknowledged invalidate batches, by replica.',
      labelNames: ['peer'] as const,
      registers,
    });
    const peerMessages = new Counter({
      name: 'zistore_peer_messages_total',
      help: 'Peer messages handled (in) or sent by the replication links (out), by type.',
      labelNames: ['direction', 'type'] as const,
      registers,
    });
    const entryChanges = new Counter({
      name: 'zistore_entry_changes_total',
      help: 'Cache entry state changes on this node, by the state entered.',
      labelNames: ['state'] as const,
      registers,
    });
    const resyncEntries = new Gauge({
      name: 'zistore_resync_entries_sent',
      help: 'Leader: entries sent so far in the latest state transfer to a joining node.',
      labelNames: ['peer'] as const,
      registers,
    });
    const resyncActive = new Gauge({
      name: 'zistore_resync_in_progress',
      help: 'Leader: 1 while a state transfer to the peer is streaming, 0 once it completed.',
      labelNames: ['peer'] as const,
      registers,
    });
    const resyncsDone = new Counter({
      name: 'zistore_resyncs_completed_total',
      help: 'Leader: state transfers that completed (the peer entered the replica set).',
      labelNames: ['peer'] as const,
      registers,
    });

    new Gauge({
      name: 'zistore_epoch',
      help: 'Highest epoch this node has heard of.',
      registers,
      collect() {
        const s = sample();
        if (s) this.set(s.epoch);
      },
    });
    new Gauge({
      name: 'zistore_role',
      help: 'Role of this node: 1 for the current role, 0 for the other.',
      labelNames: ['role'] as const,
      registers,
      collect() {
        const s = sample();
        if (s) for (const role of ROLES) this.set({ role }, s.role === role ? 1 : 0);
      },
    });
    new Gauge({
      name: 'zistore_member_state',
      help: 'Member state of this node (syncing, serving, suspended, removed): 1 for the current one.',
      labelNames: ['state'] as const,
      registers,
      collect() {
        const s = sample();
        if (s) for (const state of MEMBER_STATES) this.set({ state }, s.state === state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'zistore_session_state',
      help: 'ZooKeeper session state of this node: 1 for the current one.',
      labelNames: ['state'] as const,
      registers,
      collect() {
        const s = sample();
        if (s) for (const state of SESSION_STATES) this.set({ state }, s.session === state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'zistore_writes_in_flight',
      help: 'Leader: writes started and not yet answered (0 on followers).',
      registers,
      collect() {
        const s = sample();
        if (s) this.set(s.writesInFlight);
      },
    });
    new Gauge({
      name: 'zistore_replica_set_size',
      help: 'Leader: members of the replica set, itself included (0 on followers).',
      registers,
      collect() {
        const s = sample();
        if (s) this.set(s.replicas?.length ?? 0);
      },
    });
    new Gauge({
      name: 'zistore_keys',
      help: 'Keys held by this node (its full replica).',
      registers,
      collect() {
        const s = sample();
        if (s) this.set(s.keys);
      },
    });
    new Gauge({
      name: 'zistore_value_bytes',
      help: 'Bytes of values held by this node.',
      registers,
      collect() {
        const s = sample();
        if (s) this.set(s.bytes);
      },
    });
    const watchGauges = {
      changes: 'Changes this node keeps for watches to resume from.',
      floor: 'Watches from this revision or older are refused here (410): the history kept starts above it.',
      stable: 'Changes up to this revision are decided here and delivered to watches.',
      waiting: 'Watch requests waiting for a change at this node.',
    } as const;
    for (const [field, help] of Object.entries(watchGauges) as [keyof typeof watchGauges, string][]) {
      new Gauge({
        name: `zistore_watch_${field === 'stable' ? 'stable_revision' : field === 'floor' ? 'history_floor' : field}`,
        help,
        registers,
        collect() {
          const s = sample();
          if (s) this.set(s.watch[field]);
        },
      });
    }
    new Gauge({
      name: 'zistore_inspector_events_dropped',
      help: 'Inspector records dropped because the buffer was full or NATS was down (0 without --inspect).',
      registers,
      collect() {
        const stats = inspectorStats();
        if (stats) this.set(stats.dropped);
      },
    });

    // Children are cached: labels() hashes its arguments on every call.
    const requestChildren = new Map<string, { count: ReturnType<typeof requests.labels>; time: ReturnType<typeof requestSeconds.labels> }>();
    const requestChild = (op: ClientOp, code: number) => {
      const id = `${op} ${code}`;
      let child = requestChildren.get(id);
      if (child === undefined) {
        child = { count: requests.labels({ op, code: String(code) }), time: requestSeconds.labels({ op }) };
        requestChildren.set(id, child);
      }
      return child;
    };
    const replicationChildren = new Map<string, { time: ReturnType<typeof replicationSeconds.labels>; entries: ReturnType<typeof replicationEntries.labels> }>();
    const replicationChild = (peer: string, ok: boolean) => {
      const id = `${peer} ${ok}`;
      let child = replicationChildren.get(id);
      if (child === undefined) {
        child = { time: replicationSeconds.labels({ peer, outcome: ok ? 'ok' : 'failed' }), entries: replicationEntries.labels({ peer }) };
        replicationChildren.set(id, child);
      }
      return child;
    };
    const messageChildren = new Map<string, ReturnType<typeof peerMessages.labels>>();
    const entryChildren = new Map<string, ReturnType<typeof entryChanges.labels>>();

    // Closures, not methods: the node calls some hooks unbound (XState's `inspect` option).
    this.observer = {
      request: (op, code, ms) => {
        const child = requestChild(op, code);
        child.count.inc();
        child.time.observe(ms / 1000);
      },
      replication: (peer, entries, ms, ok) => {
        const child = replicationChild(peer, ok);
        child.time.observe(ms / 1000);
        if (ok) child.entries.inc(entries);
      },
      message: (direction, type) => {
        const id = `${direction} ${type}`;
        let child = messageChildren.get(id);
        if (child === undefined) messageChildren.set(id, (child = peerMessages.labels({ direction, type })));
        child.inc();
      },
      entry: (_key, state) => {
        let child = entryChildren.get(state);
        if (child === undefined) entryChildren.set(state, (child = entryChanges.labels({ state })));
        child.inc();
      },
      resync: (peer, entriesSent, done, failed) => {
        resyncEntries.set({ peer }, entriesSent);
        resyncActive.set({ peer }, done || failed ? 0 : 1);
        if (done) resyncsDone.inc({ peer });
      },
    };
  }

  /** Where the scrape reads the node's state; until attached, those gauges read 0 or have no series. */
  attach(status: () => NodeStatus, inspector?: InspectorCounters): void {
    this.status = status;
    this.inspector = inspector ?? null;
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  private sample(): NodeStatus | null {
    return this.status?.() ?? null;
  }
}

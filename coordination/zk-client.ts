// The small ZooKeeper client the coordinator (coordinator.ts) is written against. Two
// implementations: node-zk-client.ts wraps node-zookeeper-client for production; the simulation's
// MemoryZooKeeper (memory-zookeeper.ts) hands out clients of the same shape. So the simulation
// runs the production coordinator, and only what a ZooKeeper client really does differs.
//
// One client object holds at most one session, as node-zookeeper-client does: once it reports
// `expired` it is dead, and the coordinator builds a new one.

/** ZooKeeper's error codes (the numbers of the Java client and of node-zookeeper-client). */
export const ZkCode = {
  CONNECTION_LOSS: -4,
  OPERATION_TIMEOUT: -7,
  NO_NODE: -101,
  BAD_VERSION: -103,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
  SESSION_EXPIRED: -112,
} as const;

/** A failed operation: the server's (or the client library's) error code. */
export class ZkError extends Error {
  constructor(
    readonly code: number,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(`zookeeper error ${code} at ${path}`, options);
    this.name = 'ZkError';
  }
}

export interface ZnodeStat {
  version: number;
  /** Hex id of the session that owns an ephemeral znode; all zeros or '' for a persistent one. */
  ephemeralOwner: string;
}

export type CreateMode = 'persistent' | 'ephemeral' | 'ephemeral-sequential';

/** `connected` (SYNC_CONNECTED), `disconnected` (the link dropped; the session may live on), `expired` (the server said so: this client is dead). */
export type ZkClientState = 'connected' | 'disconnected' | 'expired';

/** One-shot, as in ZooKeeper. */
export type ZkWatcher = () => void;

export interface ZkClient {
  /** Start connecting; state changes arrive through `onState`. Reconnection is the client's own business. */
  connect(): void;
  onState(listener: (state: ZkClientState) => void): void;
  /** Hex session id once connected, '' before. */
  sessionId(): string;
  /** The timeout the server granted (it clamps the requested one to 2–20 × tickTime). */
  sessionTimeoutMs(): number;

  // Operations reject with ZkError. A CONNECTION_LOSS means the outcome is unknown.
  create(path: string, data: Buffer, mode: CreateMode): Promise<string>;
  remove(path: string, version: number): Promise<void>;
  getData(path: string, watcher?: ZkWatcher): Promise<{ data: Buffer; stat: ZnodeStat }>;
  setData(path: string, data: Buffer, version: number): Promise<ZnodeStat>;
  exists(path: string, watcher?: ZkWatcher): Promise<ZnodeStat | null>;
  getChildren(path: string, watcher?: ZkWatcher): Promise<string[]>;
  /** multi([check(checkPath, version), setData(setPath, data, -1)]): both or neither. */
  checkAndSet(checkPath: string, version: number, setPath: string, data: Buffer): Promise<void>;
  /**
   * A request the quorum orders (a multi holding one existence check of `path`). A read is
   * answered by whichever server we are connected to, even one cut from its quorum that has not
   * heard of our session's expiry; a reply to this proves the ensemble's leader held our session
   * alive after we sent it.
   */
  quorumCheck(path: string): Promise<void>;

  /** Close for good: gracefully when connected (ephemerals go at once). Never revives the session. */
  close(): Promise<void>;
}

// The Bus port on a real NATS connection: the public client contract as endpoints of the NATS
// service `zistore` (so $SRV.PING/INFO/STATS discover nodes), and peer request-reply.
import { connect, ErrorCode, headers as natsHeaders, NatsError, type Msg, type NatsConnection, type ServiceMsg, type Subscription } from 'nats';
import type { Bus, ClientHandler, Log, PeerHandler } from '../actors/ports.ts';
import { FAILED_COMPARE_HEADER, REVISION_HEADER, type ClientOp, type ClientReply, type PeerMessage, type PeerReply } from '../actors/protocol.ts';
import { checkPeerMessage, checkSender } from '../actors/peer-check.ts';
import { decode, encode } from './codec.ts';
import { RequestMux } from './request-mux.ts';
import { BusClosedError, MaxPayloadError } from './errors.ts';
import { CLIENT_OPS, SERVICE_NAME, subjects } from './subjects.ts';
import { WATCH_HEADERS } from '../actors/watch.ts';

const AFTER_HEADER = WATCH_HEADERS.after;

/** Peer messages carry a value plus metadata: the server must allow well over 1 MiB. */
export const MIN_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024;

export interface NatsBusOptions {
  servers: string | string[];
  cluster: string;
  nodeId: string;
  log: Log;
  version?: string;
  /** Extra connection options (credentials, TLS) passed through to nats.connect. */
  connectOptions?: Record<string, unknown>;
  /**
   * Keep trying when no server can be reached (refused, reset, timed out), with backoff, logging
   * each failure; a refusal retrying cannot cure (authentication, TLS) still rejects at once.
   * Once connected, nats.js reconnects by itself for ever.
   */
  retryConnect?: boolean | ConnectRetry;
  /** Stops the retrying; createNatsBus then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface ConnectRetry {
  /** First wait after a failed attempt; default 250 ms. Doubles each time up to maxDelayMs. */
  initialDelayMs?: number;
  /** Default 5000 ms. */
  maxDelayMs?: number;
}

export async function connectNats(servers: string | string[], name: string, extra: Record<string, unknown> = {}): Promise<NatsConnection> {
  return connect({
    servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // Notice a dead link within seconds, not the 2-minute default.
    pingInterval: 2000,
    maxPingOut: 2,
    // Skip the per-request stack capture nats.js does for async traces (~15% CPU per request).
    noAsyncTraces: true,
    ...extra,
  });
}

/** Errors of a first connection that another attempt cannot cure: the server refused us, not failed to answer. */
const FATAL_CONNECT_CODES = new Set([
  ErrorCode.AuthorizationViolation,
  ErrorCode.AuthenticationExpired,
  ErrorCode.AuthenticationTimeout,
  ErrorCode.AccountExpired,
  ErrorCode.BadAuthentication,
  ErrorCode.BadCreds,
  ErrorCode.InvalidOption,
  ErrorCode.Tls,
  ErrorCode.WssRequired,
]);

/** Node's own TLS failures (nats.js passes them through): a certificate nobody here trusts, a handshake refused. */
const TLS_FAILURE = /^(ERR_SSL_|ERR_TLS_|UNABLE_TO_|CERT_|SELF_SIGNED|DEPTH_ZERO)/;

export const isRetryableConnectError = (err: unknown) =>
  !(err instanceof NatsError && FATAL_CONNECT_CODES.has(err.code as ErrorCode)) && !TLS_FAILURE.test(String((err as { code?: unknown } | null)?.code ?? ''));

const abortable = (ms: number, signal: AbortSignal | undefined) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/**
 * connectNats, tried again and again while no server answers: 250 ms after the first failure,
 * doubling up to 5 s (each wait ±20% so a fleet restarting together spreads out). Every failure
 * is logged with the next wait.
 */
export async function connectNatsRetrying(
  servers: string | string[],
  name: string,
  extra: Record<string, unknown>,
  log: Log,
  retry: ConnectRetry = {},
  signal?: AbortSignal,
): Promise<NatsConnection> {
  const initial = retry.initialDelayMs ?? 250;
  const max = retry.maxDelayMs ?? 5000;
  let delay = initial;
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw signal.reason;
    try {
      const nc = await connectNats(servers, name, extra);
      if (attempt > 1) log.info({ servers: String(servers), attempts: attempt, server: nc.getServer() }, 'connected to NATS');
      return nc;
    } catch (err) {
      if (!isRetryableConnectError(err)) throw err;
      const waitMs = Math.round(delay * (0.8 + 0.4 * Math.random()));
      log.warn({ servers: String(servers), attempt, retryInMs: waitMs, reason: err instanceof Error ? err.message : String(err) }, 'cannot connect to NATS; retrying');
      await abortable(waitMs, signal);
      delay = Math.min(max, delay * 2);
    }
  }
}

export async function createNatsBus(options: NatsBusOptions): Promise<NatsBus> {
  const name = `zistore-${options.cluster}-${options.nodeId}`;
  const retry = options.retryConnect;
  const extra = { inboxPrefix: subjects.nodeInbox(options.cluster, options.nodeId), ...options.connectOptions };
  const nc = retry
    ? await connectNatsRetrying(options.servers, name, extra, options.log.child({ actor: 'bus' }), retry === true ? {} : retry, options.signal)
    : await connectNats(options.servers, name, extra);
  const maxPayload = nc.info?.max_payload ?? 0;
  if (maxPayload < MIN_MAX_PAYLOAD_BYTES) {
    await nc.close();
    throw new MaxPayloadError(maxPayload, MIN_MAX_PAYLOAD_BYTES);
  }
  return new NatsBus(nc, options);
}

const toHeaderMap = (msg: Msg): Map<string, string[]> => {
  const map = new Map<string, string[]>();
  if (msg.headers) for (const [name, values] of msg.headers) map.set(name, values);
  return map;
};

export class NatsBus implements Bus {
  private readonly subscriptions: Subscription[] = [];
  private closed = false;
  private readonly log: Log;
  private readonly requests: RequestMux;

  constructor(
    readonly nc: NatsConnection,
    private readonly options: NatsBusOptions,
  ) {
    this.log = options.log.child({ actor: 'bus' });
    this.requests = new RequestMux(nc);
    void this.watchStatus();
  }

  private async watchStatus(): Promise<void> {
    for await (const status of this.nc.status()) {
      this.log.info({ type: status.type, data: String(status.data) }, 'nats status');
    }
  }

  async serveClients(handler: ClientHandler): Promise<void> {
    const { cluster, nodeId } = this.options;
    const service = await this.nc.services.add({
      name: SERVICE_NAME,
      version: this.options.version ?? '0.1.0',
      description: 'ZiStore key-value node',
      metadata: { cluster, node: nodeId },
      queue: SERVICE_NAME,
    });
    const serve = (op: ClientOp) => (err: NatsError | null, msg: ServiceMsg) => {
      if (err) {
        this.log.warn({ err }, 'service endpoint error');
        return;
      }
      // Whatever happens in here must not escape: an exception thrown back into nats.js's
      // dispatch (for instance from a header it cannot parse) would stop its reader loop and
      // leave the node deaf until it reconnects.
      try {
        let headers: Map<string, string[]>;
        try {
          headers = toHeaderMap(msg);
        } catch {
          this.respondClient(msg, { ok: false, code: 400, description: 'malformed headers' });
          return;
        }
        const reply = handler({ op, headers, data: msg.data });
        if (!(reply instanceof Promise)) {
          this.respondClient(msg, reply);
          return;
        }
        reply.then(
          (r) => this.respondClient(msg, r),
          (e: unknown) => {
            this.log.error({ err: e, op }, 'client handler failed');
            this.respondClient(msg, { ok: false, code: 500, description: 'internal error' });
          },
        );
      } catch (e) {
        this.log.error({ err: e, op }, 'client request failed');
        this.respondClient(msg, { ok: false, code: 500, description: 'internal error' });
      }
    };
    for (const op of CLIENT_OPS) {
      service.addEndpoint(op, { subject: subjects.client(cluster, op), handler: serve(op), metadata: { scope: 'cluster' } });
      // Node-specific subjects: a queue group of one, named after the node.
      service.addEndpoint(`node-${op}`, { subject: subjects.nodeClient(cluster, nodeId, op), handler: serve(op), queue: `node-${nodeId}` });
    }
    // Serving once this resolves: the server knows the subscriptions (a request sent right after
    // on another connection would otherwise find no responders).
    await this.nc.flush();
  }

  private respondClient(msg: ServiceMsg, reply: ClientReply): void {
    try {
      if (!reply.ok) {
        // A header value cannot carry CR or LF; descriptions never should, but make sure.
        const headers = reply.failedCompare === undefined ? undefined : natsHeaders();
        headers?.set(FAILED_COMPARE_HEADER, String(reply.failedCompare));
        msg.respondError(reply.code, reply.description.replace(/[\r\n]+/g, ' '), undefined, headers && { headers });
        return;
      }
      const h = natsHeaders();
      if (reply.revision !== undefined) h.set(REVISION_HEADER, String(reply.revision));
      msg.respond(reply.data ?? new Uint8Array(0), { headers: h });
    } catch (err) {
      this.log.error({ err }, 'could not send a reply');
    }
  }

  async servePeers(handler: PeerHandler): Promise<void> {
    const { cluster, nodeId } = this.options;
    const sub = this.nc.subscribe(subjects.peerAll(cluster, nodeId), {
      callback: (err, msg) => {
        if (err) {
          this.log.warn({ err }, 'peer subscription error');
          return;
        }
        let message: PeerMessage;
        try {
          message = checkSender(checkPeerMessage(decode<unknown>(msg.data)), subjects.peerSender(msg.subject));
        } catch (e) {
          this.log.warn({ err: e, subject: msg.subject }, 'bad peer message');
          const reply: PeerReply = { ok: false, code: 'BAD_MESSAGE', epoch: 0, reason: e instanceof Error ? e.message : 'malformed' };
          if (msg.reply) msg.respond(encode(reply));
          return;
        }
        handler(message).then(
          (reply) => {
            if (msg.reply) msg.respond(encode(reply));
          },
          (e: unknown) => this.log.error({ err: e, type: message.type }, 'peer handler failed'),
        );
      },
    });
    this.subscriptions.push(sub);
    // As for serveClients: serving once this resolves.
    await this.nc.flush();
  }

  async request(to: string, message: PeerMessage, timeoutMs: number): Promise<PeerReply> {
    if (this.closed) throw new BusClosedError();
    const reply = await this.requests.request(this.peerSubject(to, message), encode(message), timeoutMs);
    return decode<PeerReply>(reply.data);
  }

  send(to: string, message: PeerMessage): void {
    if (this.closed || this.nc.isClosed()) return;
    try {
      this.nc.publish(this.peerSubject(to, message), encode(message));
    } catch (err) {
      this.log.warn({ err, to }, 'send failed');
    }
  }

  publishChanges(after: number, revision: number, data: Uint8Array): void {
    if (this.closed || this.nc.isClosed()) return;
    try {
      const h = natsHeaders();
      h.set(AFTER_HEADER, String(after));
      h.set(REVISION_HEADER, String(revision));
      this.nc.publish(subjects.changes(this.options.cluster, this.options.nodeId), data, { headers: h });
    } catch (err) {
      this.log.warn({ err }, 'publishing the change feed failed');
    }
  }

  private peerSubject(to: string, message: PeerMessage): string {
    return subjects.peer(this.options.cluster, to, this.options.nodeId, message.type);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.requests.failAll(new BusClosedError());
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close().catch(() => undefined);
    }
  }
}

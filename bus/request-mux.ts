// Request-reply on a NATS connection through one reply subscription of our own: each request
// publishes with the reply subject `<inbox>.<token>` and the token finds its waiter. nats.js's
// own request() builds two Errors (with their stacks) per call, an async-trace context and a
// "cancelled" error after the reply; profiled, they cost a client more CPU than the rest of the
// request. Used by the node's bus (peer requests) and by the typed client.
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type NatsError } from 'nats';
import { DeadlineError, Deadlines, processClock } from '../actors/time.ts';
import { BusClosedError, BusTimeoutError, NoRespondersError } from './errors.ts';

interface Waiting {
  subject: string;
  resolve(msg: Msg): void;
  reject(err: unknown): void;
}

export class RequestMux {
  private inbox: string | null = null;
  private readonly waiting = new Map<number, Waiting>();
  private nextToken = 1;
  /** Requests of the same timeout share one timer. */
  private readonly deadlines = new Deadlines(processClock);

  constructor(private readonly nc: NatsConnection) {
    void nc.closed().then(() => this.failAll(new BusClosedError()));
  }

  /**
   * The reply to `data` sent on `subject`. Rejects with NoRespondersError (nobody subscribes to
   * the subject), BusTimeoutError (no reply in `timeoutMs`) or BusClosedError.
   */
  request(subject: string, data: Uint8Array, timeoutMs: number, headers?: MsgHdrs): Promise<Msg> {
    if (this.nc.isClosed()) return Promise.reject(new BusClosedError());
    const token = this.nextToken++;
    const reply = new Promise<Msg>((resolve, reject) => {
      this.waiting.set(token, { subject, resolve, reject });
      try {
        this.nc.publish(subject, data, { reply: `${this.replyInbox()}.${token}`, headers });
      } catch (err) {
        this.waiting.delete(token);
        reject(this.nc.isClosed() ? new BusClosedError({ cause: err }) : err);
      }
    });
    return this.deadlines.run(Math.max(1, timeoutMs), subject, reply).catch((err: unknown) => {
      if (!(err instanceof DeadlineError)) throw err;
      this.waiting.delete(token);
      throw new BusTimeoutError(subject);
    });
  }

  /** Fail every request still waiting (the connection is closing). */
  failAll(err: Error): void {
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    this.deadlines.stop();
  }

  private replyInbox(): string {
    if (this.inbox === null) {
      // The connection's own inbox prefix, if it has one (permissions may allow only that).
      const prefix = (this.nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
      const inbox = createInbox(prefix);
      this.nc.subscribe(`${inbox}.*`, { callback: (err, msg) => this.onReply(inbox, err, msg) });
      this.inbox = inbox;
    }
    return this.inbox;
  }

  private onReply(inbox: string, err: NatsError | null, msg: Msg): void {
    if (err) return; // the subscription ends with the connection; failAll answers the waiters
    const token = Number(msg.subject.slice(inbox.length + 1));
    const w = this.waiting.get(token);
    if (w === undefined) return; // timed out already
    this.waiting.delete(token);
    // With no subscriber on the subject, the server itself answers: status 503, no payload.
    if (msg.data.byteLength === 0 && msg.headers?.code === 503) w.reject(new NoRespondersError(w.subject));
    else w.resolve(msg);
  }
}

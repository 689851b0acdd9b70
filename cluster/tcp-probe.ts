import { connect } from 'node:net';

export interface TcpExchangeOptions {
  host?: string;
  port: number;
  /** Bytes to send once connected. */
  send?: string;
  /** Resolve as soon as the received text satisfies this; otherwise on the peer's close. */
  until?: (received: string) => boolean;
  timeoutMs?: number;
}

/** Connect, optionally send, collect the reply (until `until` holds or the peer closes). */
export function tcpExchange(o: TcpExchangeOptions): Promise<string> {
  return new Promise((resolveText, reject) => {
    const sock = connect({ host: o.host ?? '127.0.0.1', port: o.port });
    let received = '';
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolveText(received);
    };
    const timer = setTimeout(() => finish(new Error(`no reply from ${o.host ?? '127.0.0.1'}:${o.port} within ${o.timeoutMs ?? 2000} ms`)), o.timeoutMs ?? 2000);
    sock.setEncoding('utf8');
    sock.once('connect', () => {
      if (o.send !== undefined) sock.write(o.send);
    });
    sock.on('data', (chunk: string) => {
      received += chunk;
      if (o.until?.(received)) finish();
    });
    sock.once('end', () => finish());
    sock.once('close', () => finish());
    sock.once('error', (err) => finish(err));
  });
}

/** Send a ZooKeeper four-letter-word command (ruok, stat, mntr, srvr, cons, ...) and return the reply. */
export function zkFourLetterWord(port: number, command: string, host = '127.0.0.1', timeoutMs = 2000): Promise<string> {
  return tcpExchange({ host, port, send: command, timeoutMs });
}

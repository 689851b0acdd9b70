// A minimal NATS protocol client over a plain TCP socket, for fuzzing: it sends header blocks
// byte for byte (HPUB), so a test can put anything on the wire that the NATS server forwards
// and nats.js would refuse to build (header names with spaces or non-ASCII bytes, values with
// invalid UTF-8, lines without a colon, bare LF). Replies are parsed leniently.
import { connect as tcpConnect, type Socket } from 'node:net';

export interface RawNatsReply {
  /** The raw header block ('' when the reply had none). */
  headerText: string;
  /** Header lines as name → values (names exactly as sent, values trimmed). */
  headers: Map<string, string[]>;
  /** Status code from the first header line (`NATS/1.0 503`), 0 when none. */
  status: number;
  data: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CRLF = Buffer.from('\r\n');

function parseHeaderBlock(block: Uint8Array): { headers: Map<string, string[]>; status: number; text: string } {
  const text = decoder.decode(block);
  const lines = text.split('\r\n');
  const status = Number.parseInt(lines[0]!.replace('NATS/1.0', '').trim(), 10);
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const idx = line.indexOf(':');
    if (idx < 0) continue;
    const name = line.slice(0, idx);
    headers.set(name, [...(headers.get(name) ?? []), line.slice(idx + 1).trim()]);
  }
  return { headers, status: Number.isNaN(status) ? 0 : status, text };
}

/** A header block as nats.js would write it, from name/value pairs given verbatim. */
export function headerBlock(pairs: readonly (readonly [string | Uint8Array, string | Uint8Array])[], statusLine = 'NATS/1.0'): Uint8Array {
  const parts: Uint8Array[] = [encoder.encode(statusLine)];
  for (const [name, value] of pairs) {
    parts.push(CRLF, typeof name === 'string' ? encoder.encode(name) : name, encoder.encode(': '), typeof value === 'string' ? encoder.encode(value) : value);
  }
  parts.push(CRLF, CRLF);
  return Buffer.concat(parts);
}

export class RawNats {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly waiting = new Map<string, (reply: RawNatsReply) => void>();
  private nextId = 0;
  private readonly inbox: string;
  private pongWaiters: (() => void)[] = [];
  readonly errors: string[] = [];
  private closed = false;

  private constructor(private readonly socket: Socket) {
    this.inbox = `_RAWFUZZ.${Math.random().toString(36).slice(2)}`;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.errors.push(String(err)));
  }

  static async connect(url: string): Promise<RawNats> {
    const { hostname, port } = new URL(url.replace(/^nats:/, 'http:'));
    const socket = tcpConnect({ host: hostname, port: Number(port) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawNats(socket);
    const connectJson = JSON.stringify({ verbose: false, pedantic: false, headers: true, no_responders: true, protocol: 1, lang: 'raw-fuzz', version: '0' });
    socket.write(`CONNECT ${connectJson}\r\nSUB ${client.inbox}.* 1\r\n`);
    await client.ping();
    return client;
  }

  /** Resolves once the server answered a PING: everything sent before it was processed. */
  ping(timeoutMs = 5000): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no PONG from nats-server')), timeoutMs);
      this.pongWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.write('PING\r\n');
    });
  }

  /** Publishes; header block verbatim (null = plain PUB). */
  publish(subject: string, reply: string | null, headers: Uint8Array | null, payload: Uint8Array): void {
    const r = reply === null ? '' : ` ${reply}`;
    if (headers === null) {
      this.socket.write(Buffer.concat([Buffer.from(`PUB ${subject}${r} ${payload.byteLength}\r\n`), payload, CRLF]));
    } else {
      const total = headers.byteLength + payload.byteLength;
      this.socket.write(Buffer.concat([Buffer.from(`HPUB ${subject}${r} ${headers.byteLength} ${total}\r\n`), headers, payload, CRLF]));
    }
  }

  /** Request-reply; resolves with null when no reply came in time. */
  request(subject: string, headers: Uint8Array | null, payload: Uint8Array, timeoutMs: number): Promise<RawNatsReply | null> {
    const token = String(this.nextId++);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(token);
        resolve(null);
      }, timeoutMs);
      this.waiting.set(token, (reply) => {
        clearTimeout(timer);
        this.waiting.delete(token);
        resolve(reply);
      });
      this.publish(subject, `${this.inbox}.${token}`, headers, payload);
    });
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.byteLength === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const eol = this.buffer.indexOf('\r\n');
      if (eol < 0) return;
      const line = this.buffer.subarray(0, eol).toString('latin1');
      const [verb, ...args] = line.split(' ').filter((s) => s.length > 0);
      if (verb === 'MSG' || verb === 'HMSG') {
        // MSG subject sid [reply] size | HMSG subject sid [reply] hdrSize totalSize
        const total = Number(args[args.length - 1]);
        const hdrSize = verb === 'HMSG' ? Number(args[args.length - 2]) : 0;
        if (this.buffer.byteLength < eol + 2 + total + 2) return;
        const body = this.buffer.subarray(eol + 2, eol + 2 + total);
        this.buffer = this.buffer.subarray(eol + 2 + total + 2);
        const subject = args[0]!;
        const parsed = hdrSize > 0 ? parseHeaderBlock(body.subarray(0, hdrSize)) : { headers: new Map<string, string[]>(), status: 0, text: '' };
        const reply: RawNatsReply = { headerText: parsed.text, headers: parsed.headers, status: parsed.status, data: new Uint8Array(body.subarray(hdrSize)) };
        const token = subject.slice(this.inbox.length + 1);
        this.waiting.get(token)?.(reply);
        continue;
      }
      this.buffer = this.buffer.subarray(eol + 2);
      if (verb === 'PING') this.socket.write('PONG\r\n');
      else if (verb === 'PONG') this.pongWaiters.shift()?.();
      else if (verb === '-ERR') this.errors.push(line);
      // INFO and +OK need nothing.
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => {
      this.socket.end(() => resolve());
      setTimeout(resolve, 500);
    });
    this.socket.destroy();
  }
}

/** The reply's service error code (200 when it carries none), or 0 for no reply, 503 for no responders. */
export function replyCode(reply: RawNatsReply | null): number {
  if (reply === null) return 0;
  const code = reply.headers.get('Nats-Service-Error-Code')?.[0];
  if (code !== undefined) return Number(code);
  if (reply.status === 503) return 503;
  return 200;
}

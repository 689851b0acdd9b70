// Raw request-reply on the public contract, with exact control over headers: what an outside
// test in any language would send. Returns the code (200 for success) instead of throwing.
import { headers as natsHeaders, type NatsConnection, type NatsError } from 'nats';

export interface RawReply {
  code: number;
  description: string;
  revision: number | null;
  data: Uint8Array;
  text: string;
  headers: Map<string, string[]>;
}

export interface RawRequest {
  headers?: [string, string][];
  data?: Uint8Array | string;
  timeoutMs?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export async function raw(nc: NatsConnection, subject: string, request: RawRequest = {}): Promise<RawReply> {
  const h = natsHeaders();
  for (const [name, value] of request.headers ?? []) h.append(name, value);
  const data = typeof request.data === 'string' ? encoder.encode(request.data) : (request.data ?? new Uint8Array(0));
  let msg;
  try {
    msg = await nc.request(subject, data, { timeout: request.timeoutMs ?? 6000, headers: h });
  } catch (err) {
    const code = (err as NatsError).code;
    if (code === 'TIMEOUT') return { code: 0, description: 'timeout', revision: null, data: new Uint8Array(0), text: '', headers: new Map() };
    throw err;
  }
  const all = new Map<string, string[]>();
  if (msg.headers) for (const [k, v] of msg.headers) all.set(k, v);
  const errorCode = msg.headers?.get('Nats-Service-Error-Code');
  const revision = msg.headers?.get('Zi-Revision');
  return {
    code: errorCode ? Number(errorCode) : 200,
    description: msg.headers?.get('Nats-Service-Error') ?? '',
    revision: revision ? Number(revision) : null,
    data: msg.data,
    text: decoder.decode(msg.data),
    headers: all,
  };
}

/** Helpers bound to one cluster name. `node` targets zistore.<c>.node.<node>.<op>. */
export function kv(nc: NatsConnection, cluster: string) {
  const subject = (op: string, node?: string) => (node ? `zistore.${cluster}.node.${node}.${op}` : `zistore.${cluster}.${op}`);
  return {
    get: (key: string, node?: string) => raw(nc, subject('get', node), { headers: [['Zi-Key', key]] }),
    put: (key: string, value: string | Uint8Array, node?: string, ifRevision?: number) =>
      raw(nc, subject('put', node), {
        headers: [['Zi-Key', key], ...(ifRevision !== undefined ? ([['Zi-If-Revision', String(ifRevision)]] as [string, string][]) : [])],
        data: value,
      }),
    delete: (key: string, node?: string, ifRevision?: number) =>
      raw(nc, subject('delete', node), {
        headers: [['Zi-Key', key], ...(ifRevision !== undefined ? ([['Zi-If-Revision', String(ifRevision)]] as [string, string][]) : [])],
      }),
    members: async (node?: string) => JSON.parse((await raw(nc, subject('members', node))).text) as {
      cluster: string;
      node: string;
      epoch: number;
      leader: string | null;
      members: { id: string; role: string; state: string }[];
      replicas: string[];
    },
    raw: (op: string, request: RawRequest, node?: string) => raw(nc, subject(op, node), request),
  };
}

/** Polls `check` until it returns true or the time runs out; returns the elapsed ms. */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

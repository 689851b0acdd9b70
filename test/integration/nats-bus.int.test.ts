// Goal: the NATS bus keeps the Bus contract for peer request-reply on a real server: replies reach
// the request that asked (many in flight at once, matched by their reply subjects), and each
// failure surfaces as its own error: no responders, no reply in time, a closed connection —
// including requests still waiting when the bus closes.
// Method: one real nats-server for the file; buses created with createNatsBus, a peer that never
// answers made with a bare subscription.
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PeerMessage, PeerReply } from '../../actors/protocol.ts';
import { BusClosedError, BusTimeoutError, NoRespondersError } from '../../bus/errors.ts';
import { createNatsBus, type NatsBus } from '../../bus/nats-bus.ts';
import { subjects } from '../../bus/subjects.ts';
import { startNatsServer, type NatsServerHandle } from '../../cluster/nats-server.ts';

const log = pino({ level: process.env.LOG_LEVEL ?? 'silent' });
let nats: NatsServerHandle;
const buses: NatsBus[] = [];
let clusterCount = 0;

beforeAll(async () => {
  nats = await startNatsServer({});
}, 60_000);

afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
});

afterAll(async () => {
  await nats?.stop();
});

async function bus(cluster: string, nodeId: string): Promise<NatsBus> {
  const b = await createNatsBus({ servers: nats.url, cluster, nodeId, log });
  buses.push(b);
  return b;
}

const lease = (from: string, session: string): PeerMessage => ({ type: 'lease', from, epoch: 1, session });

describe('nats bus', () => {
  it('nats bus - concurrent peer requests each get their own reply', async () => {
    const cluster = `bus${++clusterCount}`;
    const a = await bus(cluster, 'a');
    const b = await bus(cluster, 'b');
    // b answers each lease with the session it was asked about, after a delay that reverses the order.
    await b.servePeers(async (m) => {
      const session = m.type === 'lease' ? m.session : '?';
      await new Promise((r) => setTimeout(r, 50 - Number(session)));
      return { ok: false, code: 'NOT_LEADER', epoch: 1, reason: session } satisfies PeerReply;
    });
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => a.request('b', lease('a', String(i)), 2000)));
    expect(replies.map((r) => (r.ok ? null : r.reason))).toEqual(Array.from({ length: 40 }, (_, i) => String(i)));
  });

  it('nats bus - no responders, no reply in time and a closed bus are told apart', async () => {
    const cluster = `bus${++clusterCount}`;
    const a = await bus(cluster, 'a');
    await expect(a.request('nobody', lease('a', 's'), 2000)).rejects.toBeInstanceOf(NoRespondersError);

    // A peer that takes the message and never answers.
    const silent = await bus(cluster, 'silent');
    const sub = silent.nc.subscribe(subjects.peerAll(cluster, 'silent'));
    await silent.nc.flush();
    const started = Date.now();
    await expect(a.request('silent', lease('a', 's'), 200)).rejects.toBeInstanceOf(BusTimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(sub.getReceived()).toBe(1);

    // A request still waiting when the bus closes fails at once; later ones are refused.
    const waiting = a.request('silent', lease('a', 's'), 30_000).catch((e: unknown) => e);
    await a.close();
    expect(await waiting).toBeInstanceOf(BusClosedError);
    await expect(a.request('silent', lease('a', 's'), 2000)).rejects.toBeInstanceOf(BusClosedError);
  });
});

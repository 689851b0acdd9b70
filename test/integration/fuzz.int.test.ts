// Goal: a real three-node cluster (ZooKeeper, nats-server, node processes) answers any client
// request, however malformed, as PROTOCOL.md says and in time, and shrugs off malformed peer
// messages: no crash, no stall, no change to the data or the group.
// Method: fast-check generates (seeded) a few hundred raw client requests, sent byte for byte
// over a bare NATS socket (test/support/fuzz-raw-nats.ts) so that header blocks can hold what
// nats.js would refuse to build; each reply is checked against a key-value model with revisions
// (test/support/fuzz-requests.ts). Then garbage peer frames (test/support/fuzz-model.ts), all
// failing the shape check, go to every node's peer subjects, with and without a reply subject.
// Well-formed forged peer messages: forged-peers.int.test.ts and security.int.test.ts.
// Replay: FUZZ_SEED=<seed printed below>; sizes: FUZZ_CLIENT_REQUESTS, FUZZ_PEER_MESSAGES.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from 'nats';
import { LocalCluster } from '../../cluster/local-cluster.ts';
import { decode } from '../../bus/codec.ts';
import { checkPeerMessage } from '../../actors/peer-check.ts';
import type { PeerReply } from '../../actors/protocol.ts';
import { kv, raw as rawRequest } from '../support/raw-client.ts';
import { headerBlock, RawNats, replyCode, type RawNatsReply } from '../support/fuzz-raw-nats.ts';
import { badHeaderNameArb, brokenFrameArb, deepFrame, fillBytes, keyViolations, PEER_TYPES, peerFrameArb, SPEC_MAX_REVISION } from '../support/fuzz-model.ts';
import { expectReply, KvModel, requestSpecArb, resolveRequest, type Expectation } from '../support/fuzz-requests.ts';

const CLUSTER = 'fuzz';
const NODES = ['n1', 'n2', 'n3'];
const OP_TIMEOUT_MS = 4000;
/** PROTOCOL.md: clients wait a little longer than the operation timeout. */
const REPLY_WAIT_MS = OP_TIMEOUT_MS + 1500;
const SESSION_TIMEOUT_MS = 10_000;
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const CLIENT_REQUESTS = Number(process.env.FUZZ_CLIENT_REQUESTS ?? 1200);
const PEER_MESSAGES = Number(process.env.FUZZ_PEER_MESSAGES ?? 1500);
const ALLOWED_CODES = [200, 400, 404, 409, 413];

let cluster: LocalCluster;
let nc: NatsConnection;
let rawNats: RawNats;
let store: ReturnType<typeof kv>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = new TextEncoder();

const SEEDED: [string, Uint8Array][] = [
  ['seed/empty', new Uint8Array(0)],
  ['seed/small', text.encode('hello')],
  ['seed/binary', new Uint8Array(256).map((_, i) => i)],
  ['seed/64k', fillBytes(65_536, 1)],
  ['seed/1mib', fillBytes(1_048_576, 2)],
  ['seed/ключ-🔑', text.encode('unicode key')],
  ['s'.repeat(1024), text.encode('longest key')],
  ['seed/inner  space\u00a0nbsp', text.encode('spaces inside')],
  ['__proto__', text.encode('not a prototype')],
];
const POOL = ['fz/a', 'fz/b', 'fz/c', 'fz/d', 'fz/e', 'fz/ключ', 'fz/🔑', 'fz/inner space', 'f'.repeat(1024), 'constructor', 'fz/*.>', ...SEEDED.map(([k]) => k)];
const model = new KvModel(POOL);

beforeAll(async () => {
  console.log(`fuzz seed: FUZZ_SEED=${SEED}`);
  // A long session timeout: this file tests input handling, not failure detection, and a loaded
  // 2-core CI box can starve ZooKeeper for seconds (expiring every session, changing the epoch).
  // A bare nats-server (no access control): what reaches the nodes is whatever the fuzzer sends.
  cluster = await LocalCluster.start({ nodes: 3, cluster: CLUSTER, opTimeoutMs: OP_TIMEOUT_MS, sessionTimeoutMs: SESSION_TIMEOUT_MS, access: 'none' });
  await cluster.waitServing(60_000);
  nc = await cluster.connectClient();
  rawNats = await RawNats.connect(cluster.natsUrl);
  store = kv(nc, CLUSTER);
});

afterAll(async () => {
  await rawNats?.close();
  await nc?.close();
  const pids = cluster ? [...cluster.view().map((n) => n.pid), cluster.zookeeper.pid, cluster.nats.pid] : [];
  await cluster?.stop();
  for (const pid of pids) if (pid !== null) expect(() => process.kill(pid, 0), `pid ${pid} still alive`).toThrow();
});

const bytesEqual = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Everything wrong with one reply, given what the model expected; null when all is right. */
function judge(expected: Expectation, reply: RawNatsReply | null, targetNode: string | null, body: Uint8Array): string | null {
  if (reply === null) return `no reply within ${REPLY_WAIT_MS} ms`;
  const code = replyCode(reply);
  if (!(expected.codes as readonly number[]).includes(code)) return `code ${code} (${reply.headers.get('Nats-Service-Error')?.[0] ?? ''})`;
  if (code !== 200) {
    if (reply.data.byteLength !== 0) return `error reply with a ${reply.data.byteLength}-byte body`;
    if (!(reply.headers.get('Nats-Service-Error')?.[0] ?? '')) return 'error reply without Nats-Service-Error';
    return null;
  }
  const revisionText = reply.headers.get('Zi-Revision')?.[0];
  const revision = revisionText !== undefined && /^[0-9]+$/.test(revisionText) ? Number(revisionText) : null;
  switch (expected.effect) {
    case 'none':
      return null;
    case 'members': {
      const view = JSON.parse(new TextDecoder().decode(reply.data)) as { cluster: string; node: string; leader: string | null; members: { id: string; state: string }[] };
      if (view.cluster !== CLUSTER) return `members: cluster ${view.cluster}`;
      if (targetNode !== null && view.node !== targetNode) return `members: answered by ${view.node}, asked ${targetNode}`;
      if (!NODES.includes(view.leader ?? '')) return `members: leader ${view.leader}`;
      if (!view.members.every((m) => m.state === 'serving')) return `members: ${JSON.stringify(view.members)}`;
      return null;
    }
    case 'read':
      if (revision !== expected.stored.rev) return `get: revision ${revisionText}, model has ${expected.stored.rev}`;
      if (!bytesEqual(reply.data, expected.stored.value)) return `get: ${reply.data.byteLength}-byte value differs from the model's ${expected.stored.value.byteLength} bytes`;
      return null;
    case 'write': {
      if (reply.data.byteLength !== 0) return 'write reply with a body';
      if (revision === null || revision >= SPEC_MAX_REVISION) return `write: Zi-Revision ${revisionText}`;
      if (revision <= model.lastRevision) return `write: revision ${revision} does not grow (last seen ${model.lastRevision})`;
      model.lastRevision = revision;
      model.touched.add(expected.key);
      if (expected.deletes) model.data.delete(expected.key);
      else model.data.set(expected.key, { value: body, rev: revision });
      return null;
    }
  }
}

/** After a surprise, take the store's word for one key so one bug does not cascade. */
async function resync(key: string): Promise<void> {
  const got = await store.get(key);
  if (got.code === 200 && got.revision !== null) {
    model.data.set(key, { value: new Uint8Array(got.data), rev: got.revision });
    model.lastRevision = Math.max(model.lastRevision, got.revision);
  } else if (got.code === 404) model.data.delete(key);
  model.touched.add(key);
}

/** Reads every key the model knows of (and every absent one it touched) at every node. */
async function differencesFromModel(): Promise<string[]> {
  const out: string[] = [];
  const keys = new Set([...model.data.keys(), ...model.touched]);
  for (const key of keys) {
    const want = model.data.get(key);
    for (const node of NODES) {
      const got = await store.get(key, node);
      const label = `${JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)} at ${node}`;
      if (want === undefined) {
        if (got.code !== 404) out.push(`${label}: expected 404, got ${got.code} rev ${got.revision}`);
      } else if (got.code !== 200) out.push(`${label}: expected 200, got ${got.code} ${got.description}`);
      else if (got.revision !== want.rev) out.push(`${label}: revision ${got.revision}, expected ${want.rev}`);
      else if (!bytesEqual(got.data, want.value)) out.push(`${label}: value changed (${got.data.byteLength} bytes, expected ${want.value.byteLength})`);
    }
  }
  return out;
}

describe('fuzz - real cluster', () => {
  it('fuzz - seed data is written and readable at every node', async () => {
    for (const [i, [key, value]] of SEEDED.entries()) {
      const r = await store.put(key, value, NODES[i % NODES.length]);
      expect(r.code, key).toBe(200);
      expect(r.revision!).toBeGreaterThan(model.lastRevision);
      model.lastRevision = r.revision!;
      model.data.set(key, { value, rev: r.revision! });
      model.touched.add(key);
    }
    expect(await differencesFromModel()).toEqual([]);
  });

  it('client fuzz - random and malformed requests get the PROTOCOL.md code, in time, with the model`s data', async () => {
    const specs = fc.sample(requestSpecArb(NODES), { seed: SEED, numRuns: CLIENT_REQUESTS });
    const problems: string[] = [];
    const codes = new Map<string, number>();
    let slowestMs = 0;
    const started = performance.now();
    for (const [i, spec] of specs.entries()) {
      const req = resolveRequest(spec, model, CLUSTER);
      const expected = expectReply(spec.op, req.seen, spec.bodyLength, model);
      const t0 = performance.now();
      const reply = await rawNats.request(req.subject, req.block, req.body, REPLY_WAIT_MS);
      slowestMs = Math.max(slowestMs, performance.now() - t0);
      const code = replyCode(reply);
      codes.set(`${spec.op} ${code}`, (codes.get(`${spec.op} ${code}`) ?? 0) + 1);
      const problem = judge(expected, reply, spec.node, req.body) ?? (ALLOWED_CODES.includes(code) ? null : `code ${code} outside ${ALLOWED_CODES}`);
      if (problem !== null) {
        problems.push(`#${i} (FUZZ_SEED=${SEED}) ${spec.op} ${req.describe}: expected ${expected.codes.join('|')} (${expected.why}); ${problem}`);
        const key = req.seen.get('Zi-Key');
        if (key?.length === 1 && keyViolations(key).length === 0) await resync(key[0]!);
        if (problems.length >= 25) break;
      }
    }
    console.log(
      `client fuzz: ${specs.length} requests in ${Math.round(performance.now() - started)} ms, slowest ${Math.round(slowestMs)} ms; ` +
        `codes ${JSON.stringify(Object.fromEntries([...codes].sort()))}`,
    );
    expect(problems).toEqual([]);
    // The generator reached every outcome.
    for (const c of ['get 200', 'get 400', 'get 404', 'put 200', 'put 400', 'put 409', 'put 413', 'delete 200', 'delete 404', 'members 200']) {
      expect(codes.get(c) ?? 0, c).toBeGreaterThan(0);
    }
    expect(await differencesFromModel()).toEqual([]);
  });

  // FINDING (bug): a request whose header block nats.js refuses to decode is answered 500
  // "internal error (a bug)" instead of 400 "malformed header": a header NAME holding a byte
  // outside printable ASCII 33–126 (a space, a tab, NUL, DEL, 'é' …) gets 500 "' ' is not a valid
  // character for a header key"; a header VALUE holding a bare CR or LF (the block is split only
  // on CR LF) gets 500 "invalid header value - \r and \n are not allowed.". Every op, `members`
  // included. bus/nats-bus.ts toHeaderMap reads msg.headers, whose lazy decode (nats.js
  // MsgHdrsImpl.decode → canonicalMIMEHeaderKey / validHeaderValue) throws; the throw escapes the
  // endpoint callback in serveClients and nats.js's service wrapper answers 500 with err.message.
  // Any client writing raw NATS protocol, or a non-JS client that does not vet header bytes, can
  // send this. Fix: decode the headers inside a try in serve() and answer 400. Remove `.fails`
  // once fixed.
  it('client - a malformed header line (bad name byte, or bare CR/LF in a value) gets 400', async () => {
    const observed = new Map<string, string>();
    const malformedLineArb = fc.oneof(
      badHeaderNameArb.map((name) => ({ what: 'name', pairs: [['Zi-Key', 'fz/never-written'], [name, 'x']] as [string, string][] })),
      fc
        .tuple(fc.string({ unit: 'grapheme-ascii', maxLength: 6 }), fc.constantFrom('\n', '\r', '\r\r', '\n\n', '\n\r'), fc.string({ unit: 'grapheme-ascii', maxLength: 6 }), fc.boolean())
        .map(([a, bad, b, inKey]) => ({
          what: 'value',
          // Inside the value: nats.js trims CR and LF off its ends before it looks.
          pairs: (inKey ? [['Zi-Key', `fz/${a}${bad}${b}x`]] : [['Zi-Key', 'fz/never-written'], ['X-Extra', `x${a}${bad}${b}x`]]) as [string, string][],
        })),
    );
    try {
      await fc.assert(
        fc.asyncProperty(malformedLineArb, fc.constantFrom(...NODES), async ({ what, pairs }, node) => {
          const reply = await rawNats.request(`zistore.${CLUSTER}.node.${node}.get`, headerBlock(pairs), new Uint8Array(0), REPLY_WAIT_MS);
          if (!observed.has(what)) observed.set(what, `${JSON.stringify(pairs)} at ${node} → ${replyCode(reply)} ${JSON.stringify(reply?.headers.get('Nats-Service-Error')?.[0])}`);
          expect(replyCode(reply), JSON.stringify(pairs)).toBe(400);
        }),
        { numRuns: 40, seed: SEED, endOnFailure: true },
      );
    } finally {
      // Probe both kinds once for the log, even when the first one already failed.
      for (const [what, pairs] of [['name', [['Zi-Key', 'fz/never-written'], ['X Bad', 'x']]], ['value', [['Zi-Key', 'fz/never-written'], ['X-Extra', 'a\nb']]]] as const) {
        if (observed.has(what)) continue;
        const reply = await rawNats.request(`zistore.${CLUSTER}.node.n1.get`, headerBlock(pairs), new Uint8Array(0), REPLY_WAIT_MS);
        observed.set(what, `${JSON.stringify(pairs)} at n1 → ${replyCode(reply)} ${JSON.stringify(reply?.headers.get('Nats-Service-Error')?.[0])}`);
      }
      console.log(`malformed header lines: ${[...observed].map(([k, v]) => `${k}: ${v}`).join('; ')}`);
    }
  });

  it('peer fuzz - malformed peer messages on every node and type: nodes live, serve, and keep their data', async () => {
    const before = await Promise.all(NODES.map((n) => store.members(n)));
    const typeArb = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...PEER_TYPES) },
      { weight: 1, arbitrary: fc.constantFrom('ping', 'INVALIDATE', 'Sync', 'x', 'sync2', 'a.b', 'a.b.c', '1', '-', '_', 'ack', 'replies') },
      { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/) },
    );
    const frameArb = fc.oneof(
      { weight: 40, arbitrary: peerFrameArb },
      { weight: 20, arbitrary: brokenFrameArb },
      { weight: 1, arbitrary: fc.integer({ min: 2_000, max: 20_000 }).map((depth) => ({ kind: 'deep JSON', bytes: deepFrame(depth, depth % 2 ? 'array' : 'object') })) },
      { weight: 1, arbitrary: fc.nat().map((seed) => ({ kind: 'random bytes (1 MiB)', bytes: fillBytes(1_048_576 + (seed % 4096), seed) })) },
    );
    const malformed = (bytes: Uint8Array): boolean => {
      try {
        checkPeerMessage(decode<unknown>(bytes));
        return false;
      } catch {
        return true;
      }
    };
    const cases = fc
      .sample(fc.record({ frame: frameArb, node: fc.constantFrom(...NODES), type: typeArb, reply: fc.boolean(), headers: fc.nat({ max: 9 }).map((n) => n === 0) }), { seed: SEED + 1, numRuns: PEER_MESSAGES * 2 })
      .filter((c) => malformed(c.frame.bytes))
      .slice(0, PEER_MESSAGES);
    expect(cases.length).toBe(PEER_MESSAGES);

    const badReplies: string[] = [];
    const kinds = new Map<string, number>();
    let answered = 0;
    const lanes = 8;
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        for (let i = lane; i < cases.length; i += lanes) {
          const { frame, node, type, reply, headers } = cases[i]!;
          const kind = frame.kind.replace(/ \(.*\)$/, '');
          kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
          const subject = `zistore.${CLUSTER}.peer.${node}.fuzzer.${type}`;
          // A tenth go over the raw socket with a header block nats.js cannot decode (the
          // client side's fatal case): peers must not read headers at all.
          const block = headers ? Buffer.from('NATS/1.0\r\nX-Bad\nName: x\r\nZi-Key: a\nb\r\n\r\n') : null;
          if (!reply) {
            if (block) rawNats.publish(subject, null, block, frame.bytes);
            else nc.publish(subject, frame.bytes);
            continue;
          }
          try {
            let data: Uint8Array;
            if (block) {
              const r = await rawNats.request(subject, block, frame.bytes, 3000);
              if (r === null) throw new Error('no reply (raw socket, malformed header block)');
              data = r.data;
            } else data = (await nc.request(subject, frame.bytes, { timeout: 3000 })).data;
            const answer = decode<PeerReply>(data);
            if (answer.ok || answer.code !== 'BAD_MESSAGE') badReplies.push(`${subject} ${frame.kind}: ${JSON.stringify(answer)}`);
            else answered++;
          } catch (err) {
            badReplies.push(`${subject} ${frame.kind}: ${(err as Error).message}`);
          }
        }
      }),
    );
    await nc.flush();
    await rawNats.ping();
    await sleep(500);
    console.log(`peer fuzz: ${cases.length} malformed frames (${answered} answered BAD_MESSAGE); kinds ${JSON.stringify(Object.fromEntries([...kinds].sort()))}`);
    expect(badReplies).toEqual([]);

    // Every node process is alive.
    for (const node of cluster.view()) {
      expect(node.running, node.id).toBe(true);
      expect(() => process.kill(node.pid!, 0), `${node.id} pid ${node.pid}`).not.toThrow();
    }
    // Every node serves, in the same group, under the same leader and epoch as before.
    await cluster.waitServing(10_000);
    const after = await Promise.all(NODES.map((n) => store.members(n)));
    expect(after.map((v) => [v.node, v.leader, v.epoch])).toEqual(before.map((v) => [v.node, v.leader, v.epoch]));
    // The data is what it was, at every node, value and revision.
    expect(await differencesFromModel()).toEqual([]);
    // And every node still takes writes.
    for (const node of NODES) {
      const put = await store.put(`fz/after-peer-fuzz/${node}`, node, node);
      expect(put.code).toBe(200);
      for (const reader of NODES) expect((await store.get(`fz/after-peer-fuzz/${node}`, reader)).text).toBe(node);
    }
  });

  // FINDING (bug, availability): a request header whose NAME holds a bare LF or CR (possible in
  // raw NATS protocol; the header block is split only on CR LF) is never answered, and the node
  // that gets it goes deaf on NATS until its client notices the stale connection (~4–6 s with
  // pingInterval 2 s × maxPingOut 2) and reconnects. Chain: bus/nats-bus.ts toHeaderMap →
  // msg.headers throws NatsError "'\n' is not a valid character for a header key"; nats.js's
  // service wrapper then tries to answer 500 with that message as the Nats-Service-Error header
  // value, which nats.js refuses (CR/LF in a header value) and throws from inside its catch; the
  // exception leaves the subscription callback and kills nats.js's protocol reader loop (the node
  // log shows "reader closed NatsError: invalid header value"). Sent to the leader, one such
  // message stalls writes cluster-wide for those seconds; a steady trickle keeps the node (or the
  // whole cluster) down. Same fix as above (catch around header decoding in serve()). Remove
  // `.fails` once fixed. Runs last: it disturbs the cluster.
  it('client - a header name with a bare LF gets 400 and the node keeps answering', async () => {
    const leader = (await store.members('n1')).leader!;
    const follower = NODES.find((n) => n !== leader)!;
    const block = Buffer.concat([Buffer.from('NATS/1.0\r\nZi-Key: seed/small\r\nX-Bad\nName: x\r\n\r\n')]);
    const bad = rawNats.request(`zistore.${CLUSTER}.node.${leader}.get`, block, new Uint8Array(0), REPLY_WAIT_MS);
    await sleep(200);
    // Diagnostics for the report: a write through a follower meanwhile, and when the leader answers again.
    const duringWrite = store.put('fz/during-deaf-leader', 'x', follower);
    const probeStart = performance.now();
    const probeLimitMs = 30_000;
    let answeredAgainMs: number | null = null;
    while (performance.now() - probeStart < probeLimitMs) {
      const r = await rawRequest(nc, `zistore.${CLUSTER}.node.${leader}.members`, { timeoutMs: 500 });
      if (r.code !== 0) {
        answeredAgainMs = Math.round(performance.now() - probeStart);
        break;
      }
    }
    const [badReply, write] = await Promise.all([bad, duringWrite]);
    console.log(
      `LF in header name, sent to leader ${leader}: reply ${badReply === null ? 'none' : replyCode(badReply)}; ` +
        `leader answered again after ${answeredAgainMs ?? `>${probeLimitMs}`} ms; a put via follower ${follower} meanwhile got ${write.code} ${write.description}`,
    );
    expect(replyCode(badReply)).toBe(400);
    expect(answeredAgainMs).not.toBeNull();
    expect(answeredAgainMs!).toBeLessThan(500);
  });
});

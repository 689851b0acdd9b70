// Goal: `zistore up` puts no proxy between its nodes and the servers, and its process commands
// still cut links for real: after `rmi-down` nats-server no longer has the node's connection
// (requests to it get "no responders" at once, not a timeout) and `rmi-up` brings it back,
// serving the writes it missed; after `zk-down` the node's ZooKeeper session dies (its member
// znode disappears from the others' view) and `zk-up` brings it back; `kill` is kill -9.
// The same socket faults black-hole a link ('drop', as the proxies do for the tests and the
// nemesis): the server keeps the node's connection, but nothing passes.
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as natsConnect, type NatsConnection } from 'nats';
import { connect, type MembersView } from '../../client/index.ts';
import { freePort } from '../../cluster/ports.ts';
import { LocalCluster } from '../../cluster/local-cluster.ts';
import { remoteControl } from '../../cli/admin.ts';
import { subjects } from '../../bus/subjects.ts';

const BIN = join(import.meta.dirname, '..', '..', 'cli', 'zistore.js');
const CLUSTER = 'upfaults';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last error: ${String(last)})`);
    await sleep(100);
  }
}

/** The node's own members view over its node subject; the error tells how it failed. */
async function ownView(nc: NatsConnection, id: string): Promise<MembersView> {
  const reply = await nc.request(`zistore.${CLUSTER}.node.${id}.members`, new Uint8Array(0), { timeout: 1000 });
  return JSON.parse(new TextDecoder().decode(reply.data)) as MembersView;
}

const serving = (view: MembersView, id: string) => view.members.some((m) => m.id === id && m.state === 'serving');

describe('zistore up: direct links, real faults', () => {
  it('rmi-down/rmi-up and zk-down/zk-up cut and restore a node connected straight to the servers', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'zistore-upfaults-'));
    const natsPort = await freePort();
    const zkPort = await freePort();
    const up = spawn(process.execPath, [BIN, 'up', '--nodes', '3', '--cluster', CLUSTER, '--nats-port', String(natsPort), '--zk-port', String(zkPort), '--data-dir', dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    up.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => up.on('exit', (code) => resolve(code)));
    let nc: NatsConnection | null = null;
    let kv: Awaited<ReturnType<typeof connect>> | null = null;
    try {
      await eventually('ready line', async () => (out.includes('ready') ? true : undefined), 60_000);
      // No hop: every node points at nats-server and ZooKeeper themselves.
      const nodeLines = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`--cluster ${CLUSTER}`) && l.includes(' node '));
      expect(nodeLines).toHaveLength(3);
      for (const line of nodeLines) {
        expect(line).toContain(`--nats nats://127.0.0.1:${natsPort}`);
        expect(line).toContain(`--zk 127.0.0.1:${zkPort}`);
      }

      nc = await natsConnect({ servers: `nats://127.0.0.1:${natsPort}`, maxReconnectAttempts: -1 });
      const control = remoteControl(nc, subjects.admin(CLUSTER));
      kv = await connect({ servers: `nats://127.0.0.1:${natsPort}`, cluster: CLUSTER, timeoutMs: 15_000 });
      await kv.put('k', 'before');
      // The faults go to the followers: with the leader cut, writes wait for a new leader (a few
      // seconds), which is the failover tests' business, not this one's.
      const leader = (await ownView(nc, 'n1')).leader!;
      const [zkVictim, natsVictim] = ['n1', 'n2', 'n3'].filter((id) => id !== leader) as [string, string];

      // rmi-down: nats-server drops the node's connection (no subscriber left: "no responders").
      await control.rmiDown(natsVictim);
      expect((await control.view()).find((n) => n.id === natsVictim)).toMatchObject({ rmi: 'down', zk: 'up', running: true });
      const started = Date.now();
      const err = await eventually('the NATS victim gone from nats-server', async () => {
        try {
          await ownView(nc!, natsVictim);
          return undefined;
        } catch (e) {
          return (e as { code?: string }).code === '503' ? (e as Error) : undefined;
        }
      }, 5000);
      expect(err).toBeDefined();
      expect(Date.now() - started).toBeLessThan(3000);
      // It stays cut (the node's reconnects are refused): still no responder a while later.
      await sleep(1500);
      await expect(ownView(nc, natsVictim)).rejects.toMatchObject({ code: '503' });
      // The others go on without it.
      const { revision } = await kv.put('k', 'during');

      await control.rmiUp(natsVictim);
      expect((await control.view()).find((n) => n.id === natsVictim)?.rmi).toBe('up');
      await eventually('the NATS victim serving again after rmi-up', async () => (serving(await ownView(nc!, natsVictim), natsVictim) ? true : undefined));
      const got = await eventually('the NATS victim has the write it missed', async () => {
        const g = await kv!.get('k', { node: natsVictim, timeoutMs: 2000 });
        return g?.revision === revision ? g : undefined;
      });
      expect(got.text()).toBe('during');

      // zk-down: the node's ZooKeeper session dies, so its member znode goes.
      await control.zkDown(zkVictim);
      expect((await control.view()).find((n) => n.id === zkVictim)).toMatchObject({ rmi: 'up', zk: 'down' });
      await eventually('the ZooKeeper victim gone from the members', async () => {
        const view = await ownView(nc!, leader);
        return view.members.some((m) => m.id === zkVictim) ? undefined : true;
      });
      await control.zkUp(zkVictim);
      await eventually('the ZooKeeper victim a serving member again after zk-up', async () => (serving(await ownView(nc!, leader), zkVictim) && serving(await ownView(nc!, zkVictim), zkVictim) ? true : undefined), 30_000);
      expect((await kv.get('k', { node: zkVictim }))?.text()).toBe('during');

      // kill is kill -9: the process is gone.
      const pid = (await control.view()).find((n) => n.id === natsVictim)!.pid!;
      await control.kill(natsVictim);
      expect(() => process.kill(pid, 0)).toThrow();
    } finally {
      await kv?.close().catch(() => undefined);
      await nc?.close().catch(() => undefined);
      up.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    rmSync(dataDir, { recursive: true, force: true });
  }, 150_000);

  it("socket faults black-hole a link ('drop'): the server keeps the connection, nothing passes; restore reconnects", async () => {
    const cluster = await LocalCluster.start({ nodes: 3, cluster: 'socketdrop', faults: 'socket', logLevel: 'warn' });
    let nc: NatsConnection | null = null;
    try {
      await cluster.waitServing(60_000);
      expect([...cluster.nodes.values()].every((n) => n.natsProxy === null && n.zkProxy === null)).toBe(true);
      nc = await cluster.connectClient();
      const ask = (id: string) => nc!.request(`zistore.socketdrop.node.${id}.members`, new Uint8Array(0), { timeout: 1000 });
      await ask('n3');
      await cluster.rmiDown('n3', 'drop');
      expect(cluster.view().find((n) => n.id === 'n3')?.rmi).toBe('down');
      // Its subscriptions are still at nats-server (no "no responders"), but it never answers.
      await expect(ask('n3')).rejects.toMatchObject({ code: 'TIMEOUT' });
      await expect(ask('n3')).rejects.toMatchObject({ code: 'TIMEOUT' });
      await cluster.rmiUp('n3');
      await eventually('n3 answers again after the black hole', async () => {
        const view = JSON.parse(new TextDecoder().decode((await ask('n3')).data)) as MembersView;
        return serving(view, 'n3') ? true : undefined;
      });
    } finally {
      await nc?.close().catch(() => undefined);
      await cluster.stop();
    }
  }, 120_000);
});

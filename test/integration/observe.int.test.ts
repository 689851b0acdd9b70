// Goal: observability on a real cluster (ZooKeeper, nats-server, three node processes started
// with metrics and --inspect). Method: scrape a node's /metrics after client puts; start the
// viewer against the cluster, load its page in headless Chromium, put a key through NATS and
// watch its entry go invalid → valid in the page and in /state. The browser test is skipped,
// with that said in its name, when /usr/bin/chromium is missing (scripts/setup.sh installs it).
// The screenshot goes to docs/inspector.png when that file is missing or
// ZISTORE_UPDATE_SCREENSHOT=1, otherwise to the cluster's temp dir (no churn in the work tree).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { connect } from '../../client/index.ts';
import { LocalCluster } from '../../cluster/local-cluster.ts';
import type { ViewerSnapshot } from '../../observe/viewer-state.ts';
import { startViewer } from '../../observe/viewer-server.ts';

const CLUSTER = 'obs';
const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const SCREENSHOT = join(import.meta.dirname, '..', '..', 'docs', 'inspector.png');

/** The value of one sample line of a Prometheus text exposition (extra labels must match exactly). */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v) && Object.keys(have).length === Object.keys(labels).length) return Number(m[3]);
  }
  return undefined;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await LocalCluster.start({ nodes: 3, cluster: CLUSTER, metrics: true, inspect: true });
  await cluster.waitServing(45_000);
});

afterAll(async () => {
  await cluster?.stop();
});

describe('observe', () => {
  it('metrics - /metrics counts requests by op and code, and reports keys held', async () => {
    const kv = await connect({ servers: cluster.natsUrl, cluster: CLUSTER });
    try {
      const portFile = Number((await readFile(join(cluster.dataDir, 'n1.metrics-port'), 'utf8')).trim());
      expect(portFile).toBe(cluster.view().find((n) => n.id === 'n1')?.metricsPort);
      for (let i = 0; i < 5; i++) await kv.put(`metric-${i}`, `value-${i}`, { node: 'n1' });
      await expect(kv.put('metric-0', 'x', { node: 'n1', ifRevision: 999 })).rejects.toMatchObject({ code: 409 });
      expect(await kv.get('no-such-key', { node: 'n1' })).toBeNull();

      const scrape = async (id: string) => {
        const res = await fetch(cluster.metricsUrl(id)!);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toContain('text/plain');
        return res.text();
      };
      const text = await scrape('n1');
      const n1 = { node: 'n1', cluster: CLUSTER };
      expect(sample(text, 'zistore_requests_total', { ...n1, op: 'put', code: '200' })).toBe(5);
      expect(sample(text, 'zistore_requests_total', { ...n1, op: 'put', code: '409' })).toBe(1);
      expect(sample(text, 'zistore_requests_total', { ...n1, op: 'get', code: '404' })).toBe(1);
      expect(sample(text, 'zistore_request_duration_seconds_count', { ...n1, op: 'put' })).toBe(6);
      expect(sample(text, 'zistore_keys', n1)).toBe(5);
      expect(sample(text, 'zistore_session_state', { ...n1, state: 'connected' })).toBe(1);
      expect(sample(text, 'zistore_member_state', { ...n1, state: 'serving' })).toBe(1);

      // Every node holds a full replica (a follower's keys count once the validations arrived),
      // and exactly one says it leads, with replication round trips to both others.
      const texts = await Promise.all(['n1', 'n2', 'n3'].map((id) => until(`keys on ${id}`, 5000, async () => {
        const t = await scrape(id);
        return sample(t, 'zistore_keys', { node: id, cluster: CLUSTER }) === 5 ? t : undefined;
      })));
      const leaders = ['n1', 'n2', 'n3'].filter((id, i) => sample(texts[i], 'zistore_role', { node: id, cluster: CLUSTER, role: 'leader' }) === 1);
      expect(leaders).toHaveLength(1);
      const leaderText = texts[['n1', 'n2', 'n3'].indexOf(leaders[0])];
      for (const peer of ['n1', 'n2', 'n3'].filter((id) => id !== leaders[0])) {
        expect(sample(leaderText, 'zistore_replication_round_trip_seconds_count', { node: leaders[0], cluster: CLUSTER, peer, outcome: 'ok' })).toBeGreaterThan(0);
      }
      expect(sample(leaderText, 'zistore_epoch', { node: leaders[0], cluster: CLUSTER })).toBeGreaterThan(0);
    } finally {
      await kv.close();
    }
  });

  it.skipIf(!hasChromium)(
    `inspector - the page shows roles and a put's entry going invalid → valid${hasChromium ? '' : ` (SKIPPED: ${CHROMIUM} is missing; sh scripts/setup.sh installs it)`}`,
    async () => {
      const { chromium } = await import('playwright-core');
      const nc = await cluster.connectClient();
      const viewer = await startViewer({ nc, cluster: CLUSTER, log: pino({ level: 'silent' }) });
      const kv = await connect({ servers: cluster.natsUrl, cluster: CLUSTER });
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      try {
        const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
        await page.goto(viewer.url);
        // Every node reports at least once a second: all three appear with their roles.
        await page.waitForFunction(
          () => document.querySelectorAll('article[data-role="leader"]').length === 1 && document.querySelectorAll('article[data-role="follower"]').length === 2,
          null,
          { timeout: 10_000 },
        );
        const roles = await page.$$eval('article[data-node]', (cards) => cards.map((c) => `${c.getAttribute('data-node')}:${c.querySelector('[data-field="role"]')?.textContent}`));
        expect(roles.map((r) => r.split(':')[1]).sort()).toEqual(['follower', 'follower', 'leader']);

        // A put through NATS (the cluster-wide subject: any node may take it).
        const { revision } = await kv.put('inspected', 'hello');
        const row = 'tr[data-key="inspected"]';
        await page.waitForFunction(
          ({ row, rev }) => document.querySelectorAll(`${row} td[data-node] .chip[data-state="valid"][data-rev="${rev}"]`).length === 3,
          { row, rev: String(revision) },
          { timeout: 10_000 },
        );
        // The page lists the key's transitions: invalid at the put's revision before valid.
        const trail = await page.$$eval(`${row} .history .chip`, (chips) => chips.map((c) => `${c.getAttribute('data-node')} ${c.getAttribute('data-state')} ${c.getAttribute('data-rev')}`));
        const sawInvalidThenValid = (lines: string[]) =>
          ['n1', 'n2', 'n3'].some((id) => {
            const i = lines.indexOf(`${id} invalid ${revision}`);
            return i >= 0 && lines.indexOf(`${id} valid ${revision}`) > i;
          });
        expect(sawInvalidThenValid(trail), `trail: ${trail.join(', ')}`).toBe(true);

        // The same from /state.
        const state = (await (await fetch(`${viewer.url}/state`)).json()) as ViewerSnapshot;
        const key = state.keys.find((k) => k.key === 'inspected');
        expect(key).toBeDefined();
        expect(sawInvalidThenValid(key!.history.map((h) => `${h.node} ${h.state} ${h.rev}`))).toBe(true);
        expect(Object.keys(key!.nodes).sort()).toEqual(['n1', 'n2', 'n3']);
        expect(Object.values(key!.nodes).every((e) => e.state === 'valid' && e.rev === revision)).toBe(true);
        expect(state.nodes.map((n) => n.status?.role).sort()).toEqual(['follower', 'follower', 'leader']);
        expect(state.replicas?.slice().sort()).toEqual(['n1', 'n2', 'n3']);
        // The write's messages went by: invalidations from the leader and the replicas' acks.
        expect(state.messages.some((m) => m.type === 'invalidate' && m.keys.includes('inspected') && m.sent && m.received)).toBe(true);
        expect(state.messages.some((m) => m.type === 'ack' && m.to === state.leader)).toBe(true);

        // A little more traffic for the screenshot: a forwarded write and a delete.
        const follower = state.nodes.find((n) => n.status?.role === 'follower')!.id;
        await kv.put('greeting', 'hi', { node: follower });
        await kv.put('counter', '1');
        await kv.delete('metric-0');
        await page.waitForSelector('tr[data-key="metric-0"] .chip[data-state="absent"]', { timeout: 10_000 });
        const update = !existsSync(SCREENSHOT) || process.env.ZISTORE_UPDATE_SCREENSHOT === '1';
        const path = update ? SCREENSHOT : join(cluster.dataDir, 'inspector.png');
        await page.screenshot({ path, fullPage: true });
        expect(existsSync(path)).toBe(true);
      } finally {
        await browser.close();
        await kv.close();
        await viewer.close();
        await nc.close();
      }
    },
  );
});

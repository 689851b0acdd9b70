// up: what `zistore up`'s fault injection costs a healthy cluster. Three clusters of 3 nodes,
// started as `zistore up` starts them (metrics on, node log level info), differing only in how
// their links can be cut: 'socket' (what `zistore up` runs: nodes connected straight to the
// servers, faults cut the node's own sockets), 'none' (nodes connected straight, no fault
// injection: the baseline) and 'proxy' (each link through a TCP proxy in the launcher: how
// `zistore up` ran before). Put and get at the leader, 1 in flight, interleaved in rounds.
import { compareModes, p50Summary, type Mode } from '../mode-comparison.ts';
import type { Scenario } from '../scenario.ts';

/** Direct first: every ratio is against it. */
const MODES: Mode[] = [
  { id: 'none', label: 'direct (no fault injection)', short: 'direct', cluster: { faults: 'none', metrics: true, logLevel: 'info' } },
  { id: 'socket', label: 'zistore up (socket faults)', short: 'up', cluster: { faults: 'socket', metrics: true, logLevel: 'info' } },
  { id: 'proxy', label: 'TCP proxies (the former zistore up)', short: 'proxy', cluster: { faults: 'proxy', metrics: true, logLevel: 'info' } },
];

export const upOverhead: Scenario = {
  name: 'up',
  title: '`zistore up` vs directly connected nodes (fault injection overhead), 1 in flight',
  description:
    'Three clusters of 3 nodes, each started the way `zistore up` starts one (a Prometheus endpoint per node, log level info), ' +
    'differing only in how `kill`/`rmi-down`/`zk-down` reach the links: "direct" nodes connect straight to nats-server and ZooKeeper ' +
    'and cannot be cut (the baseline); "zistore up" is what `zistore up` runs now: nodes connected straight, a cut is done by the node ' +
    'process itself on its own sockets when the launcher tells it (cluster/link-faults.ts); "TCP proxies" routes every link through a ' +
    'proxy in the launcher, as `zistore up` did before. Puts and gets of 16 B at the leader, one in flight from one client connection, ' +
    'the clusters interleaved in rounds, each round starting with the next cluster (every cluster has its own ZooKeeper and nats-server; the idle ones wait).',
  estimate: { quick: '~40 s', full: '~3 min' },
  ownCluster: true,
  async run(ctx) {
    const ms = await compareModes(ctx, {
      modes: MODES,
      modeColumn: 'links',
      baseline: 'direct',
      factPrefix: 'up',
      tableId: 'up',
      tableTitle: 'Put and get at the leader, 16 B, 1 in flight: `zistore up` vs direct (µs)',
      chartTitle: 'p50 at the leader, 16 B, 1 in flight: direct, zistore up, TCP proxies',
    });
    for (const op of ['put', 'get'] as const) ctx.section.observe(`${p50Summary(op, ms[op], ['direct', 'zistore up', 'TCP proxies'])}; goal for zistore up: ≤ 1.05× direct.`);
  },
};

// security: what access control costs a healthy cluster. Three clusters of 3 nodes, memory only,
// differing only in who may do what on NATS: 'none' (a bare nats-server: the baseline), 'open'
// (what `zistore up` runs: each node its own identity with permissions, clients without
// credentials) and 'secure' (`zistore up --secure`: every connection logs in; the load as the
// client identity with its own inbox prefix). Put and get at the leader, 1 in flight, interleaved.
import { compareModes, p50Summary, type Mode } from '../mode-comparison.ts';
import type { Scenario } from '../scenario.ts';

/** None first: every ratio is against it. */
const MODES: Mode[] = [
  { id: 'none', label: 'none (bare nats-server)', short: 'none', cluster: { access: 'none' } },
  { id: 'open', label: 'open (zistore up: node identities)', short: 'open', cluster: { access: 'open' } },
  { id: 'secure', label: 'secure (zistore up --secure)', short: 'secure', cluster: { access: 'secure' } },
];

export const security: Scenario = {
  name: 'security',
  title: 'Access control: bare NATS vs node identities (open) vs credentials everywhere (secure), 1 in flight',
  description:
    'Three clusters of 3 nodes, memory only, each with its own ZooKeeper and nats-server, differing only in NATS access control ' +
    '(cluster/security.ts): "none" is a nats-server without authorization (the baseline); "open" is what `zistore up` runs: every node ' +
    'has its own user whose permissions let it publish peer messages only in its own name, and a connection without credentials is a ' +
    'client; "secure" is `zistore up --secure`: every connection logs in, the load as the client identity with its own inbox prefix. ' +
    'Puts and gets of 16 B at the leader, one in flight from one client connection, the clusters interleaved in rounds.',
  estimate: { quick: '~40 s', full: '~3 min' },
  ownCluster: true,
  async run(ctx) {
    const ms = await compareModes(ctx, {
      modes: MODES,
      modeColumn: 'access',
      baseline: 'none',
      factPrefix: 'security',
      tableId: 'security',
      tableTitle: 'Put and get at the leader, 16 B, 1 in flight, by access control (µs)',
      chartTitle: 'p50 at the leader, 16 B, 1 in flight, by access control',
    });
    for (const op of ['put', 'get'] as const) ctx.section.observe(p50Summary(op, ms[op], ['none', 'open', 'secure']));
  },
};

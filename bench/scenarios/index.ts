// The scenario registry: `npm run bench -- <name>`. `all` runs every scenario in this order.
import type { Scenario } from '../scenario.ts';
import { durable, restart } from './durable.ts';
import { failover } from './failover.ts';
import { latency } from './latency.ts';
import { nodes } from './nodes.ts';
import { peers } from './peers.ts';
import { reads } from './reads.ts';
import { security } from './security.ts';
import { recovery } from './recovery.ts';
import { throughput } from './throughput.ts';
import { txn } from './txn.ts';
import { upOverhead } from './up-overhead.ts';
import { valueSize } from './value-size.ts';
import { watch } from './watch.ts';
import { ycsb } from './ycsb.ts';

export const SCENARIOS: readonly Scenario[] = [latency, upOverhead, security, throughput, peers, ycsb, txn, watch, durable, restart, valueSize, reads, nodes, failover, recovery];

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}

// The scenario registry: `npm run bench -- <name>`. `all` runs every scenario in this order.
import type { Scenario } from '../scenario.ts';
import { latency } from './latency.ts';
import { nodes } from './nodes.ts';
import { throughput } from './throughput.ts';
import { valueSize } from './value-size.ts';

export const SCENARIOS: readonly Scenario[] = [latency, throughput, valueSize, nodes];

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}

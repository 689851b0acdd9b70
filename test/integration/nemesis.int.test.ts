// Goal: ZiStore stays linearizable and converges on a real cluster (real ZooKeeper, real
// nats-server, three node processes) while a nemesis kills and restarts nodes, pauses them,
// and cuts their ZooKeeper and NATS links. Method: a short, fixed-seed run of the nemesis
// runner (test/nemesis/), then its verdicts: every key reads the same at every node, the
// recorded history (final reads included) is linearizable, and the store did real work.
import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../nemesis/options.ts';
import { runNemesis } from '../nemesis/runner.ts';

const SEED = 20251124;

describe('nemesis', () => {
  it('kill/restart, pause, zk and rmi faults for 45 s: converges, linearizable, available', async () => {
    const lines: string[] = [];
    const result = await runNemesis({
      ...DEFAULTS,
      seed: SEED,
      durationS: 45,
      nodes: 3,
      clients: 4,
      keys: 6,
      faults: ['kill', 'restart', 'pause', 'zk', 'rmi', 'leader'],
      afterHealS: 2,
      healTimeoutMs: 20_000,
      checkBudgetMs: 15_000,
      log: (line) => lines.push(line),
    });
    // On failure the whole run (fault log, summary, smallest failing history) is in the output,
    // and the results dir with history.json, timeline.txt and the node logs is kept.
    if (!result.ok) console.log(`${lines.join('\n')}\n\n${result.report}`);

    const kinds = new Set(result.faults.map((f) => f.kind));
    expect(result.faults.length).toBeGreaterThanOrEqual(8);
    expect(kinds.size).toBeGreaterThanOrEqual(4);
    expect(result.notServingAfterHeal).toEqual({});
    expect(result.convergence?.mismatches ?? 'no final reads').toEqual([]);
    expect(result.check?.ok).toBe(true);
    expect(result.summary.okWrites).toBeGreaterThan(50);
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(true);
    await rm(result.resultsDir, { recursive: true, force: true });
  }, 120_000);
});

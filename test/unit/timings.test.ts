// Goal: the lease rule of docs/safety.md (cli/timings.ts): the default lease follows the session
// timeout and always satisfies the rule; the longest lease allowed is exactly the boundary.
import { describe, expect, it } from 'vitest';
import { leaseCertainlyOverMs } from '../../actors/time.ts';
import { defaultLeaseMs, leaseProblem, maxLeaseMs } from '../../cli/timings.ts';

describe('lease timings', () => {
  it('the default lease is half the session timeout, at most 1000 ms, and always within the rule', () => {
    expect(defaultLeaseMs(2000)).toBe(1000);
    expect(defaultLeaseMs(1000)).toBe(500);
    expect(defaultLeaseMs(500)).toBe(250);
    expect(defaultLeaseMs(60_000)).toBe(1000);
    // Every session timeout --session-timeout accepts.
    for (let timeout = 500; timeout <= 600_000; timeout++) {
      const lease = defaultLeaseMs(timeout);
      if (lease < 100 || leaseProblem(lease, timeout) !== null) throw new Error(`default lease ${lease} breaks the rule for ${timeout}`);
    }
  });

  it('the longest lease allowed ends, with the drift margin, before the session timeout; one more ms does not', () => {
    expect(maxLeaseMs(1000)).toBe(890);
    for (const timeout of [500, 777, 1000, 2000, 6000, 600_000]) {
      const max = maxLeaseMs(timeout);
      expect(leaseCertainlyOverMs(max)).toBeLessThan(timeout);
      expect(leaseProblem(max, timeout)).toBeNull();
      expect(leaseCertainlyOverMs(max + 1)).toBeGreaterThanOrEqual(timeout);
      expect(leaseProblem(max + 1, timeout)).toContain(`at most ${max} ms here`);
    }
    expect(leaseProblem(1000, 1000)).toContain('--lease (1000 ms) is too long for --session-timeout (1000 ms)');
  });
});

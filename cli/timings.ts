// The timing rule between the read lease and the ZooKeeper session timeout (docs/safety.md), in
// one place for `zistore node`, `zistore up` and runNode.
import { leaseCertainlyOverMs } from '../actors/time.ts';

export const DEFAULT_SESSION_TIMEOUT_MS = 2000;
/** The lease when none is given and the session timeout allows it. */
export const DEFAULT_LEASE_MS = 1000;


/** The longest lease a session timeout allows: its certain end must come before the session can expire. */
export function maxLeaseMs(sessionTimeoutMs: number): number {
  let lease = Math.floor(((sessionTimeoutMs - 20) * 10) / 11);
  while (lease > 0 && leaseCertainlyOverMs(lease) >= sessionTimeoutMs) lease--;
  return Math.max(0, lease);
}

/** The lease when --lease is not given: half the session timeout, at most 1000 ms. */
export const defaultLeaseMs = (sessionTimeoutMs: number) => Math.min(DEFAULT_LEASE_MS, Math.floor(sessionTimeoutMs / 2));

/** Why this lease is too long for this session timeout, or null when it is fine. */
export function leaseProblem(leaseMs: number, sessionTimeoutMs: number): string | null {
  if (leaseCertainlyOverMs(leaseMs) < sessionTimeoutMs) return null;
  return (
    `--lease (${leaseMs} ms) is too long for --session-timeout (${sessionTimeoutMs} ms): with the 10% clock-drift margin ` +
    `a lease must end before the session can expire (lease × 1.1 + 20 ms < session timeout), so at most ${maxLeaseMs(sessionTimeoutMs)} ms here; ` +
    `without --lease a node uses half the session timeout, at most ${DEFAULT_LEASE_MS} ms (${defaultLeaseMs(sessionTimeoutMs)} ms here); see docs/safety.md`
  );
}

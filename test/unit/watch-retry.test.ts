// Goal: a watch whose node lacks its history (410) asks every member in turn and ends with the 410
// only when every member refused it, or when those that could not answer stayed so too long: a
// member that keeps the history but is down for a moment is asked again, not given up on.
// Method: WatchRetry with a scripted member list and clock; the backoff waits are real but short.
import { describe, expect, it } from 'vitest';
import { HISTORY_SEARCH_MS, WatchRetry } from '../../client/watch-retry.ts';

const refusal = new Error('410 revision 7 is older than the history this node keeps');
const unavailable = new Error('503 not serving');
const never = new Promise<null>(() => undefined);

describe('watch retry', () => {
  it('after a 410, a member that could not answer is asked again; the one that keeps the history is found', async () => {
    const retry = new WatchRetry(async () => ['n1', 'n2', 'n3']);
    // Any node answered 410 (n1, unknown to the client): every member in turn.
    expect(await retry.nextNode(refusal, 'history', undefined, never)).toBe('n1');
    expect(await retry.nextNode(refusal, 'history', 'n1', never)).toBe('n2');
    // n2 keeps the history but is down for a moment; n3 refuses: n2 again.
    expect(await retry.nextNode(unavailable, 'unavailable', 'n2', never)).toBe('n3');
    expect(await retry.nextNode(refusal, 'history', 'n3', never)).toBe('n2');
    expect(await retry.nextNode(unavailable, 'unavailable', 'n2', never)).toBe('n2');
    retry.succeeded();
    // A success ends the search: the next unavailable node is left for any.
    expect(await retry.nextNode(unavailable, 'unavailable', 'n2', never)).toBeUndefined();
  });

  it('ends with the 410 once every member refused', async () => {
    const retry = new WatchRetry(async () => ['n1', 'n2']);
    expect(await retry.nextNode(refusal, 'history', 'n1', never)).toBe('n2');
    await expect(retry.nextNode(refusal, 'history', 'n2', never)).rejects.toBe(refusal);
  });

  it('ends with the 410 when the members that could not answer stay so too long', async () => {
    let now = 0;
    const retry = new WatchRetry(async () => ['n1', 'n2'], () => now);
    expect(await retry.nextNode(refusal, 'history', 'n1', never)).toBe('n2');
    expect(await retry.nextNode(unavailable, 'unavailable', 'n2', never)).toBe('n2');
    now = HISTORY_SEARCH_MS + 1;
    await expect(retry.nextNode(unavailable, 'unavailable', 'n2', never)).rejects.toBe(refusal);
  });

  it('anything but a 410, a 503 or a timeout ends the watch at once; without a 410 an unavailable node is left for any', async () => {
    const retry = new WatchRetry(async () => ['n1']);
    const bad = new Error('400 bad header');
    await expect(retry.nextNode(bad, 'fatal', 'n1', never)).rejects.toBe(bad);
    expect(await retry.nextNode(unavailable, 'unavailable', 'n1', never)).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compareKeys } from '../../actors/key-order.ts';
import { ReplicaStore } from '../../actors/replica-store.ts';
import { keysInFlight, parseScan, readBinaryScanReply, runScan, SCAN_REPLY_BYTES, type ScanQuery, type ScanResult } from '../../actors/scan.ts';
import type { ClientReply } from '../../actors/protocol.ts';
import { checkPeerMessage } from '../../actors/peer-check.ts';

const v = (s: string) => new TextEncoder().encode(s);
const query = (q: Partial<ScanQuery> = {}): ScanQuery => ({ prefix: '', from: null, to: null, after: null, limit: 1000, form: 'keys', format: 'json', ...q });
const request = (headers: Record<string, string | string[]>) => ({
  op: 'scan' as const,
  headers: new Map(Object.entries(headers).map(([k, x]) => [k, ([] as string[]).concat(x)])),
  data: new Uint8Array(0),
});

function result(reply: ClientReply): ScanResult {
  if (!reply.ok) throw new Error(`${reply.code} ${reply.description}`);
  return JSON.parse(new TextDecoder().decode(reply.data)) as ScanResult;
}

function storeWith(keys: Record<string, string>): ReplicaStore {
  const s = new ReplicaStore();
  let rev = 1;
  for (const [k, value] of Object.entries(keys)) s.apply(k, { type: 'fill', rev: rev++, value: v(value) });
  return s;
}

/** Code points, compared as numbers: what compareKeys must agree with. */
const byCodePoints = (a: string, b: string): number => {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
};

describe('scan', () => {
  it('scan - keys are ordered by code point, which is UTF-8 byte order (not UTF-16 order)', () => {
    // U+FF5E sorts below U+1F600 by code point, above it by UTF-16 code unit.
    expect(compareKeys('\uff5e', '\u{1f600}')).toBeLessThan(0);
    expect('\uff5e' < '\u{1f600}').toBe(false);
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) => {
        expect(Math.sign(compareKeys(a, b))).toBe(Math.sign(byCodePoints(a, b)));
        expect(Math.sign(compareKeys(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
      }),
      { numRuns: 2000 },
    );
  });

  it('scan - by prefix, by range and after a key, in key order, with revisions and exact values', () => {
    const s = storeWith({ 'b/2': 'two', 'a/1': 'one', 'b/1': '\u0000\u00ff', c: 'c', 'b/3': 'three', b: 'bare' });
    expect(result(runScan(s, query({ prefix: 'b/' }))).entries!.map((e) => e.key)).toEqual(['b/1', 'b/2', 'b/3']);
    expect(result(runScan(s, query({ from: 'b', to: 'b/3' }))).entries!.map((e) => e.key)).toEqual(['b', 'b/1', 'b/2']);
    expect(result(runScan(s, query({ prefix: 'b/', after: 'b/1' }))).entries!.map((e) => e.key)).toEqual(['b/2', 'b/3']);
    expect(result(runScan(s, query({ prefix: 'b', from: 'b/2', to: 'c' }))).entries!.map((e) => e.key)).toEqual(['b/2', 'b/3']);
    const withValues = result(runScan(s, query({ prefix: 'b/1', form: 'values' })));
    expect(withValues.entries).toEqual([{ key: 'b/1', revision: 3, value: Buffer.from([0, 0xc3, 0xbf]).toString('base64') }]);
    expect(result(runScan(s, query({ prefix: 'z' })))).toEqual({ revision: 6, count: 0, entries: [], more: false });
    expect(result(runScan(s, query({ prefix: 'b', form: 'count' })))).toEqual({ revision: 6, count: 4 });
  });

  it('scan - pages: a limit or the byte budget ends a page with the key to continue after', () => {
    const s = new ReplicaStore();
    for (let i = 0; i < 25; i++) s.apply(`k${String(i).padStart(2, '0')}`, { type: 'fill', rev: i + 1, value: v('x') });
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page++) {
      const r = result(runScan(s, query({ limit: 10, after })));
      seen.push(...r.entries!.map((e) => e.key));
      if (!r.more) break;
      expect(r.next).toBe(r.entries!.at(-1)!.key);
      after = r.next!;
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `k${String(i).padStart(2, '0')}`));
    // Exactly `limit` keys left: no further page is promised.
    expect(result(runScan(s, query({ limit: 5, after: 'k19' }))).more).toBe(false);

    const big = new ReplicaStore();
    const value = new Uint8Array(200 * 1024);
    for (let i = 0; i < 5; i++) big.apply(`big${i}`, { type: 'fill', rev: i + 1, value });
    const first = result(runScan(big, query({ form: 'values' })));
    expect(first.entries!.length).toBe(Math.floor(SCAN_REPLY_BYTES / (200 * 1024 + 4)));
    expect(first.more).toBe(true);
  });

  it('scan - a write in flight shows its committed value and is named among the keys in flight; the ordered keys follow inserts and deletes', () => {
    const s = storeWith({ a: '1', b: '2' });
    s.apply('b', { type: 'invalidate', rev: 10, value: v('new') });
    s.apply('c', { type: 'invalidate', rev: 11, value: v('inserted') });
    s.apply('a', { type: 'invalidate', rev: 12, value: null });
    expect(keysInFlight(s, query()).sort()).toEqual(['a', 'b', 'c']);
    expect(keysInFlight(s, query({ from: 'b' })).sort()).toEqual(['b', 'c']);
    expect(result(runScan(s, query({ form: 'values' }))).entries).toEqual([
      { key: 'a', revision: 1, value: Buffer.from('1').toString('base64') },
      { key: 'b', revision: 2, value: Buffer.from('2').toString('base64') },
    ]);
    for (const [key, rev] of [['b', 10], ['c', 11], ['a', 12]] as const) s.apply(key, { type: 'validate', rev });
    expect(keysInFlight(s, query())).toEqual([]);
    expect(result(runScan(s, query())).entries).toEqual([
      { key: 'b', revision: 10 },
      { key: 'c', revision: 11 },
    ]);
    s.clear();
    expect(result(runScan(s, query())).entries).toEqual([]);
  });

  it('scan - the binary reply holds the entries of the JSON reply, values as their exact bytes, and says when more follow', () => {
    const big = 'x'.repeat(70_000);
    const s = storeWith({ 'b/2': 'two', 'a/1': 'one', 'b/1': '\u0000\u00ff', 'b/\u{1f600}': big, 'b/3': '' });
    for (const form of ['values', 'keys'] as const) {
      const json = result(runScan(s, query({ prefix: 'b/', form })));
      const reply = runScan(s, query({ prefix: 'b/', form, format: 'binary' }));
      if (!reply.ok) throw new Error('refused');
      const binary = readBinaryScanReply(reply.data!);
      expect(binary.revision).toBe(json.revision);
      expect(binary.more).toBe(false);
      expect(binary.entries.map((e) => ({ ...e, ...(e.value !== undefined ? { value: Buffer.from(e.value).toString('base64') } : {}) }))).toEqual(json.entries);
    }
    const page = runScan(s, query({ prefix: 'b/', form: 'values', format: 'binary', limit: 2 }));
    const first = readBinaryScanReply(page.ok ? page.data! : new Uint8Array(0));
    expect([first.more, first.entries.map((e) => e.key)]).toEqual([true, ['b/1', 'b/2']]);
    expect(() => readBinaryScanReply((page.ok ? page.data! : new Uint8Array(0)).subarray(0, 20))).toThrow();
  });

  it('scan - the request headers: defaults, bounds, and clear errors', () => {
    expect(parseScan(request({}))).toEqual(query());
    expect(parseScan(request({ 'Zi-Prefix': 'p/', 'Zi-From': 'p/a', 'Zi-To': 'p/z', 'Zi-After': 'p/b', 'Zi-Limit': '7', 'Zi-Scan': 'values' }))).toEqual(
      query({ prefix: 'p/', from: 'p/a', to: 'p/z', after: 'p/b', limit: 7, form: 'values' }),
    );
    const refused = (headers: Record<string, string | string[]>) => {
      const r = parseScan(request(headers));
      return 'ok' in r && !r.ok ? `${r.code} ${r.description}` : 'accepted';
    };
    expect(refused({ 'Zi-Limit': '0' })).toBe('400 Zi-Limit must be 1 to 10000');
    expect(refused({ 'Zi-Limit': '10001' })).toBe('400 Zi-Limit must be 1 to 10000');
    expect(refused({ 'Zi-Limit': '-1' })).toBe('400 Zi-Limit must be a decimal integer');
    expect(refused({ 'Zi-Scan': 'all' })).toBe('400 Zi-Scan must be one of keys, values, count');
    expect(refused({ 'Zi-Scan-Format': 'xml' })).toBe('400 Zi-Scan-Format must be one of json, binary');
    expect(refused({ 'Zi-Scan': 'count', 'Zi-Scan-Format': 'binary' })).toMatch(/^400 Zi-Scan-Format: binary is for Zi-Scan keys or values/);
    expect(refused({ 'Zi-Scan': 'values', 'Zi-Scan-Format': 'binary' })).toBe('accepted');
    expect(refused({ 'Zi-Prefix': ['a', 'b'] })).toBe('400 more than one Zi-Prefix header');
    expect(refused({ 'Zi-From': 'a\u0001' })).toBe('400 Zi-From: key contains a control character or invalid UTF-8');
    expect(refused({ 'Zi-To': 'x'.repeat(1025) })).toBe('400 Zi-To: key longer than 1024 bytes');
  });

  it('scan - a forwarded scan is held to the client rules', () => {
    const message = (q: unknown) => ({ type: 'scan', from: 'n2', epoch: 3, query: q });
    expect(checkPeerMessage(message(query({ prefix: 'a' })))).toEqual(message(query({ prefix: 'a' })));
    expect(() => checkPeerMessage(message(query({ limit: 0 })))).toThrow('scan query: Zi-Limit must be 1 to 10000');
    expect(() => checkPeerMessage(message({ ...query(), form: 'all' }))).toThrow('Zi-Scan must be one of');
    expect(() => checkPeerMessage(message({ prefix: 'a' }))).toThrow('scan query needs prefix, from, to, after, limit and form');
    expect(() => checkPeerMessage(message(query({ format: 'xml' as 'json' })))).toThrow('Zi-Scan-Format must be one of');
    // From a node that predates the binary format: JSON.
    const { format: _, ...older } = query();
    expect(checkPeerMessage(message(older))).toEqual(message(older));
    expect(() => checkPeerMessage(message(null))).toThrow('scan needs a query');
  });
});

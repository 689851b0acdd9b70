import { describe, expect, it } from 'vitest';
import { parseKey, parseWrite } from '../../actors/request.ts';
import type { ClientRequest } from '../../actors/protocol.ts';

const req = (headers: [string, string][], op: ClientRequest['op'] = 'put', data = new Uint8Array(1)): ClientRequest => {
  const map = new Map<string, string[]>();
  for (const [k, val] of headers) map.set(k, [...(map.get(k) ?? []), val]);
  return { op, headers: map, data };
};
const code = (x: unknown) => (typeof x === 'object' && x !== null && 'code' in x ? (x as { code: number }).code : 'ok');

describe('request parsing', () => {
  it('request - accepts a good key and refuses bad ones with 400', () => {
    expect(parseKey(req([['Zi-Key', 'user:42']]))).toBe('user:42');
    expect(parseKey(req([['Zi-Key', 'é'.repeat(512)]]))).toBe('é'.repeat(512)); // 1024 bytes
    for (const bad of [[], [['zi-key', 'a']], [['Zi-Key', 'a'], ['Zi-Key', 'b']], [['Zi-Key', '']], [['Zi-Key', 'a\u0000']],
      [['Zi-Key', 'a\u007f']], [['Zi-Key', ' a']], [['Zi-Key', 'a\ufffd']], [['Zi-Key', 'é'.repeat(513)]]] as [string, string][][]) {
      expect(code(parseKey(req(bad))), JSON.stringify(bad)).toBe(400);
    }
  });

  it('request - Zi-If-Revision must be one decimal integer', () => {
    expect(parseWrite(req([['Zi-Key', 'k'], ['Zi-If-Revision', '0']]))).toMatchObject({ key: 'k', ifRevision: 0 });
    expect(parseWrite(req([['Zi-Key', 'k'], ['Zi-If-Revision', '17']]))).toMatchObject({ ifRevision: 17 });
    for (const bad of ['-1', '1.5', 'x', '', '99999999999999999']) {
      expect(code(parseWrite(req([['Zi-Key', 'k'], ['Zi-If-Revision', bad]]))), bad).toBe(400);
    }
  });

  it('request - values up to 1 MiB, 413 above; delete carries no value', () => {
    expect(code(parseWrite(req([['Zi-Key', 'k']], 'put', new Uint8Array(1024 * 1024))))).toBe('ok');
    expect(code(parseWrite(req([['Zi-Key', 'k']], 'put', new Uint8Array(1024 * 1024 + 1))))).toBe(413);
    expect(parseWrite(req([['Zi-Key', 'k']], 'delete'))).toMatchObject({ key: 'k', value: null });
  });

  it('request - Zi-TTL: milliseconds on a put, 1 ms to a year; a keep-alive names just a key', () => {
    expect(parseWrite(req([['Zi-Key', 'k'], ['Zi-TTL', '1500']]))).toMatchObject({ key: 'k', ttl: 1500 });
    expect(parseWrite(req([['Zi-Key', 'k']]))).not.toHaveProperty('ttl');
    for (const bad of ['0', '-5', '1.5', '10s', '', String(366 * 24 * 3600 * 1000)]) expect(code(parseWrite(req([['Zi-Key', 'k'], ['Zi-TTL', bad]]))), bad).toBe(400);
    expect(code(parseWrite(req([['Zi-Key', 'k'], ['Zi-TTL', '5'], ['Zi-TTL', '6']])))).toBe(400);
    expect(code(parseWrite(req([['Zi-Key', 'k'], ['Zi-TTL', '5']], 'delete')))).toBe(400);
    expect(parseWrite(req([['Zi-Key', 'k']], 'keepalive'))).toEqual({ key: 'k', value: null, keepAlive: true });
  });
});

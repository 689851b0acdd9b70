import { describe, expect, it } from 'vitest';
import { decode, encode } from '../../bus/codec.ts';
import { checkPeerMessage } from '../../actors/peer-check.ts';

describe('codec', () => {
  it('codec - byte values (Uint8Array and Buffer) round-trip as raw bytes', () => {
    const message = {
      type: 'snapshot', from: 'n1', epoch: 3, admission: 1, seq: 0, done: false, maxRev: 9,
      entries: [{ key: 'a', rev: 1, value: new Uint8Array([1, 2, 3]) }, { key: 'b', rev: 2, value: Buffer.from('hi') }],
    };
    const out = decode<typeof message>(encode(message));
    expect(out.entries[0]!.value).toEqual(new Uint8Array([1, 2, 3]));
    expect(Buffer.from(out.entries[1]!.value).toString()).toBe('hi');
    expect(checkPeerMessage(out).type).toBe('snapshot');
  });

  it('codec - null values and empty values survive', () => {
    const out = decode<{ value: Uint8Array | null; empty: Uint8Array }>(encode({ value: null, empty: new Uint8Array(0) }));
    expect(out.value).toBeNull();
    expect(out.empty.byteLength).toBe(0);
  });

  it('codec - garbage gets a CodecError, never a crash', () => {
    for (const bad of [new Uint8Array(0), new Uint8Array([0, 0, 0, 200, 1]), new Uint8Array([0, 0, 0, 1, 0x7b, 0, 0, 0, 0])]) {
      expect(() => decode(bad)).toThrowError(expect.objectContaining({ name: 'CodecError' }));
    }
  });

  it('peer check - malformed peer messages are refused by name', () => {
    for (const bad of [null, 7, { type: 'invalidate', from: 'n1', epoch: 1, key: 'k', rev: -1, value: null }, { type: 'nope', from: 'x', epoch: 1 }, { type: 'sync', from: 1, epoch: 1 }]) {
      expect(() => checkPeerMessage(bad)).toThrowError(expect.objectContaining({ name: 'BadPeerMessageError' }));
    }
  });

  it("peer check - a sync names the leader's history and the floor of its change log as counts, a join its own floor", () => {
    const sync = (history: unknown, changesThrough: unknown) => ({ type: 'sync', from: 'n1', epoch: 4, history, changesThrough });
    const out = checkPeerMessage(decode(encode(sync(3, 38))));
    expect(out.type === 'sync' && [out.history, out.changesThrough]).toEqual([3, 38]);
    expect(checkPeerMessage({ type: 'sync', from: 'n1', epoch: 4 }).type).toBe('sync');
    expect(() => checkPeerMessage(sync(-1, 38))).toThrowError(/history must be a count/);
    expect(() => checkPeerMessage(sync('3', 38))).toThrowError(/history must be a count/);
    expect(() => checkPeerMessage(sync(3, 1.5))).toThrowError(/changesThrough must be a count/);
    const join = (changesFloor: unknown) => ({ type: 'join', from: 'n2', epoch: 4, session: 's', attempt: 1, since: 0, history: 3, pending: [], changesAfter: 9, changesFloor });
    expect(checkPeerMessage(decode(encode(join(6)))).type).toBe('join');
    expect(() => checkPeerMessage(join(-6))).toThrowError(/changesFloor must be a count/);
  });

  it("peer check - a recommitted put's mark travels (as JSON) and is true or absent", () => {
    const invalidate = (mark: unknown) => ({ type: 'invalidate', from: 'n1', epoch: 2, validated: [], entries: [{ key: 'k', rev: 7, value: new Uint8Array([1]), ttl: 500, recommit: mark }] });
    const out = checkPeerMessage(decode(encode(invalidate(true))));
    expect(out.type === 'invalidate' && out.entries[0]!.recommit).toBe(true);
    for (const bad of [false, 1, 'yes']) expect(() => checkPeerMessage(decode(encode(invalidate(bad))))).toThrowError(expect.objectContaining({ name: 'BadPeerMessageError' }));
  });

  it("peer check - a leader's promised history: changes in order within its bounds, or none", () => {
    const history = (changes: unknown) => ({ type: 'history', from: 'n1', epoch: 2, admission: 4, ...(changes === undefined ? {} : { changes }) });
    const change = (rev: number) => ({ rev, key: 'k', kind: 'put', value: new Uint8Array([1]) });
    expect(checkPeerMessage(decode(encode(history({ after: 3, through: 6, changes: [change(4), change(6)] })))).type).toBe('history');
    expect(checkPeerMessage(history(undefined)).type).toBe('history');
    expect(() => checkPeerMessage(history({ after: 3, through: 6, changes: [change(6), change(4)] }))).toThrowError(/in order/);
    expect(() => checkPeerMessage(history({ after: 3, through: 6, changes: [change(7)] }))).toThrowError(/within after..through/);
    expect(() => checkPeerMessage({ type: 'history', from: 'n1', epoch: 2, admission: -1 })).toThrowError(/admission/);
    expect(() => checkPeerMessage({ type: 'snapshot', from: 'n1', epoch: 3, admission: 1, seq: 0, done: true, maxRev: 9, entries: [], historyFollows: 'yes' })).toThrowError(/historyFollows/);
    expect(() => checkPeerMessage({ type: 'snapshot', from: 'n1', epoch: 3, admission: 1, seq: 0, done: true, maxRev: 9, entries: [], lastRevBefore: -1 })).toThrowError(/lastRevBefore/);
    expect(checkPeerMessage(decode(encode({ type: 'snapshot', from: 'n1', epoch: 3, admission: 1, seq: 0, done: true, maxRev: 9, entries: [], lastRevBefore: 7 }))).type).toBe('snapshot');
  });

  it('peer check - a forward or a read is held to the client rules: key rules and the 1 MiB value limit', () => {
    const forward = (key: string, value: Uint8Array | null) => ({ type: 'forward', from: 'n2', epoch: 1, commands: [{ key, value }] });
    expect(checkPeerMessage(forward('ok/key', new Uint8Array(1024 * 1024))).type).toBe('forward');
    expect(checkPeerMessage({ type: 'read', from: 'n2', epoch: 1, keys: ['ok/key'] }).type).toBe('read');
    const refused: [unknown, RegExp][] = [
      [forward('k', new Uint8Array(1024 * 1024 + 1)), /larger than 1048576 bytes/],
      [forward('', null), /empty key/],
      [forward(' k', null), /white space/],
      [forward('a\u0000b', null), /control character/],
      [forward('x'.repeat(1025), null), /key longer than 1024 bytes/],
      [{ type: 'read', from: 'n2', epoch: 1, keys: ['ok', '\ud800'] }, /not valid Unicode/],
    ];
    for (const [message, why] of refused) expect(() => checkPeerMessage(message)).toThrowError(why);
  });

  it('codec - invalidate and validate travel in the binary form; every cut of such a frame is a CodecError', () => {
    const message = {
      type: 'invalidate', from: 'n1', epoch: 2 ** 40, validated: [{ key: 'done/é', rev: 7 }],
      entries: [{ key: 'a', rev: 8, value: new Uint8Array([1, 2, 3]) }, { key: 'ключ/🔑', rev: Number.MAX_SAFE_INTEGER, value: null }, { key: 'e', rev: 9, value: new Uint8Array(0) }],
    };
    const frame = encode(message);
    expect(frame[0]).toBe(0xb1);
    // Decoded from a view inside a larger buffer, as a socket chunk would hold it.
    const padded = new Uint8Array(frame.byteLength + 10);
    padded.set(frame, 5);
    const out = decode<typeof message>(padded.subarray(5, 5 + frame.byteLength));
    expect(out).toEqual(message);
    expect(checkPeerMessage(out).type).toBe('invalidate');
    expect(decode(encode({ type: 'validate', from: 'n1', epoch: 1, validated: [] }))).toEqual({ type: 'validate', from: 'n1', epoch: 1, validated: [] });
    for (let cut = 1; cut < frame.byteLength; cut++) {
      expect(() => decode(frame.subarray(0, cut)), `cut at ${cut}`).toThrowError(expect.objectContaining({ name: 'CodecError' }));
    }
    // What the binary form cannot carry exactly goes as JSON: extra members, a lone surrogate.
    for (const odd of [{ ...message, extra: 1 }, { ...message, from: 'n\ud800' }]) {
      const f = encode(odd);
      expect(f[0]).toBe(0);
      expect(decode(f)).toEqual(odd);
    }
  });
});

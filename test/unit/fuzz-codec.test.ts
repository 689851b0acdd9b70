// Goal: whatever arrives on a peer subject, decode (bus/codec.ts) and checkPeerMessage
// (actors/peer-check.ts) either produce a well-formed PeerMessage or throw CodecError /
// BadPeerMessageError (never another error, never a crash), the check accepts exactly the
// PeerMessage shapes, and accepted messages survive encode → decode unchanged.
// Method: fast-check over random bytes, hand-made broken frames, JSON-shaped junk and broken
// well-formed messages (generators in test/support/fuzz-model.ts). FUZZ_SEED=<seed> replays.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decode, encode } from '../../bus/codec.ts';
import { CodecError } from '../../bus/errors.ts';
import { BadPeerMessageError, checkPeerMessage } from '../../actors/peer-check.ts';
import type { PeerMessage } from '../../actors/protocol.ts';
import {
  breakMessage,
  conformsToPeerMessage,
  deepFrame,
  jsonishArb,
  PEER_TYPES,
  peerFrameArb,
  validPeerMessageArb,
  wrongValueArb,
  fuzzOnce as once,
  fuzzScale as scale,
  fuzzRuns as runs,
} from '../support/fuzz-model.ts';

/** The two errors garbage may raise; anything else escaping is a finding. */
function expectCleanRefusal(err: unknown, what: string): void {
  const ok = err instanceof CodecError || err instanceof BadPeerMessageError;
  if (!ok) throw new Error(`${what}: threw ${(err as Error)?.name ?? typeof err}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/** Plain data for deep equality: byte arrays as tagged number lists, -0 as 0. */
function normalize(x: unknown): unknown {
  if (x instanceof Uint8Array) return { bytes: [...x] };
  if (Array.isArray(x)) return x.map(normalize);
  if (x !== null && typeof x === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) if (v !== undefined) out[k] = normalize(v);
    return out;
  }
  return Object.is(x, -0) ? 0 : x;
}

/** Whether a structure holds an object with a numeric `$b` member (the codec's blob marker). */
function containsMarker(x: unknown): boolean {
  if (x instanceof Uint8Array || x === null || typeof x !== 'object') return false;
  if (Array.isArray(x)) return x.some(containsMarker);
  if (typeof (x as Record<string, unknown>).$b === 'number') return true;
  return Object.values(x).some(containsMarker);
}

/** decode, at offset 0 and from the middle of a larger buffer (as NATS hands out views). */
function decodeBoth(bytes: Uint8Array, pad: number): unknown {
  const big = new Uint8Array(pad + bytes.byteLength + 7).fill(0xa5);
  big.set(bytes, pad);
  const direct = decode<unknown>(bytes);
  expect(normalize(decode<unknown>(big.subarray(pad, pad + bytes.byteLength)))).toEqual(normalize(direct));
  return direct;
}

/** What the bus does with an incoming peer payload. Returns the message or rethrows cleanly. */
function receive(bytes: Uint8Array, what: string): PeerMessage | null {
  try {
    return checkPeerMessage(decode<unknown>(bytes));
  } catch (err) {
    expectCleanRefusal(err, what);
    return null;
  }
}

const messageLikeArb = fc
  .record(
    {
      type: fc.oneof(fc.constantFrom(...PEER_TYPES, 'nope', 'SYNC', ''), jsonishArb),
      from: fc.oneof(fc.string({ maxLength: 6 }), jsonishArb),
      epoch: fc.oneof(fc.nat(), wrongValueArb, jsonishArb),
      entries: jsonishArb,
      validated: jsonishArb,
      commands: jsonishArb,
      keys: jsonishArb,
      session: jsonishArb,
      seq: fc.oneof(fc.nat(), jsonishArb),
      attempt: fc.oneof(fc.nat(), jsonishArb),
      admission: fc.oneof(fc.nat(), jsonishArb),
      maxRev: fc.oneof(fc.nat(), jsonishArb),
      done: fc.oneof(fc.boolean(), jsonishArb),
      cursor: fc.oneof(fc.nat(), jsonishArb),
    },
    { requiredKeys: [] },
  )
  .map((m) => m as Record<string, unknown>);

const brokenArb = fc
  .tuple(validPeerMessageArb, fc.nat(), wrongValueArb, fc.constantFrom('delete' as const, 'set' as const, 'type' as const, 'nested' as const))
  .map(([m, field, value, mode]) => breakMessage(m, { field, value, mode }));

describe('fuzz - peer message decoding and shape check', () => {
  it('decode + check - arbitrary bytes and broken frames: a PeerMessage or CodecError/BadPeerMessageError', () => {
    const outcomes = new Map<string, number>();
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 256 }).map((bytes) => ({ kind: 'bytes', bytes })), peerFrameArb), fc.nat({ max: 9 }), ({ kind, bytes }, pad) => {
        let outcome = 'accepted';
        try {
          const message = checkPeerMessage(decodeBoth(bytes, pad));
          expect(conformsToPeerMessage(message), kind).toBe(true);
          expect(normalize(decode(encode(message)))).toEqual(normalize(message));
        } catch (err) {
          expectCleanRefusal(err, kind);
          outcome = (err as Error).name;
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }),
      runs(10_000),
    );
    expect(outcomes.get('CodecError')).toBeGreaterThan(100 * scale);
    expect(outcomes.get('BadPeerMessageError')).toBeGreaterThan(100 * scale);
  });

  it('decode + check - JSON-shaped structures through encode: clean refusal, or a message that round-trips', () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.oneof(jsonishArb, messageLikeArb, brokenArb, validPeerMessageArb), (value) => {
        // Objects shaped like the codec's own blob marker are the separate finding below.
        fc.pre(!containsMarker(value));
        const bytes = encode(value);
        const message = receive(bytes, JSON.stringify(normalize(value))?.slice(0, 200) ?? 'value');
        if (message === null) return;
        accepted++;
        // It passed the check: it has the PeerMessage shape and encode/decode preserved it.
        expect(conformsToPeerMessage(message)).toBe(true);
        expect(normalize(message)).toEqual(normalize(value));
        expect(normalize(decode(encode(message)))).toEqual(normalize(message));
      }),
      runs(8000),
    );
    expect(accepted).toBeGreaterThan(800 * scale);
  });

  it('checkPeerMessage - accepts exactly the PeerMessage shapes (extra members allowed)', () => {
    const seen = { accepted: 0, refused: 0 };
    fc.assert(
      fc.property(fc.oneof(validPeerMessageArb, brokenArb, messageLikeArb, jsonishArb), (value) => {
        const expected = conformsToPeerMessage(value);
        let accepted: boolean;
        try {
          expect(checkPeerMessage(value)).toBe(value);
          accepted = true;
        } catch (err) {
          expect(err).toBeInstanceOf(BadPeerMessageError);
          expect((err as Error).message).toMatch(/^bad peer message: /);
          accepted = false;
        }
        seen[accepted ? 'accepted' : 'refused']++;
        expect(accepted, JSON.stringify(normalize(value))?.slice(0, 300)).toBe(expected);
      }),
      runs(8000),
    );
    expect(seen.accepted).toBeGreaterThan(800 * scale);
    expect(seen.refused).toBeGreaterThan(800 * scale);
  });

  it('encode/decode - every well-formed message round-trips, also decoded from a view inside a larger buffer', () => {
    fc.assert(
      fc.property(validPeerMessageArb, fc.nat({ max: 64 }), (message, pad) => {
        const out = decodeBoth(encode(message), pad);
        expect(checkPeerMessage(out)).toBe(out);
        expect(normalize(out)).toEqual(normalize(message));
      }),
      runs(5000),
    );
  });

  // FINDING (low): decode throws RangeError ("Maximum call stack size exceeded"), not CodecError,
  // for a frame whose JSON nests a few thousand levels deep (5,000 suffices; ~10 KB on the wire).
  // JSON.parse copes; the recursion in bus/codec.ts injectBlobs overflows. On a node the bus
  // catches it (bus/nats-bus.ts servePeers wraps decode + check in one try) and answers
  // BAD_MESSAGE, so nothing crashes; the contract of decode is still broken, and any other caller
  // (NatsBus.request decodes replies with no catch of its own) sees a non-codec error.
  // Remove `.fails` once decode bounds the depth or walks iteratively.
  it('decode - deeply nested JSON is refused with CodecError or BadPeerMessageError', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2000, max: 200_000 }), fc.constantFrom('array' as const, 'object' as const), (depth, shape) => {
        receive(deepFrame(depth, shape), `${shape} nested ${depth} deep`);
      }),
      once(50),
    );
  });

  // FINDING (low, latent): encode does not escape its blob marker. Any object with a numeric
  // `$b` member inside an accepted message (only extra members can hold one: the check allows
  // them) comes back from decode as a blob, or decode throws CodecError "refers to a missing
  // blob"; a top-level `$b` turns the whole message into a Uint8Array. bus/codec.ts extractBlobs /
  // injectBlobs. No message ZiStore builds contains such an object today. Remove `.fails` once
  // markers are escaped (or documented as reserved, with the check refusing them).
  it.fails('encode/decode - accepted messages with a {"$b": n} member round-trip', () => {
    fc.assert(
      fc.property(validPeerMessageArb, fc.nat({ max: 3 }), fc.boolean(), (message, index, topLevel) => {
        const value = topLevel ? { ...message, $b: index } : { ...message, extra: { $b: index } };
        expect(checkPeerMessage(value)).toBe(value);
        const back = receive(encode(value), 'with $b');
        expect(back).not.toBeNull();
        expect(normalize(back)).toEqual(normalize(value));
      }),
      once(100),
    );
  });

  // FINDING (low, latent): a message decoded from JSON can carry an own `__proto__` member
  // (JSON.parse creates it as data); encode's extractBlobs copies members with `out[k] = …`, which
  // for k = '__proto__' sets the copy's prototype instead, so the member vanishes from the wire.
  // bus/codec.ts extractBlobs (use Object.defineProperty or a null-prototype object). Harmless
  // today (nodes never re-encode what they receive). Remove `.fails` once fixed.
  it.fails('encode/decode - an own __proto__ member of an accepted message survives a round trip', () => {
    fc.assert(
      fc.property(validPeerMessageArb, fc.jsonValue({ maxDepth: 2 }), (message, extra) => {
        // As JSON.parse builds it from '{"__proto__": …}': an own data member, not the prototype.
        const value = JSON.parse(`{"__proto__":${JSON.stringify({ v: extra })}}`) as Record<string, unknown>;
        Object.assign(value, message);
        expect(Object.prototype.hasOwnProperty.call(value, '__proto__')).toBe(true);
        expect(checkPeerMessage(value)).toBe(value);
        const back = decode<Record<string, unknown>>(encode(value));
        expect(Object.prototype.hasOwnProperty.call(back, '__proto__'), 'own __proto__ lost by encode').toBe(true);
      }),
      once(100),
    );
  });
});

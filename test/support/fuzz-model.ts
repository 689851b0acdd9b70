// Reference models and fast-check arbitraries for the fuzz tests (test/unit/fuzz-*.test.ts,
// test/integration/fuzz.int.test.ts). The models restate PROTOCOL.md and the PeerMessage types
// on their own, without calling the code under test, so a test compares two readings of the
// contract rather than the code with itself.
import fc from 'fast-check';
import type { PeerMessage } from '../../actors/protocol.ts';

// ---- client requests (PROTOCOL.md "Messages") ------------------------------------------------

export const SPEC_MAX_KEY_BYTES = 1024;
export const SPEC_MAX_VALUE_BYTES = 1_048_576;
export const SPEC_MAX_REVISION = 2 ** 53; // exclusive

/**
 * White space as NATS clients (nats.js: String#trim) strip it: ECMAScript WhiteSpace and
 * LineTerminator, listed here by code point rather than by calling trim().
 */
const WS = '\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff';
const EDGE_WHITE_SPACE = new RegExp(`^[${WS}]|[${WS}]$`);
const CONTROL = /[\u0000-\u001f\u007f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export const utf8Bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Why a set of `Zi-Key` values is not one valid key (empty list: it is valid). */
export function keyViolations(values: readonly string[] | undefined): string[] {
  if (values === undefined || values.length === 0) return ['missing'];
  if (values.length > 1) return ['more than one'];
  const key = values[0]!;
  const out: string[] = [];
  const bytes = utf8Bytes(key);
  if (bytes === 0) out.push('empty');
  if (bytes > SPEC_MAX_KEY_BYTES) out.push('too long');
  if (CONTROL.test(key)) out.push('control character');
  if (key.includes('\ufffd')) out.push('U+FFFD');
  if (EDGE_WHITE_SPACE.test(key)) out.push('leading or trailing white space');
  if (LONE_SURROGATE.test(key)) out.push('not Unicode (lone surrogate): has no UTF-8 form');
  return out;
}

export type IfRevisionVerdict = { ok: true; value: number | undefined } | { ok: false; why: string };

/** `Zi-If-Revision`: absent, or one decimal integer below 2^53. */
export function ifRevisionVerdict(values: readonly string[] | undefined): IfRevisionVerdict {
  if (values === undefined || values.length === 0) return { ok: true, value: undefined };
  if (values.length > 1) return { ok: false, why: 'more than one' };
  const text = values[0]!;
  if (!/^[0-9]+$/.test(text)) return { ok: false, why: 'not a decimal integer' };
  if (BigInt(text) >= BigInt(SPEC_MAX_REVISION)) return { ok: false, why: 'not below 2^53' };
  return { ok: true, value: Number(text) };
}

/** Decimal digit strings with more than 16 characters that are still below 2^53 (leading zeros). */
export const isPaddedRevision = (text: string): boolean =>
  /^[0-9]{17,}$/.test(text) && BigInt(text) < BigInt(SPEC_MAX_REVISION);

// ---- header names and values ------------------------------------------------------------------

/** Characters a fuzzer should try in keys: controls, U+FFFD, every kind of white space, wide ones. */
export const TRICKY_CHARS = [
  '\u0000', '\u0001', '\u0009', '\u000a', '\u000b', '\u000c', '\u000d', '\u001b', '\u001f', '\u007f', ' ',
  '\u0085', '\u00a0', '\u1680', '\u2000', '\u200a', '\u200b', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000',
  '\ufeff', '\u180e', '\ufffd', '\ufffe', '\uffff', 'é', '€', 'ß', '🔑', '😀', 'Ω', 'ǅ', '.', '*', '>', ':', '"', '\\', '$', '%',
];

const charArb = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }) },
  { weight: 3, arbitrary: fc.constantFrom(...TRICKY_CHARS) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) },
);

/** Arbitrary well-formed Unicode strings biased to the key rules' edges (lengths around 1024 bytes). */
export const keyTextArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: charArb, maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 16 }) },
  {
    weight: 3,
    // Near the 1024-byte limit: a run of one character (1 to 4 bytes) with optional ends.
    arbitrary: fc
      .tuple(
        fc.constantFrom('k', 'é', '€', '🔑', ' '),
        fc.oneof(fc.integer({ min: 1018, max: 1030 }), fc.integer({ min: 240, max: 1030 })),
        fc.oneof(fc.constant(''), fc.string({ unit: charArb, maxLength: 3 })),
        fc.oneof(fc.constant(''), fc.string({ unit: charArb, maxLength: 3 })),
      )
      .map(([c, bytes, pre, post]) => pre + c.repeat(Math.max(1, Math.round(bytes / utf8Bytes(c)))) + post),
  },
  { weight: 1, arbitrary: fc.string({ unit: charArb, minLength: 300, maxLength: 1200 }) },
);

/** Strings that may hold lone surrogates (not Unicode text: no UTF-8 form). */
export const loneSurrogateTextArb: fc.Arbitrary<string> = fc
  .tuple(fc.string({ unit: 'grapheme-ascii', maxLength: 6 }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.string({ unit: 'grapheme-ascii', maxLength: 6 }))
  .map(([a, code, b]) => `${a || 'k'}${String.fromCharCode(code)}${b || 'k'}`);

/** `Zi-If-Revision` candidates: good numbers, bounds, and everything that looks almost like one. */
export const ifRevisionTextArb: fc.Arbitrary<string> = fc.oneof(
  fc.nat().map(String),
  fc.constantFrom('0', '1', '9007199254740991', '9007199254740992', '9007199254740993', '9999999999999999', '99999999999999999',
    '18446744073709551616', '-0', '-1', '+1', '1.0', '1e3', '0x10', '0b1', '1_000', ' 1', '1 ', '', ' ', '١٢', '１２', '٣', 'NaN',
    'Infinity', '0000000000000001', '00000000000000000', '1\u0000', '\u00a01', 'abc'),
  fc.bigInt({ min: 0n, max: 2n ** 64n }).map(String),
  fc.string({ unit: charArb, maxLength: 20 }),
  fc.tuple(fc.nat({ max: 99 }), fc.integer({ min: 1, max: 24 })).map(([n, width]) => String(n).padStart(width, '0')),
);

/** Header names a client might send instead of, or besides, the real ones. */
export const KEY_NAME_VARIANTS = ['Zi-Key', 'zi-key', 'ZI-KEY', 'Zi-key', 'zI-kEY', 'Zi_Key', 'ZiKey', 'X-Zi-Key', 'Zi-Key-'];
export const IF_NAME_VARIANTS = ['Zi-If-Revision', 'zi-if-revision', 'ZI-IF-REVISION', 'Zi-If-revision', 'Zi-Revision'];

/** A header map as the bus hands it to the node: exact names, each with its list of values. */
export const headerMapArb: fc.Arbitrary<Map<string, string[]>> = fc
  .tuple(
    fc.oneof({ weight: 4, arbitrary: fc.array(keyTextArb, { minLength: 1, maxLength: 1 }) }, { weight: 1, arbitrary: fc.array(keyTextArb, { maxLength: 3 }) }),
    fc.array(fc.tuple(fc.constantFrom(...KEY_NAME_VARIANTS.slice(1), ...IF_NAME_VARIANTS, 'Nats-Service-Error-Code'), fc.array(keyTextArb, { maxLength: 2 })), { maxLength: 3 }),
    fc.array(fc.tuple(fc.string({ unit: charArb, maxLength: 12 }), fc.array(fc.string({ unit: charArb, maxLength: 8 }), { maxLength: 2 })), { maxLength: 3 }),
    fc.nat({ max: 7 }).map((n) => n === 0),
  )
  .map(([keyValues, variants, random, dropKey]) => {
    const map = new Map<string, string[]>();
    for (const [name, values] of [...random, ...variants]) map.set(name, values);
    if (!dropKey) map.set('Zi-Key', keyValues);
    else map.delete('Zi-Key');
    return map;
  });

/** Value sizes around the 1 MiB limit, and small ones. */
export const valueLengthArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 6, arbitrary: fc.nat({ max: 64 }) },
  { weight: 1, arbitrary: fc.constantFrom(SPEC_MAX_VALUE_BYTES - 1, SPEC_MAX_VALUE_BYTES, SPEC_MAX_VALUE_BYTES + 1) },
  { weight: 1, arbitrary: fc.integer({ min: SPEC_MAX_VALUE_BYTES - 16, max: SPEC_MAX_VALUE_BYTES + 16 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: SPEC_MAX_VALUE_BYTES + 4096 }) },
);

/** Deterministic filler bytes (fast for 1 MiB; different per seed). */
export function fillBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

// ---- raw NATS header blocks, as the node's nats.js decodes them --------------------------------

/** The header map nats.js builds from a raw header block (MsgHdrsImpl.decode), restated. */
export function decodeHeaderBlockModel(block: Uint8Array): Map<string, string[]> {
  const text = new TextDecoder().decode(block); // invalid UTF-8 becomes U+FFFD, as in nats.js
  const map = new Map<string, string[]>();
  for (const line of text.split('\r\n').slice(1)) {
    if (line === '') continue;
    const idx = line.indexOf(':');
    if (idx < 0) continue; // lines without a colon are dropped
    const name = line.slice(0, idx);
    map.set(name, [...(map.get(name) ?? []), line.slice(idx + 1).trim()]);
  }
  return map;
}

/** Header name characters: printable ASCII minus the colon. */
const tokenCharArb = fc.mapToConstant({ num: 93, build: (v) => String.fromCharCode(v < 25 ? 33 + v : 34 + v) });
export const tokenNameArb: fc.Arbitrary<string> = fc.string({ unit: tokenCharArb, minLength: 1, maxLength: 16 });

/** Names nats.js refuses (it throws while decoding): a space, a control, DEL, non-ASCII. Never CR or LF. */
export const badHeaderNameArb: fc.Arbitrary<string> = fc
  .tuple(fc.string({ unit: tokenCharArb, maxLength: 6 }), fc.constantFrom(' ', '\t', '\u0000', '\u0001', '\u001f', '\u007f', 'é', 'ü', '€', '🔑', '\u00a0'), fc.string({ unit: tokenCharArb, maxLength: 6 }))
  .map(([a, bad, b]) => `${a}${bad}${b}`);

// ---- peer messages (actors/protocol.ts PeerMessage), restated ---------------------------------

export const PEER_TYPES = ['invalidate', 'validate', 'forward', 'read', 'join', 'lease', 'sync', 'snapshot'] as const;

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
const isNat = (x: unknown): boolean => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= Number.MAX_SAFE_INTEGER;
const isBytes = (x: unknown): boolean => x instanceof Uint8Array;
const isStr = (x: unknown): boolean => typeof x === 'string';
const arrayOf = (x: unknown, ok: (e: unknown) => boolean): boolean => Array.isArray(x) && x.every(ok);
const keyRev = (e: unknown): boolean => isObj(e) && isStr(e.key) && isNat(e.rev);
const isClientKey = (x: unknown): boolean => isStr(x) && keyViolations([x as string]).length === 0;

/**
 * Whether `x` has the shape of a PeerMessage (extra fields allowed); keep in step with the
 * PeerMessage type in actors/protocol.ts.
 */
export function conformsToPeerMessage(x: unknown): boolean {
  if (!isObj(x) || !isStr(x.type) || !isStr(x.from) || !isNat(x.epoch)) return false;
  switch (x.type) {
    // Forward and read carry client requests: the client's key rules and value limit hold.
    case 'forward':
      return arrayOf(
        x.commands,
        (c) => isObj(c) && isClientKey(c.key) && (c.value === null || (isBytes(c.value) && (c.value as Uint8Array).byteLength <= SPEC_MAX_VALUE_BYTES)) && (c.ifRevision === undefined || isNat(c.ifRevision)),
      );
    case 'read':
      return arrayOf(x.keys, isClientKey);
    case 'join':
      return isStr(x.session) && isNat(x.attempt) && isNat(x.since) && isNat(x.history) && arrayOf(x.pending, isStr);
    case 'lease':
      return isStr(x.session);
    case 'invalidate':
      return arrayOf(x.entries, (e) => keyRev(e) && (isBytes((e as Obj).value) || (e as Obj).value === null)) && arrayOf(x.validated, keyRev);
    case 'validate':
      return arrayOf(x.validated, keyRev);
    case 'sync':
      return true;
    case 'snapshot':
      return isNat(x.admission) && isNat(x.seq) && isNat(x.maxRev) && typeof x.done === 'boolean' && arrayOf(x.entries, (e) => keyRev(e) && (isBytes((e as Obj).value) || (e as Obj).value === null));
    default:
      return false;
  }
}

const natArb = fc.oneof(fc.nat({ max: 1000 }), fc.constantFrom(0, Number.MAX_SAFE_INTEGER), fc.maxSafeNat());
const bytesArb = fc.oneof({ weight: 5, arbitrary: fc.uint8Array({ maxLength: 40 }) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 1000, maxLength: 5000 }) });
const peerStringArb = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: charArb, maxLength: 12 }));
const keyRevArb = fc.record({ key: peerStringArb, rev: natArb });
/** Keys a client may send (forward and read carry them; breakMessage makes the others). */
const clientKeyArb = peerStringArb.filter((k) => keyViolations([k]).length === 0);

/**
 * Well-formed peer messages of every type (the plausible and the absurd, as long as the shape
 * holds). Typed as PeerMessage so that tsc flags this generator when the protocol changes.
 */
export const validPeerMessageArb: fc.Arbitrary<PeerMessage & Obj> = fc
  .tuple(
    fc.constantFrom(...PEER_TYPES),
    fc.record({ from: peerStringArb, epoch: natArb }),
    fc.record({
      commands: fc.array(fc.record({ key: clientKeyArb, value: fc.option(bytesArb, { nil: null }), ifRevision: fc.option(natArb, { nil: undefined }) }, { requiredKeys: ['key', 'value'] }), { maxLength: 4 }),
      keys: fc.array(peerStringArb, { maxLength: 4 }),
      clientKeys: fc.array(clientKeyArb, { maxLength: 4 }),
      session: peerStringArb,
      attempt: natArb,
      since: natArb,
      history: natArb,
      admission: natArb,
      entries: fc.array(fc.record({ key: peerStringArb, rev: natArb, value: fc.option(bytesArb, { nil: null }) }), { maxLength: 4 }),
      snapshotEntries: fc.array(fc.record({ key: peerStringArb, rev: natArb, value: fc.option(bytesArb, { nil: null }) }), { maxLength: 4 }),
      validated: fc.array(keyRevArb, { maxLength: 4 }),
      seq: natArb,
      maxRev: natArb,
      done: fc.boolean(),
    }),
  )
  .map(([type, head, f]): PeerMessage & Obj => {
    switch (type) {
      case 'forward':
        return { type, ...head, commands: f.commands };
      case 'read':
        return { type, ...head, keys: f.clientKeys };
      case 'join':
        return { type, ...head, session: f.session, attempt: f.attempt, since: f.since, history: f.history, pending: f.keys };
      case 'lease':
        return { type, ...head, session: f.session };
      case 'invalidate':
        return { type, ...head, entries: f.entries, validated: f.validated };
      case 'validate':
        return { type, ...head, validated: f.validated };
      case 'sync':
        return { type, ...head };
      case 'snapshot':
        return { type, ...head, admission: f.admission, seq: f.seq, maxRev: f.maxRev, done: f.done, entries: f.snapshotEntries };
    }
  });

/** Values that are wrong for any typed field: wrong types, negative, fractional, unsafe, huge. */
export const wrongValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(-1, -0.5, 0.5, 1.5, 2 ** 53, 2 ** 64, 1e308, -1e308, Number.MIN_SAFE_INTEGER, null, true, false, '', '1', 'x', [], {}, [1], { $b: 0 }),
  fc.integer({ max: -1 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
  fc.string({ maxLength: 6 }),
);

/** JSON-shaped junk: any nesting of plain values, with byte arrays among them. */
export const jsonishArb: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.constantFrom(0, -1, 2 ** 53, 2 ** 53 - 1, 1e308, 0.5),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 10 }),
    fc.constantFrom(...PEER_TYPES, 'ack', 'replies', ''),
    bytesArb,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom('type', 'from', 'epoch', 'key', 'rev', 'value', 'entries', 'validated', 'commands', 'keys', 'session', 'seq', 'maxRev', 'done', 'cursor', 'attempt', 'admission', 'x', 'ifRevision'), tie('value'), { maxKeys: 5 }),
  ),
})).value;

/** Breaks a well-formed message so that it no longer has the PeerMessage shape. */
export function breakMessage(message: Obj, how: { field: number; value: unknown; mode: 'delete' | 'set' | 'type' | 'nested' }): Obj {
  const copy: Obj = structuredClone(message);
  const fields = Object.keys(copy);
  const field = fields[how.field % fields.length]!;
  switch (how.mode) {
    case 'delete':
      delete copy[field];
      break;
    case 'set':
      copy[field] = how.value;
      break;
    case 'type':
      copy.type = typeof how.value === 'string' && !(PEER_TYPES as readonly string[]).includes(how.value) ? how.value : `x-${String(how.value).slice(0, 8)}`;
      break;
    case 'nested': {
      // Into the first element of the first list field, or the list itself.
      const listField = fields.find((f) => Array.isArray(copy[f]));
      if (listField === undefined) {
        copy.epoch = how.value;
        break;
      }
      const list = copy[listField] as unknown[];
      if (list.length > 0 && isObj(list[0])) {
        const inner = list[0];
        const innerFields = Object.keys(inner);
        inner[innerFields[how.field % innerFields.length]!] = how.value;
      } else list.push(how.value);
      break;
    }
  }
  return copy;
}

// ---- peer frames: [u32 JSON length][JSON][u32 blob count][u32 lengths…][blobs…] --------------

export function frame(json: string | Uint8Array, blobs: Uint8Array[] = [], claim: { headLength?: number; count?: number; lengths?: number[] } = {}): Uint8Array {
  const head = typeof json === 'string' ? new TextEncoder().encode(json) : json;
  const lengths = claim.lengths ?? blobs.map((b) => b.byteLength);
  const count = claim.count ?? lengths.length;
  const total = 4 + head.byteLength + 4 + 4 * lengths.length + blobs.reduce((n, b) => n + b.byteLength, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, claim.headLength ?? head.byteLength);
  out.set(head, 4);
  let offset = 4 + head.byteLength;
  view.setUint32(offset, count);
  offset += 4;
  for (const l of lengths) {
    view.setUint32(offset, l >>> 0);
    offset += 4;
  }
  for (const b of blobs) {
    out.set(b, offset);
    offset += b.byteLength;
  }
  return out;
}

/** A JSON text with byte arrays replaced by {"$b": i} markers, and the blobs in order. */
export function toMarkedJson(value: unknown): { json: string; blobs: Uint8Array[] } {
  const blobs: Uint8Array[] = [];
  const walk = (v: unknown): unknown => {
    if (v instanceof Uint8Array) {
      blobs.push(v);
      return { $b: blobs.length - 1 };
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return { json: JSON.stringify(walk(value)), blobs };
}

/** Well-formed messages with one field broken (mostly no longer PeerMessage-shaped), framed. */
export const brokenFrameArb: fc.Arbitrary<{ kind: string; bytes: Uint8Array }> = fc
  .tuple(validPeerMessageArb, fc.nat(), wrongValueArb, fc.constantFrom('delete' as const, 'set' as const, 'type' as const, 'nested' as const))
  .map(([m, field, value, mode]) => {
    const { json, blobs } = toMarkedJson(breakMessage(m, { field, value, mode }));
    return { kind: `broken ${String(m.type)} (${mode})`, bytes: frame(json, blobs) };
  });

/** Garbage peer frames of every kind; most are malformed by construction (callers filter). */
export const peerFrameArb: fc.Arbitrary<{ kind: string; bytes: Uint8Array }> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ kind: 'random bytes', bytes })),
  fc.uint8Array({ minLength: 100, maxLength: 4000 }).map((bytes) => ({ kind: 'random bytes (long)', bytes })),
  fc.tuple(fc.integer({ min: 1, max: 0xffffffff }), fc.uint8Array({ maxLength: 32 })).map(([len, rest]) => ({
    kind: 'header length past the end',
    bytes: frame(rest, [], { headLength: Math.max(len, rest.byteLength + 5) }),
  })),
  fc.string({ maxLength: 40 }).map((text) => ({ kind: 'not JSON', bytes: frame(`{${text}`) })),
  fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 })).map((v) => ({ kind: 'JSON not an object', bytes: frame(JSON.stringify(v)) })),
  jsonishArb.map((v) => {
    const { json, blobs } = toMarkedJson(v);
    return { kind: 'JSON-shaped junk', bytes: frame(json, blobs) };
  }),
  brokenFrameArb,
  fc.tuple(validPeerMessageArb, fc.integer({ min: 1, max: 1000 })).map(([m, extra]) => {
    // Markers pointing past the last blob.
    const { json, blobs } = toMarkedJson({ ...m, entries: [{ key: 'k', rev: 1, value: new Uint8Array(1) }] });
    const bumped = json.replace(/\{"\$b":(\d+)\}/g, (_, i: string) => `{"$b":${Number(i) + blobs.length + extra}}`);
    return { kind: 'blob marker past the end', bytes: frame(bumped, blobs) };
  }),
  fc.tuple(validPeerMessageArb, fc.integer({ min: 1, max: 0xffffffff }), fc.boolean()).map(([m, big, countOrLength]) => {
    const { json, blobs } = toMarkedJson({ ...m, entries: [{ key: 'k', rev: 1, value: new Uint8Array(3) }], epoch: -1 });
    const claim = countOrLength ? { count: blobs.length + big } : { lengths: blobs.map((b) => b.byteLength + big) };
    return { kind: countOrLength ? 'blob count past the end' : 'blob length past the end', bytes: frame(json, blobs, claim) };
  }),
  fc.tuple(validPeerMessageArb, fc.integer({ min: 1, max: 64 })).map(([m, cut]) => {
    const { json, blobs } = toMarkedJson({ ...m, epoch: -7 });
    const whole = frame(json, blobs);
    return { kind: 'truncated', bytes: whole.subarray(0, Math.max(0, whole.byteLength - cut)) };
  }),
  fc.tuple(fc.constantFrom(...PEER_TYPES), fc.constantFrom('-1', '1.5', '1e400', '9007199254740993', '"1"', 'null', '[]', '99999999999999999999999999999999')).map(([type, epoch]) => ({
    kind: 'bad epoch literal',
    bytes: frame(`{"type":"${type}","from":"n1","epoch":${epoch},"entries":[],"validated":[],"commands":[],"keys":[],"session":"s","attempt":0,"admission":0,"seq":0,"maxRev":0,"done":true,"cursor":0}`),
  })),
);

/** JSON nested `depth` levels deep, as a peer frame. */
export function deepFrame(depth: number, shape: 'array' | 'object'): Uint8Array {
  const json = shape === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
  return frame(json);
}

const fuzzSeed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
/** FUZZ_RUNS_SCALE=10 for a long local run; CI uses the defaults. */
export const fuzzScale = Number(process.env.FUZZ_RUNS_SCALE ?? 1);
/** fast-check settings: `n` runs (scaled), replayable with FUZZ_SEED. */
export const fuzzRuns = (n: number) => ({ numRuns: Math.max(1, Math.round(n * fuzzScale)), seed: fuzzSeed });
/** For the `it.fails` findings: stop at the first counterexample (shrinking a stack overflow is slow). */
export const fuzzOnce = (n: number) => ({ numRuns: n, seed: fuzzSeed, endOnFailure: true });

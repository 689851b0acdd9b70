// Random client requests for the integration fuzz (test/integration/fuzz.int.test.ts), built as
// raw NATS header blocks, and the PROTOCOL.md oracle that says which reply codes each may get
// from a key-value store with revisions. Generation happens before the run (fast-check, seeded);
// placeholders (`pool` keys, `current` revisions) are resolved against the model when sent.
import fc from 'fast-check';
import {
  decodeHeaderBlockModel,
  fillBytes,
  ifRevisionTextArb,
  ifRevisionVerdict,
  isPaddedRevision,
  KEY_NAME_VARIANTS,
  IF_NAME_VARIANTS,
  keyTextArb,
  keyViolations,
  SPEC_MAX_VALUE_BYTES,
  tokenNameArb,
} from './fuzz-model.ts';
import { headerBlock } from './fuzz-raw-nats.ts';

export type Op = 'get' | 'put' | 'delete' | 'members';

export type KeyValueSpec =
  | { kind: 'pool'; index: number; pre: string; post: string }
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array };

export type IfValueSpec = { kind: 'current'; delta: number } | { kind: 'text'; text: string };

export type LineSpec =
  | { kind: 'key'; name: string; value: KeyValueSpec }
  | { kind: 'if'; name: string; value: IfValueSpec }
  | { kind: 'extra'; name: string; value: string }
  | { kind: 'no-colon'; text: string };

export interface RequestSpec {
  op: Op;
  /** null: the cluster-wide subject (any node). */
  node: string | null;
  statusLine: string;
  /** Send with PUB (no header block at all) when there are no lines. */
  plainWhenEmpty: boolean;
  lines: LineSpec[];
  bodyLength: number;
  bodySeed: number;
}

/** A header line must not contain CR LF (it would start a new line): fold it to LF. */
const noCrLf = (s: string): string => s.replace(/\r\n/g, '\n');
/**
 * Header values without any CR or LF: nats.js refuses a bare CR or LF in a value when the node
 * decodes the block, and the store then answers 500. That is a finding of its own (the
 * `it.fails` tests in fuzz.int.test.ts), so the main property keeps clear of it.
 */
const noCrOrLf = (s: string): string => s.replace(/[\r\n]/g, '');

const WHITE = [' ', '\t', '  ', '\u00a0', '\u3000', '\ufeff', ' \t '];
const padArb = fc.oneof({ weight: 4, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom(...WHITE) });

/** Byte strings that are not UTF-8 (the node sees U+FFFD), around ordinary text. */
const badUtf8Arb = fc
  .tuple(fc.string({ unit: 'grapheme-ascii', maxLength: 6 }), fc.constantFrom([0xff], [0xc3], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82]), fc.string({ unit: 'grapheme-ascii', maxLength: 6 }))
  .map(([a, bad, b]) => Buffer.concat([Buffer.from(`k${a}`), Buffer.from(bad), Buffer.from(b)]));

const keyValueArb: fc.Arbitrary<KeyValueSpec> = fc.oneof(
  { weight: 20, arbitrary: fc.record({ kind: fc.constant('pool' as const), index: fc.nat(), pre: padArb, post: padArb }) },
  { weight: 3, arbitrary: keyTextArb.map((text) => ({ kind: 'text' as const, text: noCrOrLf(text) })) },
  { weight: 1, arbitrary: badUtf8Arb.map((bytes) => ({ kind: 'bytes' as const, bytes })) },
);

const ifValueArb: fc.Arbitrary<IfValueSpec> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('current' as const), delta: fc.constantFrom(0, 0, 0, -1, 1) }) },
  {
    weight: 3,
    arbitrary: ifRevisionTextArb
      .map((text) => noCrOrLf(text))
      // PROTOCOL.md says "a decimal integer below 2^53"; the store refuses such numbers when
      // zero-padded past 16 digits (see test/unit/fuzz-request.test.ts). Kept out here.
      .filter((text) => !isPaddedRevision(text.trim()))
      .map((text) => ({ kind: 'text' as const, text })),
  },
);

const lineArb = (weights: { key: number }): fc.Arbitrary<LineSpec> =>
  fc.oneof(
    { weight: weights.key, arbitrary: keyValueArb.map((value) => ({ kind: 'key' as const, name: 'Zi-Key', value })) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...KEY_NAME_VARIANTS.slice(1)), keyValueArb).map(([name, value]) => ({ kind: 'key' as const, name, value })) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...IF_NAME_VARIANTS.slice(1)), ifValueArb).map(([name, value]) => ({ kind: 'if' as const, name, value })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.oneof(tokenNameArb, fc.constant(''), fc.constantFrom('Nats-Service-Error-Code', 'Nats-Service-Error', 'Zi-Revision', 'Nats-Msg-Id', 'Status')), fc.oneof(fc.string({ maxLength: 20 }), keyTextArb))
        .map(([name, value]) => ({ kind: 'extra' as const, name, value: noCrOrLf(value) })),
    },
    {
      weight: 1,
      arbitrary: fc
        .string({ unit: fc.oneof(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }), fc.constantFrom(' ', '\t', 'é')), minLength: 1, maxLength: 16 })
        .map((text) => ({ kind: 'no-colon' as const, text: noCrLf(text).replace(/:/g, '') }))
        .filter((l) => l.text.length > 0),
    },
  );

/** Body sizes: mostly small, some at the 1 MiB bound and just over it. */
const bodyLengthArb = fc.oneof(
  { weight: 30, arbitrary: fc.nat({ max: 48 }) },
  { weight: 2, arbitrary: fc.constantFrom(SPEC_MAX_VALUE_BYTES, SPEC_MAX_VALUE_BYTES + 1) },
  { weight: 2, arbitrary: fc.integer({ min: SPEC_MAX_VALUE_BYTES - 8, max: SPEC_MAX_VALUE_BYTES + 8 }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: SPEC_MAX_VALUE_BYTES + 1024 }) },
);

export function requestSpecArb(nodes: readonly string[]): fc.Arbitrary<RequestSpec> {
  return fc.record({
    op: fc.oneof({ weight: 6, arbitrary: fc.constant('get' as const) }, { weight: 7, arbitrary: fc.constant('put' as const) }, { weight: 3, arbitrary: fc.constant('delete' as const) }, { weight: 1, arbitrary: fc.constant('members' as const) }),
    node: fc.oneof({ weight: 2, arbitrary: fc.constant(null) }, { weight: 3, arbitrary: fc.constantFrom(...nodes) }),
    statusLine: fc.oneof({ weight: 12, arbitrary: fc.constant('NATS/1.0') }, { weight: 1, arbitrary: fc.constantFrom('NATS/1.0 503', 'NATS/1.0 408 Request Timeout', 'NATS/1.0 100 Idle Heartbeat', 'NATS/1.0 500 x') }),
    plainWhenEmpty: fc.boolean(),
    lines: fc
      .tuple(
        // The key: usually exactly one line; sometimes none, sometimes several.
        fc.oneof({ weight: 8, arbitrary: fc.array(keyValueArb, { minLength: 1, maxLength: 1 }) }, { weight: 1, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(keyValueArb, { minLength: 2, maxLength: 3 }) }),
        fc.oneof({ weight: 5, arbitrary: fc.constant([]) }, { weight: 4, arbitrary: fc.array(ifValueArb, { minLength: 1, maxLength: 1 }) }, { weight: 1, arbitrary: fc.array(ifValueArb, { minLength: 2, maxLength: 2 }) }),
        fc.array(lineArb({ key: 1 }), { maxLength: 4 }),
        fc.array(fc.nat(), { minLength: 10, maxLength: 10 }),
      )
      .map(([keys, ifs, extra, order]) => {
        const lines: LineSpec[] = [
          ...keys.map((value) => ({ kind: 'key' as const, name: 'Zi-Key', value })),
          ...ifs.map((value) => ({ kind: 'if' as const, name: 'Zi-If-Revision', value })),
          ...extra,
        ];
        // Shuffle by the generated order, so the real headers are not always first.
        return lines.map((l, i) => ({ l, k: order[i % order.length]! * 16 + i })).sort((a, b) => a.k - b.k).map((x) => x.l);
      }),
    bodyLength: bodyLengthArb,
    bodySeed: fc.nat(),
  });
}

// ---- the model ------------------------------------------------------------------------------

export interface Stored {
  value: Uint8Array;
  rev: number;
}

export class KvModel {
  readonly data = new Map<string, Stored>();
  /** Every key a test wrote or deleted (to check them all afterwards), with the absent ones. */
  readonly touched = new Set<string>();
  lastRevision = 0;

  constructor(readonly pool: string[]) {}

  poolKey(index: number): string {
    return this.pool[index % this.pool.length]!;
  }
}

export interface ResolvedRequest {
  subject: string;
  /** null: send with PUB (no headers). */
  block: Uint8Array | null;
  body: Uint8Array;
  /** Header map as the node's NATS client will decode it. */
  seen: Map<string, string[]>;
  /** Readable form for failure messages. */
  describe: string;
}

const enc = new TextEncoder();

function keyBytes(spec: KeyValueSpec, model: KvModel): Uint8Array {
  switch (spec.kind) {
    case 'pool':
      return enc.encode(`${spec.pre}${model.poolKey(spec.index)}${spec.post}`);
    case 'text':
      return enc.encode(spec.text);
    case 'bytes':
      return spec.bytes;
  }
}

export function resolveRequest(spec: RequestSpec, model: KvModel, cluster: string): ResolvedRequest {
  const subject = spec.node === null ? `zistore.${cluster}.${spec.op}` : `zistore.${cluster}.node.${spec.node}.${spec.op}`;
  // The key the request is about (first exact Zi-Key line), for `current` revisions.
  const firstKey = spec.lines.find((l): l is Extract<LineSpec, { kind: 'key' }> => l.kind === 'key' && l.name === 'Zi-Key');
  const aboutKey = firstKey ? new TextDecoder().decode(keyBytes(firstKey.value, model)).trim() : '';
  const pairs: [string | Uint8Array, string | Uint8Array][] = [];
  const rawLines: Uint8Array[] = [];
  for (const line of spec.lines) {
    switch (line.kind) {
      case 'key':
        pairs.push([line.name, keyBytes(line.value, model)]);
        break;
      case 'if': {
        const v = line.value;
        const text = v.kind === 'text' ? v.text : String(Math.max(0, (model.data.get(aboutKey)?.rev ?? 0) + v.delta));
        pairs.push([line.name, text]);
        break;
      }
      case 'extra':
        pairs.push([line.name, line.value]);
        break;
      case 'no-colon':
        rawLines.push(enc.encode(line.text));
        break;
    }
  }
  let block: Uint8Array | null = null;
  if (pairs.length > 0 || rawLines.length > 0 || !spec.plainWhenEmpty) {
    const base = headerBlock(pairs, spec.statusLine);
    // Lines without a colon go before the final blank line.
    block = rawLines.length === 0 ? base : Buffer.concat([base.subarray(0, base.byteLength - 2), ...rawLines.flatMap((l) => [l, Buffer.from('\r\n')]), Buffer.from('\r\n')]);
  }
  const seen = block === null ? new Map<string, string[]>() : decodeHeaderBlockModel(block);
  const body = fillBytes(spec.bodyLength, spec.bodySeed);
  const shownHeaders = block === null ? '(none)' : JSON.stringify(Buffer.from(block).toString('latin1')).slice(0, 600);
  return { subject, block, body, seen, describe: `${subject} headers=${shownHeaders} body=${spec.bodyLength} B` };
}

export type Expectation =
  | { codes: number[]; effect: 'none'; why: string }
  | { codes: [200]; effect: 'members'; why: string }
  | { codes: [200]; effect: 'read'; key: string; stored: Stored; why: string }
  | { codes: [200]; effect: 'write'; key: string; deletes: boolean; why: string };

/** PROTOCOL.md, as a function of the decoded headers, the body size and the model. */
export function expectReply(op: Op, seen: Map<string, string[]>, bodyLength: number, model: KvModel): Expectation {
  if (op === 'members') return { codes: [200], effect: 'members', why: 'members ignores headers and body' };
  const keyBad = keyViolations(seen.get('Zi-Key'));
  const ifVerdict = ifRevisionVerdict(seen.get('Zi-If-Revision'));
  const tooBig = op === 'put' && bodyLength > SPEC_MAX_VALUE_BYTES;
  if (keyBad.length > 0) return { codes: tooBig ? [400, 413] : [400], effect: 'none', why: `key: ${keyBad.join(', ')}` };
  const key = seen.get('Zi-Key')![0]!;
  const stored = model.data.get(key);
  if (op === 'get') {
    return stored ? { codes: [200], effect: 'read', key, stored, why: `key exists at ${stored.rev}` } : { codes: [404], effect: 'none', why: 'key absent' };
  }
  if (!ifVerdict.ok) return { codes: tooBig ? [400, 413] : [400], effect: 'none', why: `Zi-If-Revision: ${ifVerdict.why}` };
  if (tooBig) return { codes: [413], effect: 'none', why: 'value over 1 MiB' };
  if (op === 'delete' && !stored) return { codes: [404], effect: 'none', why: 'delete of an absent key' };
  const want = ifVerdict.value;
  if (want !== undefined) {
    const matches = want === 0 ? !stored : stored !== undefined && stored.rev === want;
    if (!matches) return { codes: [409], effect: 'none', why: `Zi-If-Revision ${want} vs ${stored ? stored.rev : 'absent'}` };
  }
  return { codes: [200], effect: 'write', key, deletes: op === 'delete', why: want === undefined ? 'unconditional' : `Zi-If-Revision ${want} matches` };
}

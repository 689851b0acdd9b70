// Goal: client request validation (actors/request.ts) agrees with PROTOCOL.md for any header
// map a bus can hand over. Method: fast-check properties; the expected verdict comes from
// test/support/fuzz-model.ts, which restates the protocol rules without calling request.ts.
// Replay a failure with FUZZ_SEED=<seed> (printed by fast-check).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseIfRevision, parseKey, parseWrite } from '../../actors/request.ts';
import type { ClientReply, ClientRequest, WriteCommand } from '../../actors/protocol.ts';
import {
  headerMapArb,
  ifRevisionTextArb,
  ifRevisionVerdict,
  isPaddedRevision,
  keyTextArb,
  keyViolations,
  loneSurrogateTextArb,
  SPEC_MAX_VALUE_BYTES,
  valueLengthArb,
  utf8Bytes,
  fuzzOnce as once,
  fuzzScale as scale,
  fuzzRuns as runs,
} from '../support/fuzz-model.ts';

const isFailure = (x: unknown): x is Extract<ClientReply, { ok: false }> => typeof x === 'object' && x !== null && 'ok' in x && (x as ClientReply).ok === false;
const request = (op: ClientRequest['op'], headers: Map<string, string[]>, data = new Uint8Array(0)): ClientRequest => ({ op, headers, data });

/** A request's headers with `Zi-If-Revision` (exact case) replaced, or removed when `values` is undefined. */
function withIfRevision(headers: Map<string, string[]>, values: string[] | undefined): Map<string, string[]> {
  const out = new Map(headers);
  if (values === undefined) out.delete('Zi-If-Revision');
  else out.set('Zi-If-Revision', values);
  return out;
}

/** Zi-If-Revision values: mostly one, sometimes none (empty list), two or three. */
const ifValuesArb = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 5, arbitrary: fc.array(ifRevisionTextArb, { minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.array(ifRevisionTextArb, { maxLength: 3 }) },
);
const notPadded = (values: string[] | undefined) => !(values?.length === 1 && isPaddedRevision(values[0]!));

describe('fuzz - client request validation', () => {
  it('parseKey - a key satisfying every PROTOCOL.md rule, or a 400 for a header map that breaks one', () => {
    let accepted = 0;
    fc.assert(
      fc.property(headerMapArb, (headers) => {
        const result = parseKey(request('get', headers));
        const violations = keyViolations(headers.get('Zi-Key'));
        if (typeof result === 'string') {
          accepted++;
          expect(violations, `accepted ${JSON.stringify(result)}`).toEqual([]);
          expect(result).toBe(headers.get('Zi-Key')![0]);
          const bytes = utf8Bytes(result);
          expect(bytes).toBeGreaterThanOrEqual(1);
          expect(bytes).toBeLessThanOrEqual(1024);
        } else {
          expect(isFailure(result)).toBe(true);
          expect(result).toMatchObject({ ok: false, code: 400 });
          expect((result as { description: string }).description.length).toBeGreaterThan(0);
          expect(violations.length, `refused a valid key: ${JSON.stringify(headers.get('Zi-Key'))}`).toBeGreaterThan(0);
        }
      }),
      runs(10_000),
    );
    expect(accepted).toBeGreaterThan(1000 * scale); // the generator reaches both sides
  });

  it('parseKey - exact-case name only: any other spelling of Zi-Key counts as missing', () => {
    fc.assert(
      fc.property(fc.constantFrom('zi-key', 'ZI-KEY', 'Zi-key', 'zI-kEY', 'Zi-Key ', ' Zi-Key'), fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 8 }), (name, key) => {
        expect(parseKey(request('get', new Map([[name, [`k${key}k`]]])))).toMatchObject({ ok: false, code: 400 });
      }),
      runs(300),
    );
  });

  // FINDING (latent, low): parseKey accepts strings holding a lone UTF-16 surrogate. Such a key
  // has no UTF-8 form (TextEncoder turns it into U+FFFD, Buffer too), so it breaks PROTOCOL.md's
  // "UTF-8" rule, and two different keys ('a\uD800' and 'a\uDBFF') would encode alike on any
  // byte-oriented store. Unreachable over NATS today (nats.js decodes header bytes with
  // TextDecoder, which never yields lone surrogates) but reachable through any other Bus adapter.
  // actors/request.ts FORBIDDEN_KEY_CHARS has no surrogate check. Remove `.fails` once fixed.
  it('parseKey - a key with a lone surrogate (no UTF-8 form) is a 400', () => {
    fc.assert(
      fc.property(loneSurrogateTextArb, (key) => {
        expect(keyViolations([key]).length).toBeGreaterThan(0);
        expect(parseKey(request('get', new Map([['Zi-Key', [key]]])))).toMatchObject({ ok: false, code: 400 });
      }),
      once(200),
    );
  });

  it('parseIfRevision - absent, or one decimal integer below 2^53; anything else is a 400', () => {
    fc.assert(
      fc.property(fc.array(ifRevisionTextArb, { maxLength: 3 }).filter(notPadded), (values) => {
        const result = parseIfRevision(request('put', new Map([['Zi-Key', ['k']], ['Zi-If-Revision', values]])));
        const verdict = ifRevisionVerdict(values);
        if (verdict.ok) expect(result, JSON.stringify(values)).toBe(verdict.value);
        else expect(result, JSON.stringify(values)).toMatchObject({ ok: false, code: 400 });
      }),
      runs(10_000),
    );
  });

  // FINDING (minor, spec edge): a decimal integer below 2^53 written with leading zeros and more
  // than 16 characters ('00000000000000000', '0000000000000000007') is refused with 400, while
  // '007' is accepted as 7. actors/request.ts parseIfRevision checks /^\d{1,16}$/ before the range,
  // so the length of the text, not the value, decides. Either accept any digit string whose value
  // is below 2^53, or say in PROTOCOL.md that N has at most 16 digits. Remove `.fails` once decided.
  it('parseIfRevision - zero-padded decimal integers below 2^53 are accepted at any length', () => {
    fc.assert(
      fc.property(fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat()), fc.integer({ min: 17, max: 40 }), (n, width) => {
        const text = String(n).padStart(width, '0');
        expect(parseIfRevision(request('put', new Map([['Zi-Key', ['k']], ['Zi-If-Revision', [text]]])))).toBe(n);
      }),
      once(200),
    );
  });

  it('parseWrite - key rules, then Zi-If-Revision, then 413 over 1 MiB; otherwise the exact command', () => {
    const codes = new Map<string, number>();
    fc.assert(
      fc.property(fc.constantFrom('put' as const, 'delete' as const), headerMapArb, ifValuesArb.filter(notPadded), valueLengthArb, (op, baseHeaders, ifValues, length) => {
        const headers = withIfRevision(baseHeaders, ifValues);
        const data = new Uint8Array(length);
        const result = parseWrite(request(op, headers, data));
        const keyBad = keyViolations(headers.get('Zi-Key')).length > 0;
        const ifVerdict = ifRevisionVerdict(headers.get('Zi-If-Revision'));
        const tooBig = op === 'put' && length > SPEC_MAX_VALUE_BYTES;
        // PROTOCOL.md does not rank 400 against 413: a request with both faults may get either.
        const allowed = new Set<number>();
        if (keyBad || !ifVerdict.ok) allowed.add(400);
        if (tooBig) allowed.add(413);
        const label = `${op} key=${JSON.stringify(headers.get('Zi-Key'))?.slice(0, 80)} if=${JSON.stringify(headers.get('Zi-If-Revision'))} bytes=${length}`;
        if (allowed.size > 0) {
          expect(isFailure(result), label).toBe(true);
          const code = (result as { code: number }).code;
          codes.set(String(code), (codes.get(String(code)) ?? 0) + 1);
          expect([...allowed], label).toContain(code);
          return;
        }
        expect(isFailure(result), label).toBe(false);
        codes.set('ok', (codes.get('ok') ?? 0) + 1);
        const command = result as WriteCommand;
        expect(command.key).toBe(headers.get('Zi-Key')![0]);
        expect(command.ifRevision).toBe(ifVerdict.ok ? ifVerdict.value : undefined);
        if (op === 'put') expect(command.value).toBe(data);
        else expect(command.value).toBeNull();
      }),
      runs(3000),
    );
    // Every outcome was reached.
    expect([...codes.keys()].sort()).toEqual(['400', '413', 'ok']);
  });

  it('parseWrite - the value bound is exactly 1 MiB (1,048,576 bytes) inclusive', () => {
    fc.assert(
      fc.property(keyTextArb.filter((k) => keyViolations([k]).length === 0), fc.integer({ min: -64, max: 64 }), (key, delta) => {
        const length = SPEC_MAX_VALUE_BYTES + delta;
        const result = parseWrite(request('put', new Map([['Zi-Key', [key]]]), new Uint8Array(length)));
        if (length > SPEC_MAX_VALUE_BYTES) expect(result).toMatchObject({ ok: false, code: 413 });
        else expect(result).toMatchObject({ key, ifRevision: undefined });
      }),
      runs(300),
    );
  });
});

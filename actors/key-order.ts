// The one order of keys (scans return keys in it): by Unicode code point, which is the order of
// their UTF-8 bytes, so a client in any language can sort or compare keys the way the store does.
// JavaScript's `<` compares UTF-16 code units instead, which differs only where a character above
// U+FFFF (a surrogate pair) meets one in U+E000–U+FFFF.

export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800–0xDFFF) stand for code points above every other code unit.
    if (x >= 0xd800 && y >= 0xd800) return surrogateLast(x) - surrogateLast(y);
    return x - y;
  }
  return a.length - b.length;
}

const surrogateLast = (unit: number): number => (unit >= 0xe000 ? unit - 0x800 : unit + 0x2000);

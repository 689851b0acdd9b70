// Number formatting shared by the console tables and the Markdown report.

export type ColumnKind = 'text' | 'us' | 'ratio' | 'int' | 'rate' | 'pct' | 'bytes';

export function formatValue(kind: ColumnKind, v: unknown): string {
  if (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '–';
  if (typeof v !== 'number') return String(v);
  switch (kind) {
    case 'us':
      return v < 100 ? v.toFixed(1) : String(Math.round(v));
    case 'ratio':
      return `${v.toFixed(2)}×`;
    case 'int':
      return String(Math.round(v));
    case 'rate':
      return Math.round(v).toLocaleString('en-US');
    case 'pct':
      return `${v.toFixed(0)}%`;
    case 'bytes':
      return formatBytes(v);
    case 'text':
      return String(v);
  }
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024 * 1024) return `${+(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 * 1024) return `${+(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

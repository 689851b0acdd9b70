// A results table that prints itself to stdout row by row as measurements finish, and keeps its
// rows for the JSON and Markdown report.
import { formatValue, type ColumnKind } from './format.ts';

export interface Column {
  key: string;
  label: string;
  kind: ColumnKind;
  /** Minimum width on the console (live tables cannot size to rows they have not seen). */
  width?: number;
}

export type Row = Record<string, string | number | null>;

export interface TableData {
  id: string;
  title: string;
  columns: Column[];
  rows: Row[];
  notes: string[];
}

export class LiveTable {
  private widths: number[];
  private headerPrinted = false;

  /** `live` false: rows are kept and printed all at once by print() (widths fit the data). */
  constructor(
    readonly data: TableData,
    private readonly out: (line: string) => void = (line) => process.stdout.write(line + '\n'),
    readonly live = true,
  ) {
    this.widths = data.columns.map((c) => Math.max(c.label.length, c.width ?? (c.kind === 'text' ? 8 : 7)));
  }

  /** Print the whole table (tables that are not live; a no-op for an empty one). */
  print(): void {
    if (this.data.rows.length === 0) return;
    this.widths = this.data.columns.map((c, i) =>
      Math.max(this.widths[i]!, ...this.data.rows.map((r) => formatValue(c.kind, r[c.key]).length)),
    );
    this.out('');
    this.out(this.data.title);
    this.out(this.line(this.data.columns.map((c) => c.label)));
    this.out(this.widths.map((w) => '-'.repeat(w)).join('  '));
    for (const row of this.data.rows) this.out(this.line(this.data.columns.map((c) => formatValue(c.kind, row[c.key]))));
    for (const n of this.data.notes) this.out(`  ${n}`);
  }

  add(row: Row): void {
    this.data.rows.push(row);
    if (!this.live) return;
    if (!this.headerPrinted) {
      this.headerPrinted = true;
      this.out('');
      this.out(this.data.title);
      this.out(this.line(this.data.columns.map((c) => c.label)));
      this.out(this.widths.map((w) => '-'.repeat(w)).join('  '));
    }
    this.out(this.line(this.data.columns.map((c) => formatValue(c.kind, row[c.key]))));
  }

  note(text: string): void {
    this.data.notes.push(text);
  }

  private line(cells: string[]): string {
    return cells
      .map((cell, i) => {
        const w = this.widths[i]!;
        return this.data.columns[i]!.kind === 'text' ? cell.padEnd(w) : cell.padStart(w);
      })
      .join('  ')
      .trimEnd();
  }
}

export function tableMarkdown(t: TableData): string {
  const head = `| ${t.columns.map((c) => c.label).join(' | ')} |`;
  const rule = `| ${t.columns.map((c) => (c.kind === 'text' ? '---' : '---:')).join(' | ')} |`;
  const rows = t.rows.map((r) => `| ${t.columns.map((c) => formatValue(c.kind, r[c.key]).replace(/\|/g, '\\|')).join(' | ')} |`);
  return [head, rule, ...rows].join('\n');
}

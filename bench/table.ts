// A results table that prints itself to stdout row by row as measurements finish, and keeps its
// rows for the JSON and Markdown report.
import { formatValue, type ColumnKind } from './format.ts';

export interface Column {
  key: string;
  label: string;
  kind: ColumnKind;
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
  private readonly widths: number[];
  private headerPrinted = false;

  constructor(
    readonly data: TableData,
    private readonly out: (line: string) => void = (line) => process.stdout.write(line + '\n'),
  ) {
    this.widths = data.columns.map((c) => Math.max(c.label.length, c.kind === 'text' ? 8 : 7));
  }

  add(row: Row): void {
    this.data.rows.push(row);
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

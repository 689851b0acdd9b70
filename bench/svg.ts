// Minimal hand-made SVG charts for the Markdown reports: grouped bars and lines. No
// dependencies; plain SVG 1.1 that GitHub renders inline.

export interface BarChart {
  kind: 'bar';
  title: string;
  yLabel: string;
  categories: string[];
  series: { name: string; values: (number | null)[] }[];
}

export interface LineChart {
  kind: 'line';
  title: string;
  xLabel: string;
  yLabel: string;
  /** Log-2 x axis (in-flight counts, sizes). */
  xLog2?: boolean;
  /** Tick labels for x values (default the number). */
  xTickLabel?: (x: number) => string;
  series: { name: string; points: { x: number; y: number }[] }[];
}

export type Chart = BarChart | LineChart;

const H = 380;
const M = { top: 40, right: 170, bottom: 84, left: 70 };
/** Width: wide enough for the bars' labels. */
const width = (slots: number) => Math.max(720, M.left + M.right + slots * 46);
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (n: number) => (Math.abs(n) >= 100 ? Math.round(n).toString() : +n.toFixed(1) + '');

/** A "nice" axis maximum and step for values up to `max`. */
function niceScale(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const rough = max / 5;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= rough)!;
  return { top: Math.ceil(max / step) * step, step };
}

function frame(W: number, title: string, yLabel: string, xLabel: string, top: number, step: number, body: string[]): string {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const y = (v: number) => M.top + plotH - (v / top) * plotH;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let v = 0; v <= top + step / 2; v += step) {
    out.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end">${num(v)}</text>`);
  }
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${M.top + plotH}" y2="${M.top + plotH}" stroke="#333"/>`);
  out.push(`<text transform="translate(18 ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  if (xLabel) out.push(`<text x="${M.left + plotW / 2}" y="${M.top + plotH + 40}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(...body, '</svg>');
  return out.join('\n') + '\n';
}

function legend(W: number, names: string[]): string[] {
  const x = W - M.right + 16;
  return names.flatMap((name, i) => [
    `<rect x="${x}" y="${M.top + i * 20}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>`,
    `<text x="${x + 18}" y="${M.top + i * 20 + 10}">${esc(name)}</text>`,
  ]);
}

function barSvg(c: BarChart): string {
  const W = width(c.categories.length * Math.max(1, c.series.length));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const max = Math.max(0, ...c.series.flatMap((s) => s.values.filter((v): v is number => v !== null)));
  const { top, step } = niceScale(max);
  const groupW = plotW / Math.max(1, c.categories.length);
  const barW = (groupW * 0.8) / Math.max(1, c.series.length);
  const body: string[] = [];
  c.categories.forEach((cat, ci) => {
    const gx = M.left + ci * groupW + groupW * 0.1;
    c.series.forEach((s, si) => {
      const v = s.values[ci];
      if (v === null || v === undefined) return;
      const h = (v / top) * plotH;
      body.push(`<rect x="${gx + si * barW}" y="${M.top + plotH - h}" width="${Math.max(1, barW - 2)}" height="${h}" fill="${PALETTE[si % PALETTE.length]}"><title>${esc(`${s.name} ${cat}: ${num(v)}`)}</title></rect>`);
    });
    // Labels slanted so that long ones do not run into each other.
    const lx = M.left + ci * groupW + groupW / 2;
    const ly = M.top + plotH + 14;
    body.push(`<text x="${lx}" y="${ly}" text-anchor="end" transform="rotate(-35 ${lx} ${ly})">${esc(cat)}</text>`);
  });
  return frame(W, c.title, c.yLabel, '', top, step, [...body, ...legend(W, c.series.map((s) => s.name))]);
}

function lineSvg(c: LineChart): string {
  const W = width(0);
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const xs = [...new Set(c.series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const tx = (x: number) => (c.xLog2 ? Math.log2(x) : x);
  const lo = tx(xs[0] ?? 0);
  const hi = tx(xs[xs.length - 1] ?? 1);
  const px = (x: number) => M.left + (hi > lo ? ((tx(x) - lo) / (hi - lo)) * plotW * 0.94 + plotW * 0.03 : plotW / 2);
  const max = Math.max(0, ...c.series.flatMap((s) => s.points.map((p) => p.y)));
  const { top, step } = niceScale(max);
  const py = (y: number) => M.top + plotH - (y / top) * plotH;
  const body: string[] = [];
  for (const x of xs) {
    body.push(`<text x="${px(x)}" y="${M.top + plotH + 18}" text-anchor="middle">${esc(c.xTickLabel ? c.xTickLabel(x) : num(x))}</text>`);
  }
  c.series.forEach((s, si) => {
    const color = PALETTE[si % PALETTE.length];
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    body.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) body.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${color}"><title>${esc(`${s.name}: ${num(p.y)}`)}</title></circle>`);
  });
  return frame(W, c.title, c.yLabel, c.xLabel, top, step, [...body, ...legend(W, c.series.map((s) => s.name))]);
}

export function renderSvg(chart: Chart): string {
  return chart.kind === 'bar' ? barSvg(chart) : lineSvg(chart);
}

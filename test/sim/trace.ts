// The simulation's log and trace. Nodes get a Log (the port) that is silent unless tracing is on;
// errors and fatals are always kept, because a `fatal` (an actor crashed) fails the seed.
import type { Log } from '../../actors/ports.ts';

export type Level = 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export class Trace {
  readonly lines: string[] = [];
  /** error and fatal log entries, always recorded. */
  readonly problems: { level: Level; timeMs: number; bindings: Record<string, unknown>; msg: string; obj: object }[] = [];

  constructor(
    private readonly now: () => number,
    readonly enabled: boolean,
    /** Keep at most this many lines (oldest dropped), so long runs stay bounded. */
    private readonly linesMax = 200_000,
  ) {}

  /** A fact about the world (faults, client operations, role changes). */
  note(who: string, text: string): void {
    if (!this.enabled) return;
    this.push(`${this.now().toFixed(1).padStart(9)} ${who.padEnd(8)} ${text}`);
  }

  private push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.linesMax) this.lines.splice(0, this.lines.length - this.linesMax);
  }

  log(bindings: Record<string, unknown> = {}): Log {
    return new TraceLog(this, bindings);
  }

  write(level: Level, bindings: Record<string, unknown>, obj: object, msg: string | undefined): void {
    if (level === 'error' || level === 'fatal') {
      this.problems.push({ level, timeMs: this.now(), bindings, msg: msg ?? '', obj });
    }
    if (!this.enabled) return;
    const who = String(bindings.node ?? '-');
    const actor = bindings.actor === undefined ? '' : `${String(bindings.actor)}: `;
    this.push(`${this.now().toFixed(1).padStart(9)} ${who.padEnd(8)} ${level} ${actor}${msg ?? ''} ${describe(obj)}`);
  }
}

function describe(obj: object): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (v instanceof Error) parts.push(`${k}=${v.name}: ${v.message}`);
    else if (v instanceof Uint8Array) parts.push(`${k}=<${v.byteLength} bytes>`);
    else parts.push(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  return parts.join(' ');
}

class TraceLog implements Log {
  constructor(
    private readonly trace: Trace,
    private readonly bound: Record<string, unknown>,
  ) {}
  child(bindings: Record<string, unknown>): Log {
    return new TraceLog(this.trace, { ...this.bound, ...bindings });
  }
  debug(obj: object, msg?: string): void {
    if (this.trace.enabled) this.trace.write('debug', this.bound, obj, msg);
  }
  info(obj: object, msg?: string): void {
    if (this.trace.enabled) this.trace.write('info', this.bound, obj, msg);
  }
  warn(obj: object, msg?: string): void {
    if (this.trace.enabled) this.trace.write('warn', this.bound, obj, msg);
  }
  error(obj: object, msg?: string): void {
    this.trace.write('error', this.bound, obj, msg);
  }
  fatal(obj: object, msg?: string): void {
    this.trace.write('fatal', this.bound, obj, msg);
  }
}

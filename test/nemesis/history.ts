// Records every client operation in the checker's history format (check/history.ts), with
// call/return times on one clock (ms since the run started) and the raw outcome next to it.
import type { KvInput, KvOutput, Operation } from '../check/index.ts';

/** An Operation plus what the runner saw on the wire. */
export interface RecordedOp extends Operation {
  /** Node id for `zistore.<c>.node.<id>.<op>`, or `any` for the queue-group subject. */
  target: string;
  /** Reply code (200, 404, 409, 503, 504, ...), `timeout`, `no-responders` or `error: ...`. */
  code: string;
  /** Which phase of the run issued it. */
  phase: 'faults' | 'heal' | 'after-heal' | 'final';
}

export class Recorder {
  readonly ops: RecordedOp[] = [];
  private nextId = 1;
  phase: RecordedOp['phase'] = 'faults';

  constructor(private readonly t0: number) {}

  /** Milliseconds since the run started (performance.now based). */
  now(): number {
    return performance.now() - this.t0;
  }

  /** Records the call now; the outcome stays unknown until `finish`. */
  begin(client: string, target: string, input: KvInput): RecordedOp {
    const op: RecordedOp = {
      id: this.nextId++,
      client: `${client}@${target}`,
      input,
      call: this.now(),
      ret: null,
      output: { status: 'unknown' },
      target,
      code: 'pending',
      phase: this.phase,
    };
    this.ops.push(op);
    return op;
  }

  /** A reply arrived (`replied`), or the request ended without one. */
  finish(op: RecordedOp, output: KvOutput, code: string, replied: boolean): void {
    op.ret = replied ? this.now() : null;
    op.output = output;
    op.code = code;
  }
}

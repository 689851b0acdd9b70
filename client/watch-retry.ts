// Where a watch goes on after a failed request (both ways of watching, client/index.ts).

/** How a failed watch request failed. */
export type WatchFailure =
  /** 410: that node's history does not reach back to where the watch stands. */
  | 'history'
  /** 503 or no answer: the node died, stopped or cannot serve now. */
  | 'unavailable'
  /** Anything else: the watch ends with it. */
  | 'fatal';

/**
 * How long a watch whose node lacks its history goes on asking the nodes that could not answer
 * (one that is down may keep the history and come back), ms; then it ends with the 410.
 */
export const HISTORY_SEARCH_MS = 30_000;

export class WatchRetry {
  /** After a 410: the nodes to ask still, in turn (null: not looking for a history). */
  private untried: string[] | null = null;
  /** Nodes that answered 410 since the last success. */
  private readonly refused = new Set<string>();
  private refusal: unknown = null;
  private searchStarted = 0;
  private failures = 0;

  constructor(
    /** The ids of the nodes to ask, or null when none are known now. */
    private readonly nodes: () => Promise<string[] | null>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  succeeded(): void {
    this.untried = null;
    this.refused.clear();
    this.refusal = null;
    this.failures = 0;
  }

  /**
   * The node to ask next (undefined: any) after a request to `failed` (undefined: any) failed with
   * `err`; throws what ends the watch. After a 410 every node is asked in turn; only one that
   * answers 410 itself is left out, so a watch ends with the 410 once every node refused, or when
   * those that could not answer stayed so for HISTORY_SEARCH_MS.
   */
  async nextNode(err: unknown, failure: WatchFailure, failed: string | undefined, stopped: Promise<null>): Promise<string | undefined> {
    if (failure === 'fatal') throw err;
    if (failure === 'history') {
      if (failed !== undefined) this.refused.add(failed);
      this.refusal = err;
      if (this.untried === null) {
        this.untried = [];
        this.searchStarted = this.now();
      }
    } else {
      await Promise.race([new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** this.failures++))), stopped]);
      if (this.untried === null) return undefined;
      if (failed !== undefined && !this.refused.has(failed)) this.untried.push(failed);
    }
    if (this.now() - this.searchStarted > HISTORY_SEARCH_MS) throw this.refusal;
    if (this.untried.length === 0) {
      const nodes = await this.nodes();
      // None known for now: any node (one that refuses says so again).
      if (nodes === null) return undefined;
      this.untried = nodes.filter((id) => !this.refused.has(id));
      if (this.untried.length === 0) throw this.refusal;
    }
    return this.untried.shift();
  }
}

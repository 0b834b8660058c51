/**
 * What the watcher's parts share while it runs, and the moves every part makes on it: blaming an endpoint, undoing
 * the blocks above one held, forgetting everything. The parts (head source, follow step, backfill, finality) read
 * and change it; only the Watcher facade is seen from outside.
 *
 * Invariants: what is applied to the book always ends at `processed`; every block the window holds above its anchor
 * carries every book change of that block (see unfinalized.ts); `checkpoint`, when set, is a block whose hash the
 * watcher checked; one step's heads, logs and reads come from one endpoint (`ep`).
 */

import { type Endpoint, Endpoints } from "../chain/endpoints.ts";
import { InconsistentAnswerError, isRetryable } from "../chain/errors.ts";
import { BackfillStopped, RefutedAnswerError } from "./errors.ts";
import { Finality } from "./finality.ts";
import type { Checkpoint, StateAtBlock, Tick, WatcherOptions } from "./types.ts";
import { UnfinalizedBlocks } from "./unfinalized.ts";

export class WatcherState {
  /** Last block whose logs have all been applied. */
  processed: bigint;
  /** The last block indexed, by number and hash: how a reorganisation under it is noticed. */
  checkpoint: Checkpoint | undefined;
  lastTick: Tick | undefined;
  /** The unfinalized blocks applied, with what each changed. */
  readonly window = new UnfinalizedBlocks();
  /** The backfill completed and nothing since forced a rebuild: the book is whole. */
  complete = false;
  /** The finality floor, and the chain's finalized block as last read. */
  readonly finality: Finality;
  /** The snapshot the watcher resumed from: what a failed backfill starts over from. */
  resumedFrom: StateAtBlock | undefined;
  /** The backfill's answers were refuted: it starts over instead of resuming. */
  startOver = false;
  /** A block our own receipt says the book has wrong (see contradicted): indexed again, from another endpoint. */
  recheckAt: bigint | undefined;

  /** The exchange's contracts (whose logs are its events), lower-cased once. */
  readonly exchange: ReadonlySet<string>;
  /** The endpoints, and the one the current step is pinned to (heads, logs and reads of one head from one). */
  readonly eps: Endpoints;
  ep: Endpoint;
  /** Which endpoint answered the logs of which blocks lately: what a contradiction found later is laid at. */
  served: { readonly from: bigint; readonly to: bigint; readonly by: Endpoint }[] = [];

  constructor(readonly o: WatcherOptions) {
    this.exchange = new Set(o.addresses.map((a) => a.toLowerCase()));
    this.eps =
      o.endpoints ??
      new Endpoints([{ url: "", label: "rpc", client: o.client, logsClient: o.logsClient ?? o.client }], o.log);
    this.ep = this.eps.preferred();
    this.processed = o.fromBlock - 1n;
    this.finality = new Finality(o.reorgDepth);
  }

  /**
   * The current endpoint's answers are refuted by the chain: it is demoted, said as chain_state_inconsistent, and the
   * step fails with a retryable error (another endpoint is asked next).
   */
  /**
   * What the backfill applied does not hold up: it starts over, and not from the snapshot it resumed from (which
   * may itself be what disagrees: one written by an older keeper from an incomplete answer). The file stays until a
   * verified snapshot replaces it.
   */
  setAsideSnapshot(): void {
    this.startOver = true;
    if (!this.resumedFrom) return;
    this.o.log.warn(
      { event: "snapshot_set_aside", blockNumber: String(this.resumedFrom.blockNumber) },
      "the book built on the snapshot disagrees with the chain: indexing again from the deployment block",
    );
    this.resumedFrom = undefined;
  }

  refuted(reason: string, detail: string): never {
    this.eps.demote(this.ep, reason, detail);
    this.o.log.error(
      { event: "chain_state_inconsistent", reason, detail, endpoint: this.ep.label },
      `what the RPC answered disagrees with the chain (${reason}); asking again`,
    );
    throw new RefutedAnswerError(`${reason}: ${detail}`);
  }

  /**
   * A step failed: an answer that cannot be right (logs of another block, a malformed answer) demotes the endpoint
   * the step was pinned to, as a refuted one does (already demoted); a transport failure only moves it behind.
   */
  blame(error: unknown): void {
    if (error instanceof RefutedAnswerError || error instanceof BackfillStopped) return;
    if (error instanceof InconsistentAnswerError) {
      this.eps.demote(this.ep, "inconsistent_answer", error.message.slice(0, 200));
    } else if (isRetryable(error)) this.eps.failed(this.ep);
  }

  /**
   * Our own receipt says the book is wrong at `blockNumber` (a position our liquidation found gone is still open in
   * the book after that block): the endpoint that answered that block's logs is demoted, and the blocks from there
   * are indexed again, from another endpoint, at the next step.
   */
  contradicted(blockNumber: bigint, detail: string): void {
    if (blockNumber > this.processed) return; // not indexed yet: the book has not had its say
    const by = this.served.find((r) => r.from <= blockNumber && blockNumber <= r.to)?.by;
    if (by) this.eps.demote(by, "receipt_contradicts_logs", `block ${blockNumber}: ${detail}`);
    if (this.recheckAt === undefined || blockNumber < this.recheckAt) this.recheckAt = blockNumber;
  }

  /** Remembers that the current endpoint answered the logs of [from, to] (for blame, see contradicted). */
  servedBy(from: bigint, to: bigint): void {
    const last = this.served.at(-1);
    if (last && last.by === this.ep && last.to + 1n >= from) this.served[this.served.length - 1] = { ...last, to };
    else this.served.push({ from, to, by: this.ep });
    const floor = this.finality.floor(to);
    while (this.served.length > 1 && (this.served[0]?.to ?? 0n) < floor) this.served.shift();
  }

  /** Rolls the book back to `to` (a block held in the window) and resumes indexing from there. */
  undoAbove(to: Checkpoint): void {
    const cut = this.window.cutAbove(to.number);
    if (cut.blocks > 0) this.o.onRollback(cut.changes, cut.cursor);
    this.processed = to.number;
    this.checkpoint = to;
  }

  /** Forgets all state and starts again from the deployment block. */
  forgetAll(): void {
    this.complete = false;
    this.o.prices.reset();
    this.window.clear();
    this.o.onReorg();
    this.processed = this.o.fromBlock - 1n;
    this.lastTick = undefined;
    this.checkpoint = undefined;
  }
}

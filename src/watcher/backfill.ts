/**
 * The backfill: every event from the deployment block (or a snapshot's block, see resume) to the current head,
 * indexed by range from one endpoint (the first listed that does not lag). It is resumable: asked again after an I/O
 * failure it goes on from its anchor (the window's floor when it started), undoing only the blocks above it.
 *
 * Invariants: the book is trusted (`complete`, a snapshot written) only once the exchange's own state, read at the
 * head's hash, agrees with it; answers the chain refuted are never resumed from (the backfill starts over, from the
 * snapshot or, when the snapshot was part of what disagreed, from the deployment block).
 */

import type { Address, Hex } from "viem";
import { big } from "../ops/logger.ts";
import { index } from "./apply.ts";
import { BackfillStopped, StartBlockError } from "./errors.ts";
import type { HeadSource } from "./headSource.ts";
import type { WatcherState } from "./state.ts";
import type { StateAtBlock } from "./types.ts";

export class Backfill {
  /** A backfill ran (a second call is a retry, which resumes or starts over). */
  private started = false;
  /** Its anchor: its floor when it started (undefined: none running, or it completed). */
  private anchor: bigint | undefined;

  constructor(
    private readonly s: WatcherState,
    private readonly heads: HeadSource,
  ) {}

  /**
   * Starts from a snapshot's block instead of the deployment block: the book is restored to its state (onRestore)
   * and the backfill replays from the block after it. The caller checked the block is still canonical.
   */
  resume(from: StateAtBlock): void {
    if (!this.s.o.onRestore) throw new Error("resuming needs onRestore");
    this.s.resumedFrom = from;
    this.restoreResumePoint();
  }

  private restoreResumePoint(): void {
    const s = this.s;
    const from = s.resumedFrom as StateAtBlock;
    s.o.onRestore?.(from.state);
    s.window.clear();
    s.window.record(from.blockNumber, from.blockHash, s.o.book.cursorOf(from.state));
    s.processed = from.blockNumber;
    s.checkpoint = { number: from.blockNumber, hash: from.blockHash };
  }

  /**
   * Indexes every event from the deployment block (or the snapshot's) to the current head. Aborting `signal` ends
   * it after the range being applied (a stop never waits for a long backfill).
   */
  async run(signal?: AbortSignal): Promise<void> {
    const { s } = this;
    const { o, finality } = s;
    if (this.started) this.prepareRetry();
    this.started = true;
    finality.askedAt = undefined;
    const [{ block: headBlock, endpoint }] = await Promise.all([
      this.heads.freshest(true),
      finality.ask(s.ep.client, 0n),
    ]);
    s.ep = endpoint;
    const head = headBlock.number;
    finality.askedAt = head;
    if (s.processed > head) {
      throw new StartBlockError(
        `the exchange's deployBlock ${s.processed + 1n} is above the chain head ${head}: wrong chain or config`,
      );
    }
    if (this.anchor === undefined) await this.checkStartBlock();
    // the window's floor is held as its anchor: where a snapshot can be taken at once
    const anchor = this.anchor ?? finality.floor(head);
    this.anchor = anchor;
    const anchorBlock = anchor > s.processed ? await s.ep.client.getBlock({ blockNumber: anchor }) : undefined;
    const started = performance.now();
    o.log.info(
      {
        event: "backfill_started",
        fromBlock: big(s.processed + 1n),
        toBlock: big(head),
        fromSnapshot: s.resumedFrom !== undefined,
        endpoint: s.ep.label,
      },
      "backfilling exchange events",
    );
    let events = 0;
    const count = (n: number) => {
      events += n;
    };
    try {
      if (anchorBlock) {
        await index(s, anchor, false, count, signal, anchor + 1n);
        s.window.record(anchor, anchorBlock.hash, o.book.cursor);
      }
      await index(s, head, false, count, signal, anchor + 1n);
    } catch (error) {
      if (error instanceof BackfillStopped) return;
      throw error;
    }
    // evidence, not an answer: the book is trusted (and a snapshot written) only once the exchange's own state, read
    // at the head's hash, agrees with it
    await checkBookAt(s, headBlock.hash, head);
    s.checkpoint = { number: head, hash: headBlock.hash };
    s.window.record(head, headBlock.hash, o.book.cursor);
    s.served = [{ from: 0n, to: head, by: s.ep }];
    this.anchor = undefined;
    s.complete = true;
    o.log.info(
      {
        event: "backfill_completed",
        toBlock: big(head),
        events,
        ...o.book.counts(),
        ms: Math.round(performance.now() - started),
      },
      "backfill complete",
    );
  }

  /**
   * A backfill asked again after a failure. After an I/O failure it resumes: what it applied up to its anchor is
   * final, and what it applied above the anchor (blocks a reorganisation could still remove) is undone. After its
   * answers were refuted (the book disagreed with the chain) it starts over from the snapshot, or from the deployment
   * block when the snapshot itself was part of what disagreed.
   */
  private prepareRetry(): void {
    const { s } = this;
    const start = s.resumedFrom?.blockNumber ?? s.o.fromBlock - 1n;
    const anchor = this.anchor;
    const resumable =
      !s.startOver &&
      anchor !== undefined &&
      s.processed > start &&
      (s.processed <= anchor || (anchor >= start && s.window.hashAt(anchor) !== undefined));
    if (resumable) {
      if (s.processed > anchor) {
        const cut = s.window.cutAbove(anchor);
        if (cut.blocks > 0) s.o.onRollback(cut.changes, cut.cursor);
        s.processed = anchor;
      }
      s.o.log.info(
        { event: "backfill_resumed", fromBlock: big(s.processed + 1n) },
        `backfill resumes from block ${s.processed + 1n}`,
      );
      return;
    }
    s.startOver = false;
    this.anchor = undefined;
    s.o.onReorg();
    s.window.clear();
    s.processed = s.o.fromBlock - 1n;
    s.checkpoint = undefined;
    if (s.resumedFrom) this.restoreResumePoint();
  }

  /**
   * The contract has no code before its deployment block: a deployBlock set too late (which would make the events
   * not add up) fails here, plainly, instead of being taken for a lying endpoint. A node without that old state
   * cannot say: then nothing is concluded.
   */
  private async checkStartBlock(): Promise<void> {
    const { s } = this;
    if (s.o.fromBlock === 0n || s.resumedFrom) return;
    const code = await Promise.resolve()
      .then(() => s.ep.client.getCode({ address: s.o.addresses[0] as Address, blockNumber: s.o.fromBlock - 1n }))
      .catch(() => undefined);
    if (code && code !== "0x") {
      throw new StartBlockError(
        `the exchange already has code at block ${s.o.fromBlock - 1n}: its deployBlock ${s.o.fromBlock} is too ` +
          "late, and events before it would be missed (set exchange.deployBlock to its deployment block)",
      );
    }
  }
}

/**
 * Compares the book with the exchange's state read at `blockHash` (checkBook). A disagreement refutes the log
 * answers the book was built from: their endpoint is demoted, the snapshot resumed from is set aside, and the work
 * starts over (retried, never a stop: chain_state_inconsistent says it). Also asked after a rebuild while following.
 */
export async function checkBookAt(s: WatcherState, blockHash: Hex, head: bigint): Promise<void> {
  if (!s.o.checkBook) return;
  const disagreement = await s.o.checkBook(s.ep.client, blockHash, s.o.book);
  if (disagreement === undefined) return;
  s.setAsideSnapshot();
  s.refuted("book_contradicts_chain", `at block ${head}: ${disagreement}`);
}

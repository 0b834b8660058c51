/**
 * Writes the book's snapshot at a final block: once the backfill is done, then every interval, and at stop. One
 * write at a time; a block already written is not written again. A failed write is logged and retried at the next
 * turn: the keeper never stops over a snapshot.
 */
import type { Address } from "viem";
import { describeError } from "../chain/errors.ts";
import { big, type Logger } from "../ops/logger.ts";
import { sleep } from "../ops/sleep.ts";
import type { BookAtBlock } from "../protocol/perpEngine/book.ts";
import { writeSnapshotFile } from "./snapshotFile.ts";

export interface SnapshotterOptions {
  readonly path: string;
  readonly chainId: number;
  readonly exchange: Address;
  /** The book at a final block (Watcher.finalState), or undefined while there is none. */
  readonly finalState: () => BookAtBlock | undefined;
  readonly intervalMs: number;
  readonly log: Logger;
}

export class Snapshotter {
  private lastBlock: bigint | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly o: SnapshotterOptions) {}

  /** The block of the last snapshot written by this process. */
  get lastWrittenBlock(): bigint | undefined {
    return this.lastBlock;
  }

  /** Takes and writes a snapshot now, after any write under way; resolves when it is on disk (or failed). */
  write(reason: string): Promise<void> {
    this.writing = this.writing.then(() => this.writeOnce(reason));
    return this.writing;
  }

  /** Writes one every interval until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(this.o.intervalMs, signal);
      if (!signal.aborted) await this.write("interval");
    }
  }

  private async writeOnce(reason: string): Promise<void> {
    const started = performance.now();
    try {
      const at = this.o.finalState();
      if (!at || at.blockNumber === this.lastBlock) return;
      const bytes = await writeSnapshotFile(this.o.path, {
        chainId: this.o.chainId,
        exchange: this.o.exchange,
        blockNumber: at.blockNumber,
        blockHash: at.blockHash,
        ...at.state,
      });
      this.lastBlock = at.blockNumber;
      this.o.log.info(
        {
          event: "snapshot_written",
          reason,
          blockNumber: big(at.blockNumber),
          markets: at.state.markets.length,
          positions: at.state.positions.length,
          bytes,
          ms: Math.round(performance.now() - started),
          path: this.o.path,
        },
        `snapshot of ${at.state.positions.length} positions at block ${at.blockNumber} written`,
      );
    } catch (error) {
      this.o.log.warn(
        { event: "snapshot_failed", reason, path: this.o.path, error: describeError(error) },
        "snapshot could not be written; the previous one stays, and the next turn tries again",
      );
    }
  }
}

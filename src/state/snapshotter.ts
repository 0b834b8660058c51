/**
 * Writes the book's snapshot at a final block: once the backfill is done, then every interval, and at stop. One
 * write at a time; a block already written is not written again. A failed write is logged and retried at the next
 * turn: the keeper never stops over a snapshot.
 */
import type { Address } from "viem";
import { describeError } from "../chain/errors.ts";
import { big, type Logger } from "../ops/logger.ts";
import { sleep } from "../ops/sleep.ts";
import type { StateAtBlock } from "../watcher/types.ts";
import type { SnapshotCodec } from "./snapshotCodec.ts";
import { writeSnapshotFile } from "./snapshotFile.ts";

export interface SnapshotterOptions<S> {
  readonly path: string;
  readonly chainId: number;
  readonly exchange: Address;
  /** How the exchange's book is written. */
  readonly codec: SnapshotCodec<S>;
  /** The book at a final block (Watcher.finalState), or undefined while there is none. */
  readonly finalState: () => StateAtBlock<S> | undefined;
  readonly intervalMs: number;
  readonly log: Logger;
}

export class Snapshotter<S> {
  private lastBlock: bigint | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly o: SnapshotterOptions<S>) {}

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
      const meta = { chainId: this.o.chainId, exchange: this.o.exchange, ...at };
      const bytes = await writeSnapshotFile(this.o.path, this.o.codec.chunks(meta, at.state));
      const counts = this.o.codec.counts(at.state);
      this.lastBlock = at.blockNumber;
      this.o.log.info(
        {
          event: "snapshot_written",
          reason,
          blockNumber: big(at.blockNumber),
          ...counts,
          bytes,
          ms: Math.round(performance.now() - started),
          path: this.o.path,
        },
        `snapshot at block ${at.blockNumber} written (${describeCounts(counts)})`,
      );
    } catch (error) {
      this.o.log.warn(
        { event: "snapshot_failed", reason, path: this.o.path, error: describeError(error) },
        "snapshot could not be written; the previous one stays, and the next turn tries again",
      );
    }
  }
}

/** { markets: 2, positions: 10 } as "2 markets, 10 positions". */
export function describeCounts(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([k, v]) => `${v} ${k}`)
    .join(", ");
}

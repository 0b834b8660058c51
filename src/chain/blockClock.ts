/**
 * The next block's expected time, from the heads seen: the head's timestamp plus the median of the last intervals
 * (1 to 60 s), and not before the wall clock when that is near. What a liquidation sent now for the next block is
 * judged at: Perp v2's mark follows the pool's TWAP over time, PerpEngine's funding accrues over it.
 */

/** Block intervals remembered. */
const INTERVALS = 8;

export class BlockClock {
  private readonly intervals: bigint[] = [];
  private previous: bigint | undefined;
  private previousNumber: bigint | undefined;

  /**
   * A head's timestamp (and number), in the order heads come (a repeat or an older one adds no interval). Heads
   * skipped between two seen (a slow poll, a busy host) count: the time between is shared by the blocks it spans, so
   * that one missed head never reads as one long block.
   */
  observe(timestamp: bigint, blockNumber?: bigint): void {
    const blocks =
      blockNumber !== undefined && this.previousNumber !== undefined ? blockNumber - this.previousNumber : 1n;
    if (this.previous !== undefined && timestamp > this.previous && blocks > 0n) {
      this.intervals.push((timestamp - this.previous) / blocks);
      if (this.intervals.length > INTERVALS) this.intervals.shift();
    }
    if (blocks > 0n || this.previous === undefined) {
      this.previous = timestamp;
      this.previousNumber = blockNumber;
    }
  }

  /** The usual interval between blocks, seconds (1 until two heads were seen). */
  interval(): bigint {
    const sorted = [...this.intervals].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    // the lower median (of two, the shorter): a forecast too far ahead sends liquidations early, to be skipped with
    // their gas spent; one too near only forgoes looking ahead at that head
    const median = sorted.length > 0 ? (sorted[(sorted.length - 1) >> 1] as bigint) : 1n;
    return median < 1n ? 1n : median > 60n ? 60n : median;
  }

  /** The timestamp the block after a head of `timestamp` is expected to carry. */
  next(timestamp: bigint, nowMs = Date.now()): bigint {
    const interval = this.interval();
    const next = timestamp + interval;
    const now = BigInt(Math.floor(nowMs / 1000));
    // a wall clock far from the chain's (a test chain set in time, or a host clock gone wrong) is not trusted: ahead
    // of the chain's own estimate by more than two intervals, the estimate stands
    return now > next && now - next <= 2n * interval ? now : next;
  }

  clear(): void {
    this.intervals.length = 0;
    this.previous = undefined;
    this.previousNumber = undefined;
  }
}

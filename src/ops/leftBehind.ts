/**
 * The keeper's core failure, measured: positions the risk model found below maintenance margin at the last tick
 * that are still open. Each is followed from the first tick that found it (wall-clock time and block) for as long as
 * every following tick finds it again; one that recovers, changes hands or is liquidated leaves the set. Fed once a
 * tick with what the keeper found (Keeper.liquidatableKeys); read by the metrics, the heartbeat and the log.
 */

import { big, type Logger } from "./logger.ts";

export interface LeftBehindReading {
  /** Positions liquidatable at the last tick and still open, by market id. */
  readonly byMarket: ReadonlyMap<number, number>;
  readonly count: number;
  /** Seconds since the first tick that found the oldest of them (0: none). */
  readonly oldestAgeSeconds: number;
  /** Blocks between that tick and the last one (0: none). */
  readonly oldestAgeBlocks: number;
  /** The oldest one's key (market:trader), if any. */
  readonly oldestKey: string | undefined;
}

export interface LeftBehindOptions {
  /** A position liquidatable for this many blocks is left behind: said once (liquidatable_left_behind). */
  readonly warnAfterBlocks: bigint;
  readonly log?: Logger;
  /** performance.now() by default. */
  readonly now?: () => number;
}

interface Since {
  readonly block: bigint;
  readonly at: number;
  readonly marketId: number;
}

export class LeftBehind {
  private readonly since = new Map<string, Since>();
  private lastBlock: bigint | undefined;
  /** The episode of "some position is left behind" has been said (until none is). */
  private said = false;
  private readonly now: () => number;

  constructor(private readonly o: LeftBehindOptions) {
    this.now = o.now ?? (() => performance.now());
  }

  /** What the tick at `block` found liquidatable (and open): key and market id. */
  update(block: bigint, found: Iterable<{ readonly key: string; readonly marketId: number }>): void {
    const at = this.now();
    const next = new Map<string, Since>();
    for (const { key, marketId } of found) next.set(key, this.since.get(key) ?? { block, at, marketId });
    this.since.clear();
    for (const [key, s] of next) this.since.set(key, s);
    this.lastBlock = block;
    this.report();
  }

  /** A reorganisation rebuilt the book: what was followed is judged again from the next tick. */
  reset(): void {
    this.since.clear();
  }

  read(): LeftBehindReading {
    const byMarket = new Map<number, number>();
    let oldest: [string, Since] | undefined;
    for (const entry of this.since) {
      const [, s] = entry;
      byMarket.set(s.marketId, (byMarket.get(s.marketId) ?? 0) + 1);
      if (!oldest || s.at < oldest[1].at) oldest = entry;
    }
    return {
      byMarket,
      count: this.since.size,
      oldestAgeSeconds: oldest ? Math.max(0, (this.now() - oldest[1].at) / 1000) : 0,
      oldestAgeBlocks: oldest && this.lastBlock !== undefined ? Number(this.lastBlock - oldest[1].block) : 0,
      oldestKey: oldest?.[0],
    };
  }

  /** liquidatable_left_behind once an episode starts, liquidatable_cleared when no position is left behind. */
  private report(): void {
    const { log } = this.o;
    if (!log) return;
    const r = this.read();
    const behind = r.count > 0 && BigInt(r.oldestAgeBlocks) >= this.o.warnAfterBlocks;
    if (behind && !this.said) {
      this.said = true;
      log.warn(
        {
          event: "liquidatable_left_behind",
          positions: r.count,
          oldestKey: r.oldestKey,
          oldestAgeBlocks: r.oldestAgeBlocks,
          oldestAgeSeconds: Math.round(r.oldestAgeSeconds),
          blockNumber: this.lastBlock === undefined ? undefined : big(this.lastBlock),
        },
        `${r.count} liquidatable position(s) not liquidated; the oldest for ${r.oldestAgeBlocks} blocks ` +
          `(${Math.round(r.oldestAgeSeconds)} s)`,
      );
    } else if (this.said && r.count === 0) {
      this.said = false;
      log.info(
        {
          event: "liquidatable_cleared",
          blockNumber: this.lastBlock === undefined ? undefined : big(this.lastBlock),
        },
        "no liquidatable position left open",
      );
    }
  }
}

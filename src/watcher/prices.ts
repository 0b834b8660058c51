/**
 * Where a tick's mark prices come from: the watcher's seam to an exchange's price path. The watcher pins every read
 * to the head's hash and makes it in the head's one round trip; what is read, and how answers become mark prices, is
 * the source's. Two kinds exist: push oracles followed from their logs and read at heads (Chainlink, the reference
 * PerpEngine: chainlinkPrices.ts), and views read once per market per head (Perp v2's `getMarkPrice`: viewPrices.ts).
 *
 * Invariant: a market whose price cannot be trusted at a head (refused oracle answer, failed view) is absent from
 * that head's prices; nothing is liquidated against it.
 */
import type { Address, Log, PublicClient } from "viem";
import type { Head } from "./types.ts";

/** A head's prices, as the tick carries them. */
export interface TickPrices {
  /** Valid mark prices (WAD) by market id. */
  readonly prices: ReadonlyMap<number, bigint>;
  /** Each market's oracle answer time (unix seconds) at this head, refused answers included; push oracles only. */
  readonly oracleUpdatedAt?: ReadonlyMap<number, bigint>;
  /** The prices the next block is expected to see (views read at its expected number and time); view sources only. */
  readonly ahead?: AheadPrices;
}

/** Prices read as the block after the head would see them, the head's transactions only: a forecast, not a fact. */
export interface AheadPrices {
  readonly prices: ReadonlyMap<number, bigint>;
  readonly blockNumber: bigint;
  readonly timestamp: bigint;
}

/** `R`: what the source reads alongside a head's logs and takes back once the head's events are applied. */
export interface PriceSource<R = unknown> {
  /** Contracts whose logs the prices follow, besides the exchange's (none for views). */
  logAddresses(): readonly Address[];
  /** Whether a log (of a block followed) is the prices' own rather than the exchange's. */
  ownsLog(address: string): boolean;
  /** A followed head: the reads made in the same round trip as its logs, pinned to its hash. */
  readHead(client: PublicClient, block: Head): Promise<R>;
  /**
   * After the head's exchange events are applied: its prices, from what `readHead` read and the block's price logs
   * (more reads where a market was listed in this very block).
   */
  settleHead(client: PublicClient, block: Head, reads: R, priceLogs: readonly Log[]): Promise<TickPrices>;
  /** After a gap, a reconnect or a reorganisation: every market's price read at the head. */
  resync(client: PublicClient, block: Head): Promise<TickPrices>;
  /** Everything is forgotten: the book is rebuilt from the deployment block. */
  reset(): void;
}

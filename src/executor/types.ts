/**
 * The types the executor's parts share: its options, its counters, and the constants they agree on. Nothing here
 * imports another part of the executor but its pure modules, so no part imports the facade (executor.ts).
 */
import type { PublicClient } from "viem";
import type { Endpoints } from "../chain/endpoints.ts";
import type { Logger } from "../ops/logger.ts";
import type { LiquidationProtocol } from "../protocol/adapter.ts";
import type { Attempt } from "./attempt.ts";
import type { BiddingPolicy } from "./bidding.ts";
import type { FeePolicy } from "./fees.ts";
import type { NonceLane } from "./lane.ts";
import type { ContestSource } from "./races.ts";

export interface ExecutorOptions {
  /** Inclusion passes and broadcasts (calls made together may share one HTTP request). */
  readonly client: PublicClient;
  /** Broadcasts go to each of these (one per RPC endpoint); default: `client` alone. */
  readonly broadcastClients?: readonly PublicClient[];
  /** Simulations: one HTTP request each, so the first batch of a burst never waits behind the others. */
  readonly simulationClient?: PublicClient;
  readonly protocol: LiquidationProtocol;
  readonly lanes: readonly NonceLane[];
  readonly log: Logger;
  /** Simulate and log, never send. */
  readonly dryRun: boolean;
  readonly fees: FeePolicy;
  /**
   * How contested liquidations bid (src/executor/bidding.ts: bid, outbid; races.ts); undefined: never above the going
   * tip, and no answer to a competitor.
   */
  readonly bidding?: BiddingPolicy;
  /**
   * Competitors' pending bids on our targets; undefined: with bidding on, the executor's own pool watch
   * (Executor.poolWatch, competitors.ts), which the run starts.
   */
  readonly competitors?: ContestSource;
  /** Tip source: the policy's floor, or the floor raised to a percentile of the last block's tips. */
  readonly tipSource: "fixed" | "feeHistory";
  readonly tipPercentile: number;
  /** Smallest keeper reward worth liquidating a position for, WAD collateral. */
  readonly minKeeperReward: bigint;
  /** Gas limit = estimate * gasLimitMultiplierPercent / 100. */
  readonly gasLimitMultiplierPercent: bigint;
  /** Batch candidates into the protocol's batch call (when it has one). */
  readonly batching: boolean;
  /** Most gas one batch may be given (gas limit), well under the block gas limit. */
  readonly batchGasLimit: bigint;
  /** Positions in the first batch of a burst (small, so the most urgent go out at once). */
  readonly firstBatchPositions: number;
  /** Simulations in flight at once. */
  readonly maxConcurrentSimulations: number;
  /** Transactions one signer may have unresolved at once (the node's per-account pool limit). */
  readonly maxPendingPerSigner: number;
  /**
   * Gas (limits) of liquidations planned and not yet mined, at most (undefined: no bound): a crash bigger than a
   * few blocks is planned a block or two ahead of inclusion, the rest at later heads on the book and prices of then,
   * instead of all of it on the first head's (a cross-margin account whose later calls were planned at that head's
   * prices needs another transaction by the time its own lands). About two blocks' gas.
   */
  readonly maxPendingGas?: bigint;
  /** Blocks without inclusion after which a transaction counts as stuck. */
  readonly stuckBlocks: bigint;
  /** A signer below this balance (wei) takes no new work. */
  readonly minSignerBalance: bigint;
  /** A market's display name for log messages. */
  readonly marketName: (marketId: number) => string;
  /** The book's record of a target now (undefined: gone); a new record means the target changed. */
  readonly current: (key: string) => object | undefined;
  /** Whether the position is still below maintenance at the last head (undefined: no valid price to judge). */
  readonly stillLiquidatable: (key: string) => boolean | undefined;
  /**
   * For an attempt tied to a pending oracle update (Attempt.after): "hold" while the update is pending and a target
   * is liquidatable at its price, "cancel" when none is any more; undefined: not tied (any more), judged as usual.
   */
  readonly tiedVerdict?: (a: Attempt) => "hold" | "cancel" | undefined;
  /** The block at which a market's mark price last moved: how far behind its price update a liquidation landed. */
  readonly priceMovedAt?: (marketId: number) => bigint | undefined;
  /**
   * Positions an inclusion pass freed (our cancel or another sender took the nonce): planned again at once if they
   * are still liquidatable at the head, not a block later.
   */
  readonly replan?: (keys: readonly string[]) => void;
  /**
   * The book still shows a position unchanged after the block in which our own receipt settled it: the log answers
   * for that block are refuted (the watcher indexes it again from another endpoint).
   */
  readonly contradicted?: (blockNumber: bigint, detail: string) => void;
  /**
   * Every endpoint on its own: receipts and transaction lookups ask them in turn, and one that denies what another
   * has (a block under the head, a transaction of ours) is demoted. Default: `client` alone.
   */
  readonly endpoints?: Endpoints;
  /**
   * Blocks under the head a mined attempt is kept, to be re-checked after a reorganisation: the watcher's window
   * (the chain's finalized block, up to MAX_REORG_WINDOW_BLOCKS under the head, or reorgDepth). Default
   * REORG_WINDOW_BLOCKS.
   */
  readonly reorgWindowBlocks?: (head: bigint) => bigint;
}

/**
 * The executor's counters. They only ever rise (Prometheus counters follow them): a settlement a reorganisation took
 * away stays counted, and the same attempt settled again adds only what it did not count before.
 */
export interface ExecutorStats {
  /** Liquidation transactions broadcast (first sends; replacements are counted apart). */
  sent: number;
  /** Positions liquidated by us. */
  confirmed: number;
  /** Positions a competitor (or the trader) settled first while ours was on its way. */
  lostRace: number;
  /** Transactions mined reverted for another reason. */
  reverted: number;
  cancelled: number;
  replaced: number;
  resent: number;
  /** Positions not sent for: the simulation refused, the reward or the fees did not pay. */
  skipped: number;
  /** Transactions the node refused outright. */
  failed: number;
  /** Gas paid by our mined transactions, wei. */
  gasPaidWei: bigint;
  /** Value our mined, successful liquidations sent (a pull oracle's update fees), wei. */
  valuePaidWei: bigint;
  /** Pending liquidations of ours replaced to outbid a competitor's (liquidation_outbid). */
  outbid: number;
  /** Pending liquidations of ours cancelled because a competitor outbid what they could pay (liquidation_withdrawn). */
  withdrawn: number;
  /** Gas paid by our mined transactions that liquidated nothing (a lost race), and by withdrawals' cancels, wei. */
  lostRaceGasWei: bigint;
  /** Keeper rewards of the positions we liquidated, WAD collateral (the receipts' outcomes). */
  rewardsWad: bigint;
}

/** How soon after their price update our liquidations land, and what was prepared ahead of updates (issue 9). */
export interface UpdateStats {
  /** Positions liquidated by us, by blocks between the market's price update and our liquidation ("3": 3 or more). */
  readonly distance: Record<"0" | "1" | "2" | "3", number>;
  /** Positions prepared on pending oracle updates (simulated after the update and priced). */
  prepared: number;
}

/** Blocks a position state the simulation refused waits before it is simulated again. */
export const REFUSED_COOLDOWN_BLOCKS = 3n;
/** Sends of one unit across nonce conflicts before it is given up. */
export const MAX_SEND_TRIES = 3;
/** Gas a position adds to a batch before it has been measured, and a single liquidation's guess. */
export const INITIAL_GAS_PER_POSITION = 80_000n;
/** Journal records after which it is compacted to its live attempts. */
export const COMPACT_AFTER_RECORDS = 20_000;
/** Blocks a mined attempt is kept by default, to re-check after a reorganisation (see reorgWindowBlocks). */
export const REORG_WINDOW_BLOCKS = 64n;
/** The most blocks the watcher's window holds, however far behind the chain's finality lags. */
export const MAX_REORG_WINDOW_BLOCKS = 8192n;

export function newStats(): ExecutorStats {
  return {
    sent: 0,
    confirmed: 0,
    lostRace: 0,
    reverted: 0,
    cancelled: 0,
    replaced: 0,
    resent: 0,
    skipped: 0,
    failed: 0,
    gasPaidWei: 0n,
    valuePaidWei: 0n,
    outbid: 0,
    withdrawn: 0,
    lostRaceGasWei: 0n,
    rewardsWad: 0n,
  };
}

/** Target states not to try again yet: refused by the simulation, or liquidated by us (dry run: priced). */
export class Cooldown {
  private readonly until = new Map<string, { readonly state: object | undefined; until: bigint }>();

  set(key: string, state: object | undefined, until: bigint): void {
    this.until.set(key, { state, until });
  }

  /** Whether the target, as the book holds it now, waits until a later block. */
  holds(key: string, state: object, block: bigint): boolean {
    const cool = this.until.get(key);
    return cool !== undefined && cool.state === state && block < cool.until;
  }

  delete(key: string): void {
    this.until.delete(key);
  }

  /** Lifts every wait that ends (not a dry run's, which never does); how many were lifted. */
  lift(): number {
    let n = 0;
    for (const [key, cool] of this.until) {
      if (cool.until < BigInt(Number.MAX_SAFE_INTEGER)) {
        this.until.delete(key);
        n++;
      }
    }
    return n;
  }
}

/**
 * The watcher's window under `head`: down to the chain's finalized block (at most MAX_REORG_WINDOW_BLOCKS), or
 * `reorgDepth` where the RPC does not say what is finalized. A mined attempt is kept that long for a reorganisation.
 */
export function reorgWindow(head: bigint, finalized: bigint | undefined, reorgDepth: bigint): bigint {
  if (finalized === undefined || finalized > head) return reorgDepth;
  const depth = head - finalized;
  return depth > MAX_REORG_WINDOW_BLOCKS ? MAX_REORG_WINDOW_BLOCKS : depth;
}

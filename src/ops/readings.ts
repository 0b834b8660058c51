/**
 * What the metrics, /healthz and the heartbeat read from the keeper's parts (OpsSources), and the readings they share:
 * the head and its age, positions by market and at risk, unresolved transactions by signer. Pure reads, no I/O.
 */
import type { Address } from "viem";
import type { RpcStats } from "../chain/rpcStats.ts";
import type { ExecutorStats, UpdateStats } from "../executor/executor.ts";
import type { PrecomputeStats } from "../precompute/precomputer.ts";
import type { Tick } from "../watcher/watcher.ts";
import type { FreshnessVerdict } from "./freshness.ts";
import type { Latency } from "./latency.ts";
import type { LeftBehindReading } from "./leftBehind.ts";

/** What the metrics, the health checks and the heartbeat read; all of it owned by the keeper's parts. */
export interface OpsSources {
  /** The protocol adapter (config exchange.adapter), for build_info. */
  readonly adapter: string;
  /** The exchange's markets, by id: their names label the figures. */
  readonly book: { readonly markets: ReadonlyMap<number, { readonly id: number; readonly name: string }> };
  /**
   * Positions tracked and at risk (within `distance` of liquidation, or past it) by market name at the last tick;
   * absent: the exchange counts none (every market at 0).
   */
  readonly positions?: (distance: number) => Map<string, { tracked: number; atRisk: number }>;
  readonly watcher: { readonly processedBlock: bigint; readonly latestTick: Tick | undefined };
  readonly executor: {
    readonly stats: Readonly<ExecutorStats>;
    /** Blocks from price updates to our liquidations, and what was prepared on pending updates. */
    readonly updateStats?: Readonly<UpdateStats>;
    readonly pendingAttempts: readonly { readonly signer: Address; readonly createdAtBlock: bigint }[];
    /** Races for contested targets (issue 18): wins and losses by competitor. */
    readonly races?: {
      readonly byCompetitor: ReadonlyMap<string, { readonly won: number; readonly lost: number }>;
      /** The last races, newest last (RaceRecord). */
      readonly recent: readonly object[];
    };
    /**
     * Rewards of what we liquidated less the gas and oracle fees paid, WAD collateral (undefined: no gas token price,
     * so gas has no price in collateral).
     */
    netProfit?(): bigint | undefined;
  };
  /** The signers (nonce lanes): address and the balance the executor last read, wei. */
  readonly signers: readonly { readonly address: Address; readonly balance: bigint | undefined }[];
  /** The chain head when the keeper started: what the backfill runs up to (at least). */
  readonly startHead: bigint;
  /** Whether the backfill has completed. */
  backfilled(): boolean;
  /** Keeper rewards earned by our signers' liquidations seen live on chain, WAD collateral. */
  rewardsEarned(): bigint;
  /** performance.now() when the keeper started: the age of "no head yet". */
  readonly startedAt: number;
  /** Fraction of the mark price within which a position's liquidation price counts as at risk (0.05: 5%). */
  readonly atRiskDistance: number;
  /** JSON-RPC calls and failures per endpoint (absent: not counted). */
  readonly rpcStats?: RpcStats;
  /** Pending oracle updates acted on (keeper.precompute; absent: off). */
  readonly precompute?: () => Readonly<PrecomputeStats> | undefined;
  /** Positions liquidatable at the last tick and still open, and the age of the oldest (absent: none counted). */
  readonly leftBehind?: () => LeftBehindReading;
  /** The shared freshness rule's verdict (src/ops/freshness.ts), for /healthz and the metrics. */
  readonly freshness?: () => FreshnessVerdict;
  /** The latency histograms (absent: exported, never observed). */
  readonly latency?: Latency;
  /** A pull oracle's price stream (absent: the exchange's prices are read on chain). */
  readonly priceStream?: () => { readonly stale: boolean; readonly lastEventAgeMs: number | undefined };
}

/** One reading of the keeper, shared by /metrics, /healthz and the heartbeat. */
export interface OpsReading {
  /** The newest head seen: the last tick's, or the start head before the first. */
  readonly headBlock: bigint;
  readonly processedBlock: bigint;
  readonly lagBlocks: bigint;
  /** Seconds since the last head was processed (since start, before the first one). */
  readonly headAgeSeconds: number;
  readonly backfilled: boolean;
}

export function reading(s: OpsSources): OpsReading {
  const tick = s.watcher.latestTick;
  const processedBlock = s.watcher.processedBlock;
  const headBlock = tick && tick.blockNumber > s.startHead ? tick.blockNumber : s.startHead;
  const top = headBlock > processedBlock ? headBlock : processedBlock;
  const since = tick?.receivedAt ?? s.startedAt;
  return {
    headBlock: top,
    processedBlock,
    lagBlocks: top - processedBlock,
    headAgeSeconds: Math.max(0, (performance.now() - since) / 1000),
    backfilled: s.backfilled(),
  };
}

/**
 * Positions by market name, and those whose liquidation price is within `distance` of the mark (or past it), at
 * the last tick's prices: one pass over the book. A market without a price counts no position at risk.
 */
export function positionsByMarket(
  s: Pick<OpsSources, "book" | "positions">,
  distance: number,
): Map<string, { tracked: number; atRisk: number }> {
  return (
    s.positions?.(distance) ??
    new Map([...s.book.markets.values()].map((m) => [m.name, { tracked: 0, atRisk: 0 }] as const))
  );
}

/** Unresolved transactions by signer (every signer present, 0 when idle). */
export function pendingBySigner(s: Pick<OpsSources, "signers" | "executor">): Map<Address, number> {
  const out = new Map<Address, number>(s.signers.map((x) => [x.address, 0]));
  const byLower = new Map(s.signers.map((x) => [x.address.toLowerCase(), x.address]));
  for (const a of s.executor.pendingAttempts) {
    const address = byLower.get(a.signer.toLowerCase()) ?? a.signer;
    out.set(address, (out.get(address) ?? 0) + 1);
  }
  return out;
}

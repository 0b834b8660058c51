/**
 * CrossMarginEngine's arithmetic (contracts/CrossMarginEngine.sol, docs/cross-margin-engine.md), mirrored in bigint
 * to the wei: the same operations in the same order with the same rounding. Every amount is WAD (18 decimals): sizes
 * in base units, prices and margins in quote.
 *
 *   mulDecimal(x, y) = floor(x·y / 1e18)      divDecimal(x, y) = floor(x·1e18 / y)      (unsigned)
 *   pnl = size·(price − entryPrice) / 1e18    (signed, truncated toward zero, as Solidity's int division)
 *
 * Pure: no I/O, no clock. A differential test (test/protocol/crossMargin/math.differential.test.ts) holds it equal to
 * the deployed bytecode.
 */
import type { Hex } from "viem";

export const WAD = 10n ** 18n;

/** A market's risk configuration, as ICrossMarginEngine.MarketConfig (Synthetix v3 PerpsMarketConfiguration names). */
export interface CrossMarginMarketConfig {
  /** Pyth price feed id (bytes32). */
  readonly feedId: Hex;
  readonly skewScale: bigint;
  readonly makerFeeRatio: bigint;
  readonly takerFeeRatio: bigint;
  readonly initialMarginRatio: bigint;
  readonly minimumInitialMarginRatio: bigint;
  readonly maintenanceMarginScalar: bigint;
  readonly flagRewardRatio: bigint;
  readonly minimumPositionMargin: bigint;
  readonly maxLiquidationLimitAccumulationMultiplier: bigint;
  /** Seconds of the rolling liquidation window; 0: no cap. */
  readonly maxSecondsInLiquidationWindow: bigint;
}

/** The engine's global configuration (GlobalConfigured). */
export interface CrossMarginGlobalConfig {
  readonly minKeeperReward: bigint;
  readonly maxKeeperReward: bigint;
  readonly stepReward: bigint;
  /** Seconds: a Pyth price is fresh iff |block.timestamp − publishTime| <= maxPriceAge. */
  readonly maxPriceAge: bigint;
}

/** One liquidation recorded in a market's window (same-second entries may be merged or not: the sums agree). */
export interface WindowEntry {
  readonly timestamp: bigint;
  readonly amount: bigint;
}

export function mulDecimal(x: bigint, y: bigint): bigint {
  return (x * y) / WAD;
}

export function divDecimal(x: bigint, y: bigint): bigint {
  return (x * WAD) / y;
}

function abs(x: bigint): bigint {
  return x < 0n ? -x : x;
}

/**
 * A Pyth price (price × 10^expo) as WAD: price × 10^(18 + expo). Undefined where the engine reverts InvalidPrice:
 * price <= 0 or expo outside [-18, 0].
 */
export function pythPriceToWad(price: bigint, expo: number): bigint | undefined {
  if (price <= 0n || !Number.isInteger(expo) || expo > 0 || expo < -18) return undefined;
  return price * 10n ** BigInt(18 + expo);
}

/** Whether a Pyth price published at `publishTime` is fresh at `now` (Pyth's getPriceNoOlderThan rule). */
export function isFresh(publishTime: bigint, now: bigint, maxPriceAge: bigint): boolean {
  return abs(now - publishTime) <= maxPriceAge;
}

/**
 * One position's requirements (Synthetix PerpsMarketConfiguration.calculateRequiredMargins): the margin ratios grow
 * with |size| / skewScale. minimumPositionMargin is not included (accountHealth adds it per open position).
 */
export function positionMargins(
  config: CrossMarginMarketConfig,
  size: bigint,
  price: bigint,
): { notional: bigint; initialMargin: bigint; maintenanceMargin: bigint; flagReward: bigint } {
  const sizeAbs = abs(size);
  const impact = divDecimal(sizeAbs, config.skewScale);
  const imr = mulDecimal(impact, config.initialMarginRatio) + config.minimumInitialMarginRatio;
  const mmr = mulDecimal(imr, config.maintenanceMarginScalar);
  const notional = mulDecimal(sizeAbs, price);
  return {
    notional,
    initialMargin: mulDecimal(notional, imr),
    maintenanceMargin: mulDecimal(notional, mmr),
    flagReward: mulDecimal(notional, config.flagRewardRatio),
  };
}

/** size × (price − entryPrice) / 1e18, truncated toward zero (bigint division truncates as Solidity's does). */
export function positionPnl(size: bigint, entryPrice: bigint, price: bigint): bigint {
  return (size * (price - entryPrice)) / WAD;
}

/** A position valued at a price. */
export interface PositionAt {
  readonly config: CrossMarginMarketConfig;
  readonly size: bigint;
  readonly entryPrice: bigint;
  readonly price: bigint;
}

/**
 * The account rule (getAvailableMargin, getRequiredMargins, canLiquidate). Positions of size 0 are not open and
 * count for nothing.
 *
 *   availableMargin     = collateral + Σ pnl
 *   requiredInitial     = Σ (initialMargin + minimumPositionMargin)
 *   requiredMaintenance = Σ (maintenanceMargin + minimumPositionMargin)
 *   liquidationReward   = clamp(Σ flagReward, minKeeperReward, maxKeeperReward), 0 with no open position
 *   liquidatable        ⇔ an open position and availableMargin < requiredMaintenance + liquidationReward
 */
export function accountHealth(
  global: CrossMarginGlobalConfig,
  collateral: bigint,
  positions: readonly PositionAt[],
): {
  availableMargin: bigint;
  requiredInitial: bigint;
  requiredMaintenance: bigint;
  liquidationReward: bigint;
  liquidatable: boolean;
} {
  let availableMargin = collateral;
  let requiredInitial = 0n;
  let requiredMaintenance = 0n;
  let flagRewards = 0n;
  let open = 0;
  for (const p of positions) {
    if (p.size === 0n) continue;
    open++;
    const m = positionMargins(p.config, p.size, p.price);
    requiredInitial += m.initialMargin + p.config.minimumPositionMargin;
    requiredMaintenance += m.maintenanceMargin + p.config.minimumPositionMargin;
    flagRewards += m.flagReward;
    availableMargin += positionPnl(p.size, p.entryPrice, p.price);
  }
  if (open === 0) {
    return { availableMargin, requiredInitial, requiredMaintenance, liquidationReward: 0n, liquidatable: false };
  }
  const liquidationReward =
    flagRewards < global.minKeeperReward
      ? global.minKeeperReward
      : flagRewards > global.maxKeeperReward
        ? global.maxKeeperReward
        : flagRewards;
  return {
    availableMargin,
    requiredInitial,
    requiredMaintenance,
    liquidationReward,
    liquidatable: availableMargin < requiredMaintenance + liquidationReward,
  };
}

/**
 * The most a market's window lets be liquidated (Synthetix maxLiquidationAmountInWindow):
 * mulDecimal(mulDecimal(makerFeeRatio + takerFeeRatio, skewScale), multiplier) × maxSecondsInLiquidationWindow.
 * Undefined: no window (maxSecondsInLiquidationWindow 0), no cap.
 */
export function maxLiquidationInWindow(config: CrossMarginMarketConfig): bigint | undefined {
  if (config.maxSecondsInLiquidationWindow === 0n) return undefined;
  return (
    mulDecimal(
      mulDecimal(config.makerFeeRatio + config.takerFeeRatio, config.skewScale),
      config.maxLiquidationLimitAccumulationMultiplier,
    ) * config.maxSecondsInLiquidationWindow
  );
}

/**
 * The entries still counted at `now`: timestamp + maxSecondsInLiquidationWindow > now. The engine prunes the others
 * from its window each time it records a liquidation in the market, with the configuration in force then: a mirror
 * that sets window := liveWindow(config, window, t) ++ [(t, amount)] at each PositionLiquidated holds the same window
 * (entries pruned under a shorter window do not come back when it is lengthened). No window: nothing is counted, and
 * the engine records nothing (a market's window is never switched on or off).
 */
export function liveWindow<T extends WindowEntry>(
  config: CrossMarginMarketConfig,
  window: readonly T[],
  now: bigint,
): T[] {
  const seconds = config.maxSecondsInLiquidationWindow;
  if (seconds === 0n) return [];
  return window.filter((e) => e.timestamp + seconds > now);
}

/**
 * Size that can still be liquidated in the market at `now` (liquidationCapacity's first value):
 * max(0, maxLiquidationInWindow − Σ live amounts). Undefined: no cap.
 */
export function liquidationCapacity(
  config: CrossMarginMarketConfig,
  window: readonly WindowEntry[],
  now: bigint,
): bigint | undefined {
  const max = maxLiquidationInWindow(config);
  if (max === undefined) return undefined;
  let used = 0n;
  for (const e of liveWindow(config, window, now)) used += e.amount;
  return used >= max ? 0n : max - used;
}

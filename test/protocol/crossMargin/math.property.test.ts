/**
 * Properties of the cross-margin arithmetic (src/protocol/crossMargin/math.ts), pure: maintenance never above
 * initial when the scalar is at most 1, the margin ratio grows with size, the account rule's boundary is exact, the
 * reward stays within its bounds, and a market's window capacity is never negative, never above its cap, never
 * shrinks as time passes, and comes back in full once the window has passed.
 */
import fc from "fast-check";
import type { Hex } from "viem";
import { describe, expect, it } from "vitest";
import {
  accountHealth,
  type CrossMarginGlobalConfig,
  type CrossMarginMarketConfig,
  divDecimal,
  liquidationCapacity,
  liveWindow,
  maxLiquidationInWindow,
  mulDecimal,
  type PositionAt,
  positionMargins,
  pythPriceToWad,
  WAD,
} from "../../../src/protocol/crossMargin/math.ts";

const FEED = `0x${"11".repeat(32)}` as Hex;
const wad = (min: bigint, max: bigint) => fc.bigInt({ min, max });

const configArb: fc.Arbitrary<CrossMarginMarketConfig> = fc.record({
  feedId: fc.constant(FEED),
  skewScale: wad(1n, 10n ** 9n * WAD),
  makerFeeRatio: wad(0n, WAD / 100n),
  takerFeeRatio: wad(0n, WAD / 100n),
  initialMarginRatio: wad(0n, 20n * WAD),
  minimumInitialMarginRatio: wad(0n, WAD),
  maintenanceMarginScalar: wad(0n, WAD),
  flagRewardRatio: wad(0n, WAD / 100n),
  minimumPositionMargin: wad(0n, 1000n * WAD),
  maxLiquidationLimitAccumulationMultiplier: wad(0n, 10n * WAD),
  maxSecondsInLiquidationWindow: fc.bigInt({ min: 0n, max: 3600n }),
});
const globalArb: fc.Arbitrary<CrossMarginGlobalConfig> = fc
  .tuple(wad(0n, 100n * WAD), wad(0n, 1000n * WAD), wad(0n, 10n * WAD), fc.bigInt({ min: 0n, max: 3600n }))
  .map(([a, b, stepReward, maxPriceAge]) => ({
    minKeeperReward: a < b ? a : b,
    maxKeeperReward: a < b ? b : a,
    stepReward,
    maxPriceAge,
  }));
const sizeArb = fc.oneof(wad(-(10n ** 6n) * WAD, 10n ** 6n * WAD), wad(-1000n, 1000n));
const priceArb = fc.oneof(wad(1n, 10n ** 6n * WAD), wad(1n, 10n ** 4n));
const positionArb: fc.Arbitrary<PositionAt> = fc.record({
  config: configArb,
  size: sizeArb,
  entryPrice: priceArb,
  price: priceArb,
});

describe("pythPriceToWad", () => {
  it("is price x 10^(18 + expo) for a positive price and expo in [-18, 0], undefined otherwise", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.integer({ min: -40, max: 20 }), (p, e) => {
        const wadPrice = pythPriceToWad(p, e);
        if (p > 0n && e <= 0 && e >= -18) expect(wadPrice).toBe(p * 10n ** BigInt(18 + e));
        else expect(wadPrice).toBeUndefined();
      }),
    );
    expect(pythPriceToWad(300_012_345_678n, -8)).toBe(3000_12345678n * 10n ** 10n);
    expect(pythPriceToWad(7n, 0)).toBe(7n * WAD);
    expect(pythPriceToWad(1n, -18)).toBe(1n);
    expect(pythPriceToWad(0n, -8)).toBeUndefined();
    expect(pythPriceToWad(1n, -19)).toBeUndefined();
    expect(pythPriceToWad(1n, 1)).toBeUndefined();
  });
});

describe("positionMargins", () => {
  it("maintenance never exceeds initial when maintenanceMarginScalar <= 1", () => {
    fc.assert(
      fc.property(configArb, sizeArb, priceArb, (config, size, price) => {
        const m = positionMargins(config, size, price);
        expect(m.maintenanceMargin <= m.initialMargin).toBe(true);
        expect(m.initialMargin >= 0n && m.maintenanceMargin >= 0n && m.flagReward >= 0n).toBe(true);
      }),
    );
  });

  it("is the same for a long and a short of the same size", () => {
    fc.assert(
      fc.property(configArb, sizeArb, priceArb, (config, size, price) => {
        expect(positionMargins(config, size, price)).toEqual(positionMargins(config, -size, price));
      }),
    );
  });

  it("the margin ratio (initial / notional) grows with size, within one wei of rounding", () => {
    fc.assert(
      fc.property(configArb, wad(1n, 10n ** 6n * WAD), wad(0n, 10n ** 6n * WAD), priceArb, (config, s1, extra, p) => {
        const a = positionMargins(config, s1, p);
        const b = positionMargins(config, s1 + extra, p);
        expect(b.initialMargin >= a.initialMargin).toBe(true);
        expect(b.maintenanceMargin >= a.maintenanceMargin).toBe(true);
        // im = floor(notional x imr / 1e18) with imr non-decreasing in size: im_b / n_b > im_a / n_a - 1 / n_b
        if (a.notional > 0n && b.notional > 0n) {
          expect(b.initialMargin * a.notional + a.notional >= a.initialMargin * b.notional).toBe(true);
        }
      }),
    );
  });

  it("follows calculateRequiredMargins on a worked example", () => {
    const config: CrossMarginMarketConfig = {
      feedId: FEED,
      skewScale: 1_000_000n * WAD,
      makerFeeRatio: 2n * 10n ** 14n,
      takerFeeRatio: 5n * 10n ** 14n,
      initialMarginRatio: 2n * WAD,
      minimumInitialMarginRatio: WAD / 50n,
      maintenanceMarginScalar: WAD / 2n,
      flagRewardRatio: 3n * 10n ** 14n,
      minimumPositionMargin: 50n * WAD,
      maxLiquidationLimitAccumulationMultiplier: WAD,
      maxSecondsInLiquidationWindow: 30n,
    };
    // 100 ETH at 3000: impact 1e-4, imr 0.0002 + 0.02 = 0.0202, mmr 0.0101, notional 300000
    const m = positionMargins(config, -100n * WAD, 3000n * WAD);
    expect(m).toEqual({
      notional: 300_000n * WAD,
      initialMargin: 6060n * WAD,
      maintenanceMargin: 3030n * WAD,
      flagReward: 90n * WAD,
    });
    expect(maxLiquidationInWindow(config)).toBe(700n * WAD * 30n);
  });
});

describe("accountHealth", () => {
  it("with no open position: nothing required, no reward, never liquidatable", () => {
    fc.assert(
      fc.property(globalArb, wad(-(10n ** 30n), 10n ** 30n), configArb, priceArb, (g, collateral, config, price) => {
        const h = accountHealth(g, collateral, [{ config, size: 0n, entryPrice: price, price }]);
        expect(h).toEqual({
          availableMargin: collateral,
          requiredInitial: 0n,
          requiredMaintenance: 0n,
          liquidationReward: 0n,
          liquidatable: false,
        });
      }),
    );
  });

  it("the reward is the flag rewards clamped to [min, max]; liquidatable exactly below maintenance + reward", () => {
    fc.assert(
      fc.property(globalArb, fc.array(positionArb, { minLength: 1, maxLength: 3 }), (g, positions) => {
        fc.pre(positions.some((p) => p.size !== 0n));
        const h0 = accountHealth(g, 0n, positions);
        expect(h0.liquidationReward >= g.minKeeperReward && h0.liquidationReward <= g.maxKeeperReward).toBe(true);
        const flags = positions.reduce((s, p) => s + positionMargins(p.config, p.size, p.price).flagReward, 0n);
        if (flags >= g.minKeeperReward && flags <= g.maxKeeperReward) expect(h0.liquidationReward).toBe(flags);
        // the collateral that puts the account exactly at maintenance + reward, and one wei each side
        const at = h0.requiredMaintenance + h0.liquidationReward - h0.availableMargin;
        expect(accountHealth(g, at, positions).liquidatable).toBe(false);
        expect(accountHealth(g, at + 1n, positions).liquidatable).toBe(false);
        expect(accountHealth(g, at - 1n, positions).liquidatable).toBe(true);
        expect(accountHealth(g, at, positions).availableMargin).toBe(h0.requiredMaintenance + h0.liquidationReward);
      }),
    );
  });

  it("more collateral never makes an account liquidatable, and initial is never below maintenance", () => {
    fc.assert(
      fc.property(
        globalArb,
        fc.array(positionArb, { maxLength: 3 }),
        wad(-(10n ** 28n), 10n ** 28n),
        wad(0n, 10n ** 28n),
        (g, positions, collateral, more) => {
          const a = accountHealth(g, collateral, positions);
          const b = accountHealth(g, collateral + more, positions);
          if (a.liquidatable === false) expect(b.liquidatable).toBe(false);
          expect(a.requiredInitial >= a.requiredMaintenance).toBe(true);
        },
      ),
    );
  });

  it("pnl is size x (price - entry) / 1e18 truncated toward zero", () => {
    const config = { ...(fc.sample(configArb, 1)[0] as CrossMarginMarketConfig), flagRewardRatio: 0n };
    const g = { minKeeperReward: 0n, maxKeeperReward: 0n, stepReward: 0n, maxPriceAge: 60n };
    // -3 wei of base x (+1 wei of price) = -3e-36: truncated to 0, not floored to -1
    expect(accountHealth(g, 0n, [{ config, size: -3n, entryPrice: WAD, price: WAD + 1n }]).availableMargin).toBe(0n);
    expect(accountHealth(g, 0n, [{ config, size: -WAD - 1n, entryPrice: 2n, price: 1n }]).availableMargin).toBe(1n);
    expect(accountHealth(g, 0n, [{ config, size: WAD + 1n, entryPrice: 2n, price: 1n }]).availableMargin).toBe(-1n);
    expect(divDecimal(1n, 3n)).toBe(333_333_333_333_333_333n);
    expect(mulDecimal(WAD - 1n, WAD - 1n)).toBe(WAD - 2n);
  });
});

describe("liquidation window", () => {
  const entriesArb = fc
    .array(fc.record({ dt: fc.bigInt({ min: 0n, max: 40n }), amount: wad(0n, 10n ** 6n * WAD) }), { maxLength: 12 })
    .map((steps) => {
      let t = 1_700_000_000n;
      return steps.map(({ dt, amount }) => {
        t += dt;
        return { timestamp: t, amount };
      });
    });

  it("capacity is never negative nor above the cap, never shrinks with time, and is full once the window passed", () => {
    fc.assert(
      fc.property(configArb, entriesArb, fc.bigInt({ min: 0n, max: 100n }), (config, window, later) => {
        const last = window.at(-1)?.timestamp ?? 1_700_000_000n;
        const max = maxLiquidationInWindow(config);
        const now = last + (later % 3n === 0n ? 0n : later);
        const capacity = liquidationCapacity(config, window, now);
        if (max === undefined) {
          expect(config.maxSecondsInLiquidationWindow).toBe(0n);
          expect(capacity).toBeUndefined();
          expect(liveWindow(config, window, now)).toEqual([]);
          return;
        }
        expect(capacity !== undefined && capacity >= 0n && capacity <= max).toBe(true);
        const after = liquidationCapacity(config, window, now + later) as bigint;
        expect(after >= (capacity as bigint)).toBe(true);
        expect(liquidationCapacity(config, window, last + config.maxSecondsInLiquidationWindow)).toBe(max);
        // pruning what is not live changes nothing, now or later
        const live = liveWindow(config, window, now);
        expect(live.every((e) => window.includes(e))).toBe(true);
        expect(liquidationCapacity(config, live, now)).toBe(capacity);
        expect(liquidationCapacity(config, live, now + later)).toBe(after);
      }),
    );
  });

  it("an entry counts while timestamp + maxSecondsInLiquidationWindow > now", () => {
    const config = {
      ...(fc.sample(configArb, 1)[0] as CrossMarginMarketConfig),
      makerFeeRatio: 0n,
      takerFeeRatio: WAD / 1000n,
      skewScale: 1000n * WAD,
      maxLiquidationLimitAccumulationMultiplier: WAD,
      maxSecondsInLiquidationWindow: 10n,
    };
    // cap: 0.001 x 1000 x 1 x 10 = 10
    const window = [{ timestamp: 100n, amount: 4n * WAD }];
    expect(liquidationCapacity(config, window, 100n)).toBe(6n * WAD);
    expect(liquidationCapacity(config, window, 109n)).toBe(6n * WAD);
    expect(liquidationCapacity(config, window, 110n)).toBe(10n * WAD);
    expect(liquidationCapacity(config, [...window, { timestamp: 105n, amount: 7n * WAD }], 105n)).toBe(0n);
  });
});

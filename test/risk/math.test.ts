import { Decimal } from "decimal.js";
import { parseUnits } from "viem";
import { describe, expect, it } from "vitest";
import { fromUnits, fromWad } from "../../src/protocol/perpEngine/format.ts";
import {
  ceilMul,
  fundingIndexAt,
  fundingOwed,
  health,
  keeperReward,
  liquidationPriceUnits,
  type MarketRiskParams,
  notional,
  type PositionState,
  WAD,
} from "../../src/protocol/perpEngine/math.ts";

const wad = (x: string) => parseUnits(x, 18);
const PRICE_SCALE = 10n ** 10n; // 8-decimal Chainlink answers
const units = (x: string) => parseUnits(x, 8);
const market = (mmr: string): MarketRiskParams => ({
  priceScale: PRICE_SCALE,
  initialMarginRatio: wad("0.05"),
  maintenanceMarginRatio: wad(mmr),
  liquidationFeeRatio: wad("0.005"),
});
const BTC = market("0.025");
const ETH = market("0.03");

/** A position opened at `entry` with `margin` and `leverage`, as the devnet opens it (long: entry rounded up). */
function opened(side: "long" | "short", entry: string, margin: string, leverage: number): PositionState {
  const price = wad(entry);
  const size = (wad(margin) * BigInt(leverage) * WAD) / price;
  const openNotional = side === "long" ? ceilMul(size, price) : (size * price) / WAD;
  return { size: side === "long" ? size : -size, openNotional, margin: wad(margin), lastFundingIndex: 0n };
}

const liquidatableAt = (p: PositionState, m: MarketRiskParams, priceUnits: bigint) =>
  health(p, m.maintenanceMarginRatio, priceUnits * m.priceScale, 0n).liquidatable;

describe("textbook example: 10x long BTC at 60,000 with 1,000 margin", () => {
  const p = opened("long", "60000", "1000", 10);

  it("is a position of about 10,000 (1/6 BTC)", () => {
    expect(fromWad(p.size).toDecimalPlaces(6).toString()).toBe("0.166667");
    expect(
      fromWad(notional(p.size, wad("60000")))
        .toDecimalPlaces(6)
        .toString(),
    ).toBe("10000");
  });

  it("needs 250 of maintenance margin at entry (2.5%) and holds 1,000", () => {
    const h = health(p, BTC.maintenanceMarginRatio, wad("60000"), 0n);
    expect(fromWad(h.maintenanceRequirement).toDecimalPlaces(6).toString()).toBe("250");
    expect(fromWad(h.marginBalance).toDecimalPlaces(6).toString()).toBe("1000");
    expect(h.liquidatable).toBe(false);
  });

  it("liquidates at 60,000 x (1 - 1/10) / (1 - 2.5%) = 55,384.61", () => {
    const expected = new Decimal(60000).mul(0.9).div(0.975); // 55384.6153846...
    const liq = liquidationPriceUnits(p, BTC, 0n);
    expect(fromUnits(liq, PRICE_SCALE).minus(expected).abs().lt("0.0001")).toBe(true);
    expect(liquidatableAt(p, BTC, liq)).toBe(true);
    expect(liquidatableAt(p, BTC, liq + 1n)).toBe(false);
    expect(liquidatableAt(p, BTC, units("56000"))).toBe(false);
    expect(liquidatableAt(p, BTC, units("55000"))).toBe(true);
  });

  it("pays the keeper 0.5% of the notional", () => {
    const reward = keeperReward(p.size, wad("55300"), BTC.liquidationFeeRatio);
    expect(fromWad(reward).toDecimalPlaces(2).toNumber()).toBeCloseTo((55300 / 6) * 0.005, 2);
  });
});

describe("textbook example: 20x long ETH with 500 margin, wiped out by a 5% drop", () => {
  const p = opened("long", "2500", "500", 20);

  it("is 4 ETH, 10,000 of notional", () => {
    expect(p.size).toBe(wad("4"));
    expect(p.openNotional).toBe(wad("10000"));
  });

  it("has exactly nothing left after a 5% drop to 2,375", () => {
    const h = health(p, ETH.maintenanceMarginRatio, wad("2375"), 0n);
    expect(h.marginBalance).toBe(0n);
    expect(h.liquidatable).toBe(true);
  });

  it("is liquidated long before: at 2,500 x (1 - 1/20) / (1 - 3%) = 2,448.45, a 2.06% drop", () => {
    const expected = new Decimal(2500).mul(0.95).div(0.97);
    const liq = liquidationPriceUnits(p, ETH, 0n);
    expect(fromUnits(liq, PRICE_SCALE).minus(expected).abs().lt("0.00001")).toBe(true);
    expect(liquidatableAt(p, ETH, liq)).toBe(true);
    expect(liquidatableAt(p, ETH, liq + 1n)).toBe(false);
  });
});

describe("shorts", () => {
  it("a 10x short BTC at 60,000 liquidates at 60,000 x (1 + 1/10) / (1 + 2.5%) = 64,390.24", () => {
    const p = opened("short", "60000", "1000", 10);
    const liq = liquidationPriceUnits(p, BTC, 0n);
    const expected = new Decimal(60000).mul(1.1).div(1.025);
    expect(fromUnits(liq, PRICE_SCALE).minus(expected).abs().lt("0.0001")).toBe(true);
    expect(liquidatableAt(p, BTC, liq)).toBe(true);
    expect(liquidatableAt(p, BTC, liq - 1n)).toBe(false);
  });

  it("a short with negative equity is liquidatable at every price (liquidation price 0)", () => {
    const p: PositionState = { size: -wad("1"), openNotional: wad("100"), margin: -wad("200"), lastFundingIndex: 0n };
    expect(liquidationPriceUnits(p, BTC, 0n)).toBe(0n);
    expect(liquidatableAt(p, BTC, 1n)).toBe(true);
  });

  it("a fully collateralized long has no liquidation price", () => {
    const p: PositionState = { size: wad("1"), openNotional: wad("100"), margin: wad("100"), lastFundingIndex: 0n };
    expect(liquidationPriceUnits(p, BTC, 0n)).toBe(0n);
    expect(liquidatableAt(p, BTC, 1n)).toBe(false);
  });
});

describe("rounding in the protocol's favour", () => {
  it("values a long down and a short up", () => {
    expect(notional(1n, 1n)).toBe(0n);
    expect(notional(-1n, 1n)).toBe(1n);
  });

  it("rounds funding owed toward +infinity for payers and receivers alike", () => {
    expect(fundingOwed(1n, 0n, 1n)).toBe(1n); // owes 1e-36: rounds up to 1 wei
    expect(fundingOwed(-1n, 0n, 1n)).toBe(0n); // receives 1e-36: rounds to 0
    expect(fundingOwed(wad("2"), wad("1"), wad("3"))).toBe(wad("4"));
    expect(fundingOwed(-wad("2"), wad("1"), wad("3"))).toBe(-wad("4"));
  });

  it("accrues funding from the rate, elapsed time and mark price, truncated toward zero", () => {
    const funding = { cumulativeFundingIndex: 5n, fundingRatePerSecond: -wad("0.0001"), lastFundingTime: 100n };
    expect(fundingIndexAt(funding, wad("60000"), 110n)).toBe(5n - wad("60"));
    expect(fundingIndexAt({ ...funding, fundingRatePerSecond: -1n }, 1n, 101n)).toBe(5n);
  });

  it("makes a long pay funding: a rising index lowers its margin balance", () => {
    const p = opened("long", "2500", "500", 20);
    const before = health(p, ETH.maintenanceMarginRatio, wad("2500"), 0n);
    const after = health(p, ETH.maintenanceMarginRatio, wad("2500"), wad("10"));
    expect(before.marginBalance - after.marginBalance).toBe(wad("40"));
    expect(liquidationPriceUnits(p, ETH, wad("10"))).toBeGreaterThan(liquidationPriceUnits(p, ETH, 0n));
  });
});

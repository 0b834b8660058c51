import { parseUnits } from "viem";
import { describe, expect, it } from "vitest";
import { Book } from "../../../src/protocol/perpEngine/book.ts";
import { positionsNearLiquidation, renderStatus } from "../../../src/protocol/perpEngine/status.ts";
import { listedEvent, nextRef } from "../../helpers/events.ts";

const wad = (x: string) => parseUnits(x, 18);

function book(): Book {
  const b = new Book();
  b.apply(
    listedEvent(nextRef(), {
      name: "ETH-USD",
      initialMarginRatio: wad("0.05"),
      maintenanceMarginRatio: wad("0.03"),
      liquidationFeeRatio: wad("0.005"),
      tradingFeeRatio: wad("0.0005"),
    }),
  );
  // 4 ETH longs at 2,500 with 20x, 5x and 2x leverage, and a 20x short
  const open = (n: number, size: string, margin: string) =>
    b.apply({
      kind: "positionChanged",
      ref: nextRef(),
      trader: `0x${String(n).padStart(40, "0")}`,
      marketId: 0,
      sizeDelta: wad(size),
      price: wad("2500"),
      size: wad(size),
      openNotional: wad("10000"),
      margin: wad(margin),
      fundingIndex: 0n,
    });
  open(1, "4", "2000");
  open(2, "4", "500");
  open(3, "4", "5000");
  open(4, "-4", "500");
  return b;
}

describe("status view", () => {
  it("ranks positions by room before liquidation, nearest first, and describes them", () => {
    const rows = positionsNearLiquidation(book(), new Map([[0, wad("2500")]]), 0n, 3);
    expect(rows.map((r) => [r.side, r.leverage])).toEqual([
      ["short", "20"], // liquidates at 2,548.54: +1.94%
      ["long", "20"], // at 2,448.45: -2.06%
      ["long", "5"],
    ]);
    expect(rows[1]).toMatchObject({ market: "ETH-USD", liquidationPrice: "2448.4536", marginRatio: "0.05" });
    expect(Number(rows[0]?.distanceToLiquidation)).toBeCloseTo(0.0194, 4);
  });

  it("puts positions already past their liquidation price first, and skips markets without a price", () => {
    const rows = positionsNearLiquidation(book(), new Map([[0, wad("2440")]]), 0n, 10);
    // at 2,440 the 20x long (trader 2) is past 2,448.45: margin balance 260 against 292.80 required: 9,760 / 260 = 37.54x
    expect(rows[0]).toMatchObject({ side: "long", trader: `0x${"2".padStart(40, "0")}`, leverage: "37.54" });
    expect(Number(rows[0]?.distanceToLiquidation)).toBeLessThan(0);
    expect(positionsNearLiquidation(book(), new Map(), 0n, 10)).toEqual([]);
  });

  it("renders an aligned table with a header", () => {
    const text = renderStatus(positionsNearLiquidation(book(), new Map([[0, wad("2500")]]), 0n, 2));
    const lines = text.split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^market\s+side\s+trader/);
    expect(lines[1]).toContain("1.94%");
  });
});

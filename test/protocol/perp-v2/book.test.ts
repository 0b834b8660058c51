/**
 * The Perp v2 reducer: what each event does to the book, checked against the Solidity's arithmetic by hand, and undo:
 * writing the befores back, newest first, restores the book exactly.
 */
import type { Address } from "viem";
import { describe, expect, it } from "vitest";
import {
  PerpV2Book,
  PerpV2BookError,
  type PerpV2Change,
  reduce,
  targetKey,
} from "../../../src/protocol/perpV2/book.ts";
import type { PerpV2Event } from "../../../src/protocol/perpV2/events.ts";
import { deltaTwapX96, x18ToX96, x96RangeOf } from "../../../src/protocol/perpV2/math.ts";
import { BTC, bookWithMarkets, ETH, ev, GLOBAL, IF, trader, USDC, WAD } from "./helpers.ts";

const t1 = trader(1).toLowerCase() as Address;
const t2 = trader(2).toLowerCase() as Address;
const eth = ETH.toLowerCase() as Address;

const pc = (who: Address, base: Address, size: bigint, openNotional: bigint, block = 20n, time = 1_100n) =>
  ev(
    {
      kind: "positionChanged",
      trader: who,
      baseToken: base,
      exchangedPositionSize: size,
      exchangedPositionNotional: -size * 2000n,
      fee: 0n,
      openNotional,
      realizedPnl: 0n,
      sqrtPriceAfterX96: 0n,
    },
    block,
    time,
  );

function snapshot(book: PerpV2Book) {
  return { markets: new Map(book.markets), accounts: new Map(book.accounts), global: book.global };
}

describe("perp-v2 book", () => {
  it("sums exchanged sizes, keeps the latest open notional, anchors funding at the market's growth", () => {
    const book = bookWithMarkets();
    book.apply(pc(t1, eth, 3n * WAD, -6000n * WAD));
    book.apply(pc(t1, eth, -1n * WAD, -4001n * WAD));
    const p = book.accounts.get(t1)?.positions.get(eth);
    expect(p).toMatchObject({ takerSize: 2n * WAD, takerOpenNotional: -4001n * WAD, priceId: 0, orders: [] });
    expect(p?.anchor).toEqual(book.markets.get(0)?.growth);
    expect(book.accounts.get(t1)?.prices).toEqual([0, 1, 2]);
  });

  it("deregisters a market left with dust (|size| and |open notional| < 10 wei, no order), not before", () => {
    const book = bookWithMarkets();
    book.apply(pc(t1, eth, 3n * WAD, -6000n * WAD));
    book.apply(pc(t1, eth, -3n * WAD + 9n, 0n));
    expect(book.accounts.get(t1)?.positions.has(eth)).toBe(false);
    book.apply(pc(t2, eth, 3n * WAD, -6000n * WAD));
    book.apply(pc(t2, eth, -3n * WAD + 9n, 10n)); // open notional of 10 wei stays registered
    expect(book.accounts.get(t2)?.positions.get(eth)).toMatchObject({ takerSize: 9n, takerOpenNotional: 10n });
    expect(book.accounts.get(t2)?.prices).toEqual([1, 2]); // dust reads as 0: no mark needed; funding still on raw size
  });

  it("follows makers' orders: debts added, removed in proportion (floor), the order gone at 0 liquidity", () => {
    const book = bookWithMarkets();
    const lc = (liquidity: bigint, base: bigint, quote: bigint) =>
      ev({
        kind: "liquidityChanged",
        maker: t1,
        baseToken: eth,
        quoteToken: eth,
        lowerTick: -600,
        upperTick: 600,
        base,
        quote,
        liquidity,
        quoteFee: 0n,
      });
    book.apply(lc(1000n, 10n * WAD + 1n, 20_000n * WAD));
    book.apply(lc(500n, 5n * WAD, 10_000n * WAD));
    expect(book.accounts.get(t1)?.positions.get(eth)?.orders).toEqual([
      { lowerTick: -600, upperTick: 600, liquidity: 1500n, baseDebt: 15n * WAD + 1n, quoteDebt: 30_000n * WAD },
    ]);
    // removing 1/3: debt −= floor(debt·500/1500) (OrderBook.sol:575-583)
    book.apply(pc(t1, eth, 0n, 0n)); // removeLiquidity's PositionChanged comes first; the order still counts
    expect(book.accounts.get(t1)?.positions.has(eth)).toBe(true);
    book.apply(lc(-500n, -5n * WAD, -10_000n * WAD));
    expect(book.accounts.get(t1)?.positions.get(eth)?.orders[0]).toMatchObject({
      liquidity: 1000n,
      baseDebt: 15n * WAD + 1n - (15n * WAD + 1n) / 3n,
      quoteDebt: 20_000n * WAD,
    });
    // the last liquidity: the order goes, and with nothing else left the market is deregistered
    book.apply(lc(-1000n, -10n * WAD, -20_000n * WAD));
    expect(book.accounts.get(t1)?.positions.has(eth)).toBe(false);
    expect(() => reduce(book, lc(-1n, 0n, 0n))).toThrow(PerpV2BookError);
  });

  it("keeps the Vault balance and owed realized PnL apart: a withdrawal floors the owed PnL to 6 decimals", () => {
    const book = bookWithMarkets();
    book.apply(
      ev({ kind: "deposited", collateralToken: USDC.toLowerCase() as Address, trader: t1, amount: 1_000_000n }),
    );
    book.apply(ev({ kind: "pnlRealized", trader: t1, amount: 1_500_000_000_007n })); // 1.500000000007 USDC-cents...
    expect(book.accounts.get(t1)).toMatchObject({ balance: 1_000_000n, collateral: WAD + 1_500_000_000_007n });
    book.apply(ev({ kind: "withdrawn", collateralToken: USDC.toLowerCase() as Address, trader: t1, amount: 10n }));
    // owed 1.500000000007e12 wei = 1 unit + a remainder the Vault drops
    expect(book.accounts.get(t1)).toMatchObject({ balance: 1_000_000n - 10n + 1n, owedRealizedPnl: 0n });
    book.apply(ev({ kind: "pnlRealized", trader: t1, amount: -1n }));
    book.apply(ev({ kind: "withdrawn", collateralToken: USDC.toLowerCase() as Address, trader: t1, amount: 1n }));
    // −1 wei rounds down to −1 unit (SettlementTokenMath.formatSettlementToken)
    expect(book.accounts.get(t1)).toMatchObject({ balance: 1_000_000n - 10n + 1n - 1n - 1n, owedRealizedPnl: 0n });
  });

  it("moves bad debt from the insurance fund, and other collateral apart from the settlement token", () => {
    const book = bookWithMarkets();
    book.apply(ev({ kind: "badDebtSettled", trader: t1, amount: 26_851_181n }));
    expect(book.accounts.get(t1)?.balance).toBe(26_851_181n);
    expect(book.accounts.get(IF.toLowerCase())?.balance).toBe(-26_851_181n);
    book.apply(ev({ kind: "deposited", collateralToken: BTC, trader: t1, amount: 5n }));
    expect(book.accounts.get(t1)?.otherCollateral.get(BTC.toLowerCase() as Address)).toBe(5n);
    book.apply(ev({ kind: "withdrawn", collateralToken: BTC, trader: t1, amount: 5n }));
    expect(book.accounts.get(t1)?.otherCollateral.size).toBe(0);
  });

  it("steps the global funding growth as Exchange does: clamp(marketTwap − indexTwap)·Δt, a range for the 18-decimal TWAP", () => {
    const book = bookWithMarkets();
    expect(book.markets.get(0)).toMatchObject({ lastSettled: 1000n, growth: { lo: 0n, hi: 0n } });
    const m18 = 2010n * WAD + 123n;
    const i18 = 2000n * WAD;
    book.apply(ev({ kind: "fundingUpdated", baseToken: eth, marketTwap: m18, indexTwap: i18 }, 30n, 1_060n));
    const [lo, hi] = x96RangeOf(m18);
    const g = book.markets.get(0)?.growth;
    expect(g?.lo).toBe(deltaTwapX96(lo, x18ToX96(i18), 100_000n) * 60n);
    expect(g?.hi).toBe(deltaTwapX96(hi, x18ToX96(i18), 100_000n) * 60n);
    expect((g?.hi ?? 0n) - (g?.lo ?? 0n)).toBeLessThan((60n * 2n ** 96n) / WAD + 60n);
    // clamped at 10% of the index
    book.apply(ev({ kind: "fundingUpdated", baseToken: eth, marketTwap: 3000n * WAD, indexTwap: i18 }, 31n, 1_070n));
    const max = (x18ToX96(i18) * 100_000n) / 1_000_000n;
    expect((book.markets.get(0)?.growth.lo ?? 0n) - (g?.lo ?? 0n)).toBe(max * 10n);
    // a paused market's funding stops at its pause
    book.apply(ev({ kind: "statusUpdated", baseToken: eth, status: 1 }, 32n, 1_080n));
    book.apply(ev({ kind: "fundingUpdated", baseToken: eth, marketTwap: 3000n * WAD, indexTwap: i18 }, 33n, 5_000n));
    expect(book.markets.get(0)).toMatchObject({ status: "paused", pausedAt: 1_080n, lastSettled: 1_080n });
  });

  it("reports liquidations (target, penalty, whether the market is left empty)", () => {
    const book = bookWithMarkets();
    book.apply(pc(t1, eth, 3n * WAD, -6000n * WAD));
    book.apply(pc(t1, eth, -1n * WAD, -4000n * WAD));
    const [c] = reduce(
      book,
      ev({
        kind: "positionLiquidated",
        trader: t1,
        baseToken: eth,
        positionNotional: 2000n * WAD,
        positionSize: WAD,
        liquidationFee: 50n * WAD,
        liquidator: t2,
      }),
    );
    expect(c).toMatchObject({
      type: "account",
      liquidation: { target: targetKey(t1, 0), penalty: 50n * WAD, full: false },
    });
  });

  it("refuses events of a market never listed, leaving the book as it was", () => {
    const book = bookWithMarkets();
    const before = snapshot(book);
    expect(() => book.apply(pc(t1, t2, 1n, 1n))).toThrow(PerpV2BookError);
    expect(snapshot(book)).toEqual(before);
  });

  it("undoes any sequence exactly, newest first (reorganisations)", () => {
    const book = new PerpV2Book(GLOBAL);
    const initial = snapshot(book);
    const events: PerpV2Event[] = [
      ev({ kind: "poolAdded", baseToken: eth, feeRatio: 3000, pool: t2 }),
      ev({ kind: "fundingUpdated", baseToken: eth, marketTwap: 2000n * WAD, indexTwap: 2000n * WAD }, 3n, 1000n),
      ev({ kind: "deposited", collateralToken: USDC.toLowerCase() as Address, trader: t1, amount: 5n }),
      pc(t1, eth, 2n * WAD, -4000n * WAD),
      ev({ kind: "fundingUpdated", baseToken: eth, marketTwap: 2100n * WAD, indexTwap: 2000n * WAD }, 4n, 1030n),
      ev({ kind: "pnlRealized", trader: t1, amount: -7n }),
      ev({ kind: "fundingPaymentSettled", trader: t1, baseToken: eth, fundingPayment: 7n }),
      ev({ kind: "maxFundingRateChanged", rate: 5 }),
      ev({ kind: "withdrawn", collateralToken: USDC.toLowerCase() as Address, trader: t1, amount: 1n }),
      pc(t1, eth, -2n * WAD, 0n),
    ];
    const log: (readonly PerpV2Change[])[] = [];
    const states = [snapshot(book)];
    for (const e of events) {
      log.push(book.apply(e));
      states.push(snapshot(book));
    }
    expect(book.accounts.get(t1)?.positions.size).toBe(0);
    for (let i = events.length - 1; i >= 0; i--) {
      book.undo(log[i] as readonly PerpV2Change[]);
      expect(snapshot(book)).toEqual(states[i]);
    }
    expect(snapshot(book)).toEqual(initial);
  });
});

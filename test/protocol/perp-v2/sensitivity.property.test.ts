/**
 * Property: the Perp v2 sensitivity is a sound movement bound. For random cross-margin accounts (longs, shorts,
 * dust, two markets), random funding histories and tails, and random moves of marks, index TWAPs and time within the
 * horizon: the chain's exact slack (the model's arithmetic with the true funding growth, any rate the clamp allows)
 * lies within the evaluation's [low, high] at the old view, and at the new view it is at least
 * old low − Σ down·fall − Σ up·rise − perSecond·Δt − rounding.
 */
import fc from "fast-check";
import type { Address } from "viem";
import { describe, expect, it } from "vitest";
import type { PerpV2Market } from "../../../src/protocol/perpV2/book.ts";
import { perpV2Margin } from "../../../src/protocol/perpV2/margin.ts";
import { deltaTwapX96, maxDeltaTwapX96, x18ToX96, x96RangeOf } from "../../../src/protocol/perpV2/math.ts";
import { highSlack, lowSlack, type PriceView, type Sensitivity } from "../../../src/protocol/types.ts";
import { BTC, bookWithMarkets, CONTRACTS, ETH, ev, trader, USDC, WAD } from "./helpers.ts";

const t1 = trader(1).toLowerCase() as Address;
const bases = [ETH.toLowerCase() as Address, BTC.toLowerCase() as Address];
const PRICES = [2000n * WAD, 30_000n * WAD];

const positionArb = fc.record({
  size: fc.oneof(fc.bigInt({ min: -50n * WAD, max: 50n * WAD }), fc.bigInt({ min: -9n, max: 9n })),
  entry: fc.double({ min: 0.5, max: 1.5, noNaN: true }),
});
const scenarioArb = fc.record({
  balance: fc.bigInt({ min: 0n, max: 200_000n * 10n ** 6n }),
  owed: fc.bigInt({ min: -1000n * WAD, max: 1000n * WAD }),
  positions: fc.tuple(fc.option(positionArb, { nil: undefined }), fc.option(positionArb, { nil: undefined })),
  /** Premiums (relative) of the FundingUpdated before and after the trade, per market. */
  history: fc.array(fc.double({ min: -0.2, max: 0.2, noNaN: true }), { minLength: 4, maxLength: 4 }),
  tail: fc.bigInt({ min: 0n, max: 3000n }),
  marks: fc.array(fc.double({ min: 0.6, max: 1.4, noNaN: true }), { minLength: 2, maxLength: 2 }),
  index: fc.array(fc.double({ min: 0.7, max: 1.3, noNaN: true }), { minLength: 2, maxLength: 2 }),
  marketTwap: fc.option(fc.array(fc.double({ min: 0.8, max: 1.2, noNaN: true }), { minLength: 2, maxLength: 2 }), {
    nil: undefined,
  }),
  moves: fc.array(fc.double({ min: 0.7, max: 1.3, noNaN: true }), { minLength: 4, maxLength: 4 }),
  dt: fc.bigInt({ min: 0n, max: 600n }),
  /** Where in the clamp (or the read's range) the true rates lie, in [0, 1]. */
  truth: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 6, maxLength: 6 }),
});

const scale = (x: bigint, f: number) => (x * BigInt(Math.round(f * 1e9))) / 1_000_000_000n;
const between = (lo: bigint, hi: bigint, f: number) => lo + scale(hi - lo, f);

function bound(s: Sensitivity, before: PriceView, after: PriceView): bigint {
  let b = 0;
  for (const [id, p] of after.prices) {
    const q = before.prices.get(id);
    if (q === undefined) continue;
    if (p < q) b += (s.down.get(id) ?? 0) * Number(q - p);
    if (p > q) b += (s.up.get(id) ?? 0) * Number(p - q);
  }
  b += s.perSecond * Number(after.timestamp - before.timestamp);
  return BigInt(Math.ceil(b)) + s.rounding + 1n;
}

describe("perp-v2 sensitivity (property)", () => {
  it("bounds the exact slack's fall under any move of marks, index TWAPs and time within the horizon", () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const book = bookWithMarkets();
        const model = perpV2Margin(() => book, { contracts: CONTRACTS, horizon: 600n });
        book.apply(
          ev({ kind: "deposited", collateralToken: USDC.toLowerCase() as Address, trader: t1, amount: sc.balance }),
        );
        book.apply(ev({ kind: "pnlRealized", trader: t1, amount: sc.owed }));
        const funding = (i: number, k: number, time: bigint) =>
          book.apply(
            ev(
              {
                kind: "fundingUpdated",
                baseToken: bases[i] as Address,
                marketTwap: scale(PRICES[i] as bigint, 1 + (sc.history[k] ?? 0)),
                indexTwap: PRICES[i] as bigint,
              },
              5n,
              time,
            ),
          );
        sc.positions.forEach((p, i) => {
          funding(i, 2 * i, 1_500n);
          if (!p) return;
          const openNotional = -scale(p.size * (PRICES[i] as bigint), p.entry) / WAD;
          book.apply(
            ev(
              {
                kind: "positionChanged",
                trader: t1,
                baseToken: bases[i] as Address,
                exchangedPositionSize: p.size,
                exchangedPositionNotional: -openNotional,
                fee: 0n,
                openNotional,
                realizedPnl: 0n,
                sqrtPriceAfterX96: 0n,
              },
              6n,
              1_500n,
            ),
          );
          funding(i, 2 * i + 1, 2_000n);
        });
        const account = book.accounts.get(t1);
        if (!account) return;
        const tHat = 2_000n + sc.tail;
        const viewAt = (marks: number[], index: number[], twap: number[] | undefined, t: bigint): PriceView => {
          const prices = new Map<number, bigint>();
          PRICES.forEach((p, i) => {
            prices.set(3 * i, scale(p, marks[i] ?? 1));
            prices.set(3 * i + 1, scale(p, index[i] ?? 1));
            if (twap) prices.set(3 * i + 2, scale(p, twap[i] ?? 1));
          });
          return { prices, timestamp: t, blockNumber: 50n };
        };
        const before = viewAt(sc.marks, sc.index, sc.marketTwap, tHat);
        const after = viewAt(
          sc.marks.map((m, i) => m * (sc.moves[i] ?? 1)),
          sc.index.map((x, i) => x * (sc.moves[i + 2] ?? 1)),
          undefined,
          tHat + sc.dt,
        );
        const e = model.evaluate(account, before);
        const low = lowSlack(e);
        const high = highSlack(e);
        if (low === undefined || high === undefined) return;
        const s = model.sensitivity(account, before);

        // the chain: each market's true growth at a time, for a true rate (from the read's range or the clamp)
        const truly = (view: PriceView, fromRead: boolean, k: number) => {
          const markets = new Map<number, PerpV2Market>();
          for (const [id, m] of book.markets) {
            const i = id / 3;
            const g = between(m.growth.lo, m.growth.hi, sc.truth[k + i] ?? 0);
            const index = view.prices.get(m.indexTwapId) as bigint;
            const max = maxDeltaTwapX96(index, book.global.maxFundingRate);
            let rate = between(-max, max, sc.truth[k + 2 + i] ?? 0);
            const twap = view.prices.get(m.marketTwapId);
            if (fromRead && twap !== undefined) {
              const [lo, hi] = x96RangeOf(twap);
              rate = deltaTwapX96(
                between(lo, hi, sc.truth[k + 4 - i] ?? 0),
                x18ToX96(index),
                book.global.maxFundingRate,
              );
            }
            const growth = g + rate * (view.timestamp - m.lastSettled);
            markets.set(id, { ...m, growth: { lo: growth, hi: growth }, lastSettled: view.timestamp });
          }
          const chain = perpV2Margin(() => ({ markets, global: book.global }), { contracts: CONTRACTS });
          const exact = chain.evaluate(account, view);
          if (exact.kind !== "exact") throw new Error(`not exact: ${exact.kind}`);
          return exact.balance - exact.requirement;
        };
        const trueBefore = truly(before, true, 0);
        expect(trueBefore).toBeGreaterThanOrEqual(low);
        expect(trueBefore).toBeLessThanOrEqual(high);
        if (s.horizon === 0n) return;
        const trueAfter = truly(after, false, 0);
        expect(trueAfter).toBeGreaterThanOrEqual(low - bound(s, before, after));
      }),
      { numRuns: 400 },
    );
  });
});

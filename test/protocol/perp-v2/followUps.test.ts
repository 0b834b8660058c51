/**
 * The calls an account still needs after its first, planned by the contract's arithmetic on the book
 * (src/protocol/perpV2/followUps.ts): a partial account halved until its margin ratio is back above maintenance, an
 * account in two markets taken market by market, and nothing more for a whole one or one a single call makes healthy.
 */
import type { Address } from "viem";
import { describe, expect, it } from "vitest";
import type { PerpV2Book } from "../../../src/protocol/perpV2/book.ts";
import { FollowUpPlans, planFollowUps } from "../../../src/protocol/perpV2/followUps.ts";
import { perpV2Margin } from "../../../src/protocol/perpV2/margin.ts";
import type { PriceView } from "../../../src/protocol/types.ts";
import { BTC, bookWithMarkets, CONTRACTS, depositUsdc, ETH, takerTrade, trader, WAD } from "./helpers.ts";

const eth = ETH.toLowerCase() as Address;
const btc = BTC.toLowerCase() as Address;
const who = trader(7).toLowerCase() as Address;

function open(book: PerpV2Book, usdc: bigint, legs: readonly [Address, bigint, bigint][]) {
  depositUsdc(book, who, usdc);
  for (const [base, size, openNotional] of legs) takerTrade(book, who, base, size, openNotional);
}

/** Marks (and index TWAPs: they bound the funding) at ETH and BTC. */
const at = (ethPrice: bigint, btcPrice = 30_000n): PriceView => ({
  prices: new Map([
    [0, ethPrice * WAD],
    [1, ethPrice * WAD],
    [3, btcPrice * WAD],
    [4, btcPrice * WAD],
  ]),
  timestamp: 1_001n,
  blockNumber: 20n,
});

function plan(usdc: bigint, legs: readonly [Address, bigint, bigint][], view: PriceView, first: number) {
  const book = bookWithMarkets();
  open(book, usdc, legs);
  const account = book.accounts.get(who);
  if (!account) throw new Error("no account");
  const model = perpV2Margin(() => book, { contracts: CONTRACTS });
  const evaluation = model.evaluate(account, view);
  return planFollowUps(account, evaluation, book, view, { priceId: first, size: 0n }).map((f) => f.priceId);
}

const ethLong: [Address, bigint, bigint][] = [[eth, 5n * WAD, -10_000n * WAD]]; // 5 ETH bought at 2000, 1000 USDC

describe("perp-v2 follow-up calls", () => {
  it("halves a partial account until its margin ratio is back above maintenance (2r - 2.5% per call)", () => {
    // at 1860: ratio 3.23% -> 3.95% -> 5.4% -> 8.3%: two more calls
    expect(plan(1_000_000_000n, ethLong, at(1860n), 0)).toEqual([0, 0]);
    // at 1880: 4.26% -> 6.01% -> 9.5%: one more
    expect(plan(1_000_000_000n, ethLong, at(1880n), 0)).toEqual([0]);
    // at 1890: 5.29% -> 8.08%: the first call is enough
    expect(plan(1_000_000_000n, ethLong, at(1890n), 0)).toEqual([]);
  });

  it("plans nothing after a whole liquidation (below half the maintenance margin)", () => {
    expect(plan(1_000_000_000n, ethLong, at(1840n), 0)).toEqual([]);
  });

  it("takes an account in two markets market by market, the largest first", () => {
    const cross: [Address, bigint, bigint][] = [
      [eth, 3n * WAD, -6_000n * WAD],
      [btc, WAD / 5n, -6_000n * WAD],
    ];
    // ETH 1800, BTC 26500: value 100 of 10700 at the mark: wholly liquidatable; ETH first, then BTC
    expect(plan(1_400_000_000n, cross, at(1800n, 26_500n), 0)).toEqual([3]);
    // healthy: nothing at all
    expect(plan(1_400_000_000n, cross, at(2000n, 30_000n), 0)).toEqual([]);
  });

  it("keeps each target's plan until replaced, and forgets an empty one", () => {
    const plans = new FollowUpPlans();
    plans.set("a/0", [{ baseToken: eth, priceId: 0 }]);
    expect(plans.get("a/0")).toEqual([{ baseToken: eth, priceId: 0 }]);
    plans.set("a/0", []);
    expect(plans.get("a/0")).toEqual([]);
  });
});

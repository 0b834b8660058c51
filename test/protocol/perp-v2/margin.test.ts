/**
 * The Perp v2 margin arithmetic on hand-computed cases: the account value's floor to the settlement token's decimals,
 * the requirement's mulRatio, dust, the liquidation boundary (value = requirement is not liquidatable), the funding
 * bound and when it is exact, makers, missing prices, and the confirmation reads' decoding.
 */
import { type Address, encodeFunctionResult, type Hex } from "viem";
import { describe, expect, it } from "vitest";
import { accountBalanceAbi, clearingHouseAbi, exchangeAbi } from "../../../src/protocol/perpV2/abi.ts";
import type { PerpV2Book } from "../../../src/protocol/perpV2/book.ts";
import { freeCollateralByRatio, UNBOUNDED } from "../../../src/protocol/perpV2/figures.ts";
import { perpV2Margin } from "../../../src/protocol/perpV2/margin.ts";
import { FUNDING_PERIOD, maxDeltaTwapX96, Q96, takerFunding } from "../../../src/protocol/perpV2/math.ts";
import type { PriceView } from "../../../src/protocol/types.ts";
import { BTC, bookWithMarkets, CONTRACTS, depositUsdc, ETH, ev, takerTrade, trader, WAD } from "./helpers.ts";

const t1 = trader(1).toLowerCase() as Address;
const eth = ETH.toLowerCase() as Address;
const btc = BTC.toLowerCase() as Address;

const open = (book: PerpV2Book, who: Address, base: Address, size: bigint, openNotional: bigint, time = 1_000n) =>
  takerTrade(book, who, base, size, openNotional, 20n, time);
const deposit = depositUsdc;

const view = (prices: [number, bigint][], timestamp = 1_000n): PriceView => ({
  prices: new Map(prices),
  timestamp,
  blockNumber: 30n,
});

function setup() {
  const book = bookWithMarkets();
  const model = perpV2Margin(() => book, { contracts: CONTRACTS });
  return { book, model };
}

describe("perp-v2 margin", () => {
  it("t1 of the notes: 1000 USDC, 4.5 ETH long at −9000 open notional, mark 1999.84", () => {
    const { book, model } = setup();
    deposit(book, t1, 1_000_000_000n);
    open(book, t1, eth, (45n * WAD) / 10n, -9000n * WAD);
    const a = book.accounts.get(t1);
    if (!a) throw new Error("no account");
    const mark = (199_984n * WAD) / 100n;
    // value: 1000 + 4.5·1999.84 − 9000 = 999.28; requirement: floor(8999.28e18 · 62500 / 1e6) = 562.455e18
    expect(model.evaluate(a, view([[0, mark]]))).toEqual({
      kind: "exact",
      balance: (99_928n * WAD) / 100n,
      requirement: (562_455n * WAD) / 1000n,
    });
  });

  it("at the boundary: value = requirement is not liquidatable, one wei of price below it is (the 6-decimal floor)", () => {
    const { book, model } = setup();
    // 1000 USDC, 16 ETH long at −16000: at 1000 the value is 1000 and the requirement 16000·6.25% = 1000
    deposit(book, t1, 1_000_000_000n);
    open(book, t1, eth, 16n * WAD, -16_000n * WAD);
    const a = book.accounts.get(t1);
    if (!a) throw new Error("no account");
    expect(model.evaluate(a, view([[0, 1000n * WAD]]))).toEqual({
      kind: "exact",
      balance: 1000n * WAD,
      requirement: 1000n * WAD,
    });
    // 1 wei lower: the value loses 16 wei, floored to 6 decimals it loses 1e12; the requirement loses 1 wei
    expect(model.evaluate(a, view([[0, 1000n * WAD - 1n]]))).toEqual({
      kind: "exact",
      balance: 1000n * WAD - 10n ** 12n,
      requirement: 1000n * WAD - 1n,
    });
  });

  it("floors the account value to 6 decimals toward −∞, as Vault.getAccountValue then ClearingHouse do", () => {
    const { book, model } = setup();
    deposit(book, t1, 5_000_000n); // 5 USDC
    book.apply(ev({ kind: "pnlRealized", trader: t1, amount: 999_999_999_999n })); // just under 1e12
    const a1 = book.accounts.get(t1);
    if (!a1) throw new Error("no account");
    expect(model.evaluate(a1, view([]))).toEqual({ kind: "exact", balance: 5n * WAD, requirement: 0n });
    book.apply(ev({ kind: "pnlRealized", trader: t1, amount: -999_999_999_999n - 1n })); // owed −1 wei
    const a2 = book.accounts.get(t1);
    if (!a2) throw new Error("no account");
    expect(model.evaluate(a2, view([]))).toEqual({ kind: "exact", balance: 5n * WAD - 10n ** 12n, requirement: 0n });
  });

  it("sums positions across markets (cross margin), reads dust as no position, and says which prices are missing", () => {
    const { book, model } = setup();
    deposit(book, t1, 1_000_000_000n);
    open(book, t1, eth, 2n * WAD, -4000n * WAD);
    open(book, t1, btc, -(WAD / 10n), 3000n * WAD);
    const a = book.accounts.get(t1);
    if (!a) throw new Error("no account");
    expect(model.evaluate(a, view([[0, 2000n * WAD]]))).toEqual({ kind: "unpriced", missing: [3] });
    const e = model.evaluate(
      a,
      view([
        [0, 1900n * WAD],
        [3, 31_000n * WAD],
      ]),
    );
    // 1000 + (3800 − 4000) + (−3100 + 3000) = 700; requirement (3800 + 3100)·0.0625 = 431.25
    expect(e).toEqual({ kind: "exact", balance: 700n * WAD, requirement: (43_125n * WAD) / 100n });
    // a size of 9 wei reads as 0: no price needed, no value, no requirement; its open notional still counts
    open(book, t1, btc, WAD / 10n + 9n, 10n); // the event's open notional is the one after: 10 wei
    const b = book.accounts.get(t1);
    if (!b) throw new Error("no account");
    expect(model.evaluate(b, view([[0, 1900n * WAD]]))).toEqual({
      kind: "exact",
      balance: 800n * WAD,
      requirement: (1900n * 2n * WAD * 625n) / 10_000n,
    });
  });

  it("bounds funding accrued since the market's last update by the clamp, and pins it with both TWAPs", () => {
    const { book, model } = setup();
    deposit(book, t1, 1_000_000_000n);
    open(book, t1, eth, 3n * WAD, -6000n * WAD);
    const a = book.accounts.get(t1);
    if (!a) throw new Error("no account");
    const mark = 2000n * WAD;
    // 3600 s after the last FundingUpdated, index TWAP 2000: |funding| ≤ 3·2000·10%·3600/86400 = 25 USD
    const noIndex = model.evaluate(a, view([[0, mark]], 4_600n));
    expect(noIndex).toMatchObject({ kind: "bounded", low: -UNBOUNDED, high: UNBOUNDED });
    const bounded = model.evaluate(
      a,
      view(
        [
          [0, mark],
          [1, 2000n * WAD],
        ],
        4_600n,
      ),
    );
    expect(bounded.kind).toBe("bounded");
    if (bounded.kind !== "bounded") return;
    const maxRate = maxDeltaTwapX96(2000n * WAD, 100_000n);
    const worst = takerFunding(3n * WAD, maxRate * 3600n); // ≈ 25e18
    expect(worst).toBe(25n * WAD);
    const value = 1000n * WAD; // 1000 + 6000 − 6000
    expect(bounded.low).toBe(value - ((worst + 10n ** 12n - 1n) / 10n ** 12n) * 10n ** 12n - bounded.requirement);
    expect(bounded.high).toBe(value + (worst / 10n ** 12n) * 10n ** 12n - bounded.requirement);
    // market TWAP 1% above the index: the trader (long) pays 1%·2000·3·3600/86400 = 2.5 USD, to the wei left
    const pinned = model.evaluate(
      a,
      view(
        [
          [0, mark],
          [1, 2000n * WAD],
          [2, 2020n * WAD],
        ],
        4_600n,
      ),
    );
    expect(pinned.kind).toBe("exact");
    if (pinned.kind === "exact") expect(value - pinned.balance).toBe((25n * WAD) / 10n);
    // the last FundingUpdated makes the history exact: no tail, no reads needed
    book.apply(
      ev({ kind: "fundingUpdated", baseToken: eth, marketTwap: 2020n * WAD, indexTwap: 2000n * WAD }, 40n, 4_600n),
    );
    const settled = model.evaluate(a, view([[0, mark]], 4_600n));
    expect(settled).toEqual(pinned);
  });

  it("evaluates makers open-ended (confirm by read) and non-settlement collateral open above", () => {
    const { book, model } = setup();
    deposit(book, t1, 1_000_000_000n);
    book.apply(
      ev({
        kind: "liquidityChanged",
        maker: t1,
        baseToken: eth,
        quoteToken: eth,
        lowerTick: -600,
        upperTick: 600,
        base: WAD,
        quote: 2000n * WAD,
        liquidity: 10n ** 20n,
        quoteFee: 0n,
      }),
    );
    const a = book.accounts.get(t1);
    if (!a) throw new Error("no account");
    expect(
      model.evaluate(
        a,
        view([
          [0, 2000n * WAD],
          [1, 2000n * WAD],
        ]),
      ),
    ).toMatchObject({
      kind: "bounded",
      low: -UNBOUNDED,
      high: UNBOUNDED,
    });
    expect(model.sensitivity(a, view([[0, 2000n * WAD]])).horizon).toBe(0n);
    const t2 = trader(2).toLowerCase() as Address;
    deposit(book, t2, 1_000_000n);
    book.apply(ev({ kind: "deposited", collateralToken: btc, trader: t2, amount: 5n }));
    const b = book.accounts.get(t2);
    if (!b) throw new Error("no account");
    expect(model.evaluate(b, view([]))).toEqual({ kind: "bounded", low: WAD, high: UNBOUNDED, requirement: 0n });
  });

  it("confirms by reads: getAccountValue, getMarginRequirementForLiquidation, getAllPendingFundingPayment", () => {
    const { book, model } = setup();
    deposit(book, t1, 1n);
    const a = book.accounts.get(t1);
    if (!a) throw new Error("no account");
    const reads = model.confirm.reads(a);
    expect(reads.map((r) => r.to)).toEqual([CONTRACTS.clearingHouse, CONTRACTS.accountBalance, CONTRACTS.exchange]);
    const results: Hex[] = [
      encodeFunctionResult({ abi: clearingHouseAbi, functionName: "getAccountValue", result: -5n }),
      encodeFunctionResult({ abi: accountBalanceAbi, functionName: "getMarginRequirementForLiquidation", result: 7n }),
      encodeFunctionResult({ abi: exchangeAbi, functionName: "getAllPendingFundingPayment", result: -3n }),
    ];
    expect(model.confirm.decode(a, results)).toEqual({ kind: "exact", balance: -5n, requirement: 7n });
    expect(model.confirm.decodeDetail(a, results).pendingFunding).toBe(-3n);
    expect(() => model.confirm.decode(a, [undefined, results[1]])).toThrow();
  });

  it("free collateral by ratio: min(collateral, value) less the debt at the ratio (longs owe open notional, shorts base)", () => {
    const { book } = setup();
    deposit(book, t1, 1_000_000_000n);
    open(book, t1, eth, 2n * WAD, -4000n * WAD);
    open(book, t1, btc, -(WAD / 10n), 3000n * WAD);
    const a = book.accounts.get(t1);
    if (!a) throw new Error("no account");
    const at = view([
      [0, 1900n * WAD],
      [3, 31_000n * WAD],
    ]);
    // collateral 1000, value 700 → 700; debt |min(−4000 + 3000, 0) + (−3100)| = 4100; at 10%: 410 → 290
    expect(freeCollateralByRatio(a, book, at, 100_000n)).toEqual([290n * WAD, 290n * WAD]);
  });

  it("per-second funding is |base|·index·maxFundingRate/86400 per position", () => {
    const { book, model } = setup();
    deposit(book, t1, 1_000_000_000n);
    open(book, t1, eth, 3n * WAD, -6000n * WAD);
    const a = book.accounts.get(t1);
    if (!a) throw new Error("no account");
    const s = model.sensitivity(
      a,
      view([
        [0, 2000n * WAD],
        [1, 2000n * WAD],
      ]),
    );
    expect(s.perSecond / ((3 * 2000e18 * 0.1) / Number(FUNDING_PERIOD))).toBeCloseTo(1, 6);
    expect(s.down.get(0)).toBeCloseTo(3 * (1 - 0.0625), 7);
    expect(s.up.get(0) ?? 0).toBe(0);
    expect(Q96).toBe(2n ** 96n);
  });
});

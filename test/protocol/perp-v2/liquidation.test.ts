/**
 * Perp v2 liquidation rules: getLiquidatablePositionSize's boundaries (the requirement, $100, half the requirement, the
 * 1/(2·share) cap and its uint24 overflow), the plan (largest position first, prerequisites for makers, the
 * liquidator's cost), calldata, outcomes from a receipt's logs, and revert meanings.
 */
import {
  type Address,
  decodeFunctionData,
  encodeAbiParameters,
  encodeErrorResult,
  type Hex,
  parseAbi,
  toHex,
} from "viem";
import { describe, expect, it } from "vitest";
import { accountBalanceAbi, clearingHouseAbi, vaultAbi } from "../../../src/protocol/perpV2/abi.ts";
import type { PerpV2Book } from "../../../src/protocol/perpV2/book.ts";
import { perpV2Decoder } from "../../../src/protocol/perpV2/events.ts";
import {
  contractLiquidatableSize,
  encodeTarget,
  liquidatableSize,
  liquidationEffect,
  planTargets,
  UINT24_REVERT,
} from "../../../src/protocol/perpV2/liquidation.ts";
import { perpV2Margin } from "../../../src/protocol/perpV2/margin.ts";
import { liquidationOutcomes, revertMeaning } from "../../../src/protocol/perpV2/outcomes.ts";
import type { PriceView } from "../../../src/protocol/types.ts";
import { BTC, bookWithMarkets, CONTRACTS, ETH, ev, IF, logOf, takerTrade, trader, USDC, WAD } from "./helpers.ts";

const t1 = trader(1).toLowerCase() as Address;
const keeper = trader(9).toLowerCase() as Address;
const eth = ETH.toLowerCase() as Address;
const btc = BTC.toLowerCase() as Address;

const base = { mark: 2000n * WAD };

describe("getLiquidatablePositionSize, bit for bit", () => {
  const one = (accountValue: bigint, positionSize: bigint, totalAbs?: bigint, mark = 2000n * WAD) => {
    const value = ((positionSize < 0n ? -positionSize : positionSize) * mark) / WAD;
    const total = totalAbs ?? value;
    return contractLiquidatableSize({
      accountValue,
      marginRequirement: (total * 62_500n) / 1_000_000n,
      positionSize,
      mark,
      totalAbsPositionValue: total,
    });
  };
  it("0 at or above the requirement, or without a position", () => {
    // 4 ETH at 2000: value 8000, requirement 500
    expect(one(500n * WAD, 4n * WAD)).toEqual({ ok: true, size: 0n });
    expect(one(500n * WAD - 1n, 4n * WAD)).toEqual({ ok: true, size: 2n * WAD }); // half: one market, ratio 0.5
    expect(
      contractLiquidatableSize({
        ...base,
        accountValue: -1n,
        marginRequirement: 5n,
        positionSize: 0n,
        totalAbsPositionValue: 0n,
      }),
    ).toEqual({ ok: true, size: 0n });
  });
  it("the whole position at or below $100 of value, partial above", () => {
    const s100 = WAD / 20n; // 0.05 ETH at 2000 = exactly 100
    expect(one(0n, s100, 8000n * WAD)).toEqual({ ok: true, size: s100 });
    // 1 wei more value in an 8000 account, partial regime: the cap's ratio 8000e6/200 = 40e6 overflows uint24
    const above = s100 + 1n;
    expect(one(499n * WAD, above, 8000n * WAD)).toEqual({ ok: false, revert: UINT24_REVERT });
    // in a 4000 account the ratio is 20e6: still over 2^24 − 1; in a 3000 one it is 15e6: capped to 1, whole
    expect(one(100n * WAD, above, 3000n * WAD)).toEqual({ ok: true, size: above });
    // a single market just above $100 in the partial regime: half
    expect(one(6n * WAD, above)).toEqual({ ok: true, size: above / 2n });
    // the same at or below $100: whole
    expect(one(6n * WAD, s100)).toEqual({ ok: true, size: s100 });
  });
  it("partial at accountValue ≥ requirement/2 (SignedSafeMath division), all below", () => {
    // requirement 500: half is 250
    expect(one(250n * WAD, 4n * WAD)).toEqual({ ok: true, size: 2n * WAD });
    expect(one(250n * WAD - 1n, 4n * WAD)).toEqual({ ok: true, size: 4n * WAD });
    // an odd requirement: 4.000000000000000001 ETH → requirement 500.000000000000000125 → /2 toward zero
    const size = 4n * WAD + 1n;
    const req = (size * 2000n * 62_500n) / 1_000_000n;
    expect(one(req / 2n, size)).toEqual({ ok: true, size: (size * 500_000n) / 1_000_000n });
    expect(one(req / 2n - 1n, size)).toEqual({ ok: true, size });
    expect(one(-1n, -size)).toEqual({ ok: true, size: -size });
  });
  it("the cap min(1, Σ|pv|/(2·|pv|)) floored to 1e6, sizes toward zero, and its uint24 overflow", () => {
    // two markets of 8000 each: cap 1 → whole
    expect(one(600n * WAD, 4n * WAD, 16_000n * WAD)).toEqual({ ok: true, size: 4n * WAD });
    // 8000 of 12000: cap floor(12000e6/16000) = 750000
    expect(one(600n * WAD, -4n * WAD, 12_000n * WAD)).toEqual({ ok: true, size: -3n * WAD });
    // 7 wei of size with a 1/3 cap: floor(7·333333/1e6) = 2, toward zero for a short
    const r = contractLiquidatableSize({
      accountValue: 0n,
      marginRequirement: 1n,
      positionSize: -(10n ** 17n) - 7n,
      mark: 2000n * WAD,
      totalAbsPositionValue: ((10n ** 17n + 7n) * 2000n * 2n) / 3n,
    });
    expect(r.ok).toBe(true);
    // the ratio mulDiv(total, 1e6, 2·pv) at 2^24 − 1 passes (capped to 1e6), at 2^24 reverts
    const pv = 200n * WAD; // 0.1 ETH at 2000
    const atMax = ((2n ** 24n - 1n) * 2n * pv) / 1_000_000n;
    expect(one((atMax * 62_500n) / 1_000_000n / 2n + WAD, WAD / 10n, atMax)).toEqual({ ok: true, size: WAD / 10n });
    const over = (2n ** 24n * 2n * pv) / 1_000_000n;
    expect(one((over * 62_500n) / 1_000_000n / 2n + WAD, WAD / 10n, over)).toEqual({
      ok: false,
      revert: UINT24_REVERT,
    });
    // below half the requirement there is no cap: no overflow either
    expect(one(0n, WAD / 10n, over)).toEqual({ ok: true, size: WAD / 10n });
  });
});

function account(book: PerpV2Book) {
  const a = book.accounts.get(t1);
  if (!a) throw new Error("no account");
  return a;
}

const position = (book: PerpV2Book, base: Address, size: bigint, openNotional: bigint) =>
  takerTrade(book, t1, base, size, openNotional);

const at = (eth: bigint, btc: bigint): PriceView => ({
  prices: new Map([
    [0, eth],
    [3, btc],
  ]),
  timestamp: 1_000n,
  blockNumber: 30n,
});

describe("perp-v2 liquidation plan", () => {
  it("liquidates the largest position first, sized by the contract's rule, with the discount and the takeover's cost", () => {
    const book = bookWithMarkets();
    book.apply(
      ev({ kind: "deposited", collateralToken: USDC.toLowerCase() as Address, trader: t1, amount: 800_000_000n }),
    );
    position(book, eth, 5n * WAD, -10_000n * WAD); // long 5 ETH at 2000
    position(book, btc, -(WAD / 10n), 3_000n * WAD); // short 0.1 BTC at 30000
    const model = perpV2Margin(() => book, { contracts: CONTRACTS });
    const view = at(1900n * WAD, 30_000n * WAD); // value 800 − 500 + 0 = 300; requirement (9500 + 3000)·6.25% = 781.25
    const e = model.evaluate(account(book), view);
    expect(e).toEqual({ kind: "exact", balance: 300n * WAD, requirement: (78_125n * WAD) / 100n });
    const plan = planTargets(account(book), e, book, view, { clearingHouse: CONTRACTS.clearingHouse });
    expect(plan.prerequisites).toEqual([]);
    expect(plan.targets.map((t) => t.market)).toEqual([0, 3]);
    const [first, second] = plan.targets;
    // 300 < 390.625 (half the requirement): full regime, the whole 5 ETH; notional 9500, penalty 237.5, discount 118.75
    expect(first).toMatchObject({ key: `${t1}/0`, size: 0n, expected: [5n * WAD, 5n * WAD], notional: 9500n * WAD });
    expect(first?.penalty).toBe((2375n * WAD) / 10n);
    expect(first?.expectedReward).toBe((11_875n * WAD) / 100n);
    // a long taken over owes its open notional at imRatio: 10%·(9500 − 118.75), rounded up
    expect(first?.capacity).toBe((9500n * WAD - (11_875n * WAD) / 100n) / 10n + 1n);
    expect(first?.shortfall).toBe((48_125n * WAD) / 100n);
    expect(second?.expected).toEqual([WAD / 10n, WAD / 10n]);
    expect(liquidatableSize(account(book), eth, 300n * WAD, view, book)).toEqual({ ok: true, size: 5n * WAD });
    // the call: liquidate(trader, base, 0) — as much as allowed
    const call = encodeTarget(first as never, CONTRACTS.clearingHouse);
    expect(decodeFunctionData({ abi: clearingHouseAbi, data: call.data })).toMatchObject({
      functionName: "liquidate",
      args: [expect.stringMatching(new RegExp(t1, "i")), expect.stringMatching(new RegExp(eth, "i")), 0n],
    });
    // a liquidator with less free collateral: the size is capped and asked for explicitly
    const capped = planTargets(account(book), e, book, view, {
      clearingHouse: CONTRACTS.clearingHouse,
      maxCost: 100n * WAD,
    });
    const c = capped.targets[0];
    expect(c && c.size > 0n && c.size < 5n * WAD && c.capacity <= 100n * WAD).toBe(true);
  });

  it("plans nothing for a healthy or straddling account, and cancels a maker's orders first", () => {
    const book = bookWithMarkets();
    book.apply(
      ev({ kind: "deposited", collateralToken: USDC.toLowerCase() as Address, trader: t1, amount: 800_000_000n }),
    );
    position(book, eth, 5n * WAD, -10_000n * WAD);
    const view = at(2000n * WAD, 30_000n * WAD);
    const opts = { clearingHouse: CONTRACTS.clearingHouse };
    expect(
      planTargets(account(book), { kind: "exact", balance: 1n, requirement: 1n }, book, view, opts).targets,
    ).toEqual([]);
    expect(
      planTargets(account(book), { kind: "bounded", low: -1n, high: 1n, requirement: 1n }, book, view, opts).targets,
    ).toEqual([]);
    book.apply(
      ev({
        kind: "liquidityChanged",
        maker: t1,
        baseToken: btc,
        quoteToken: btc,
        lowerTick: -60,
        upperTick: 60,
        base: WAD,
        quote: WAD,
        liquidity: WAD,
        quoteFee: 0n,
      }),
    );
    const plan = planTargets(account(book), { kind: "exact", balance: 0n, requirement: 1n }, book, view, opts);
    expect(plan.prerequisites).toHaveLength(1);
    expect(decodeFunctionData({ abi: clearingHouseAbi, data: plan.prerequisites[0]?.data as Hex })).toMatchObject({
      functionName: "cancelAllExcessOrders",
    });
    expect(plan.targets[0]).toMatchObject({ market: 0, size: 0n });
    expect(plan.targets[0]?.expected).toBeUndefined();
  });

  it("pays all of the penalty to the liquidator when the account value is negative", () => {
    const g = bookWithMarkets().global;
    expect(liquidationEffect(WAD, 2000n * WAD, [-1n, -1n], g).reward).toBe(50n * WAD);
    expect(liquidationEffect(WAD, 2000n * WAD, [0n, 0n], g).reward).toBe(25n * WAD);
    expect(liquidationEffect(-WAD, 2000n * WAD, [-5n, 5n], g)).toMatchObject({
      reward: 25n * WAD,
      notional: -2000n * WAD,
      cost: 200n * WAD + 1n,
    });
  });
});

describe("perp-v2 outcomes and reverts", () => {
  it("reads a liquidation from a receipt: discount from the two PositionChanged, bad debt, full, what the keeper took", () => {
    const decoder = perpV2Decoder(CONTRACTS);
    const tx = toHex(7, { size: 32 });
    const pc = (who: Address, size: bigint, notional: bigint, openNotional: bigint, index: number) =>
      logOf(
        CONTRACTS.clearingHouse,
        clearingHouseAbi,
        "PositionChanged",
        {
          trader: who,
          baseToken: ETH,
          exchangedPositionSize: size,
          exchangedPositionNotional: notional,
          fee: 0n,
          openNotional,
          realizedPnl: 0n,
          sqrtPriceAfterX96: 0n,
        },
        { tx, index, timestamp: null },
      );
    const logs = [
      pc(t1, -4n * WAD, 8000n * WAD, 0n, 1),
      logOf(
        CONTRACTS.accountBalance,
        accountBalanceAbi,
        "PnlRealized",
        { trader: t1, amount: -200n * WAD },
        { tx, index: 2 },
      ),
      pc(keeper, 4n * WAD, -8000n * WAD + 200n * WAD, -7800n * WAD, 3),
      logOf(
        CONTRACTS.clearingHouse,
        clearingHouseAbi,
        "PositionLiquidated",
        {
          trader: t1,
          baseToken: ETH,
          positionNotional: 8000n * WAD,
          positionSize: 4n * WAD,
          liquidationFee: 200n * WAD,
          liquidator: keeper,
        },
        { tx, index: 4 },
      ),
      logOf(CONTRACTS.vault, vaultAbi, "BadDebtSettled", { trader: t1, amount: 26_851_181n }, { tx, index: 5 }),
    ];
    const events = decoder.decode(logs, { timestampOf: () => 0n });
    const outcomes = liquidationOutcomes(events, bookWithMarkets().global);
    expect(outcomes.get(`${t1}/0`)).toEqual({
      kind: "liquidated",
      trader: t1,
      baseToken: eth,
      liquidator: keeper,
      size: 4n * WAD,
      notional: 8000n * WAD,
      penalty: 200n * WAD,
      reward: 200n * WAD, // all of it: bad debt
      badDebt: 26_851_181n * 10n ** 12n,
      full: true,
      acquired: { market: 0, size: 4n * WAD, openNotional: -7800n * WAD },
    });
    expect(IF).toBeDefined();
  });

  it("names reverts by their require string and says what each means", () => {
    const err = (reason: string) =>
      encodeErrorResult({ abi: parseAbi(["error Error(string)"]), errorName: "Error", args: [reason] });
    expect(revertMeaning(err("CH_EAV"))).toEqual({ name: "CH_EAV", meaning: "healthy" });
    expect(revertMeaning(err("CH_PSZ"))).toEqual({ name: "CH_PSZ", meaning: "gone" });
    expect(revertMeaning(err("CH_CLWTISO"))).toEqual({ name: "CH_CLWTISO", meaning: "orders_open" });
    expect(revertMeaning(err("CH_NEFCI"))).toEqual({ name: "CH_NEFCI", meaning: "liquidator_capacity" });
    expect(revertMeaning(err("OLD"))).toEqual({ name: "OLD", meaning: "stale_price" });
    expect(revertMeaning(err("CH_IIC"))).toEqual({ name: "CH_IIC", meaning: "other" });
    expect(revertMeaning(err(UINT24_REVERT))?.meaning).toBe("other");
    expect(revertMeaning(`0x4e487b71${encodeAbiParameters([{ type: "uint256" }], [0x11n]).slice(2)}`)).toEqual({
      name: "Panic(0x11)",
      meaning: "other",
    });
    expect(revertMeaning(undefined)).toBeUndefined();
    expect(revertMeaning("0x12345678")).toEqual({ name: "0x12345678", meaning: "other" });
  });
});

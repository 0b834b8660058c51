import { parseGwei, parseUnits } from "viem";
import { describe, expect, it } from "vitest";
import {
  CANCEL_GAS,
  checkFees,
  currentFees,
  expectedProfit,
  pickTip,
  planFees,
  replacementFees,
} from "../../src/executor/fees.ts";
import { FEE_POLICY } from "../helpers/fees.ts";

const policy = FEE_POLICY;
const ctx = { baseFeePerGas: parseGwei("10"), priorityFeePerGas: parseGwei("1") };

describe("fee plan from the head", () => {
  it("keeps headroom for base-fee growth: max fee = base x multiplier + tip", () => {
    expect(planFees(ctx, policy)).toEqual({
      ok: true,
      maxFeePerGas: parseGwei("21"),
      maxPriorityFeePerGas: parseGwei("1"),
    });
    expect(planFees(ctx, { ...policy, baseFeeMultiplierBps: 30_000n })).toMatchObject({
      maxFeePerGas: parseGwei("31"),
    });
  });

  it("survives five full blocks of base-fee growth at 2x (12.5% a block)", () => {
    const plan = planFees(ctx, policy);
    if (!plan.ok) throw new Error("refused");
    let base = ctx.baseFeePerGas;
    for (let i = 0; i < 5; i++) base = (base * 1125n) / 1000n;
    expect(plan.maxFeePerGas).toBeGreaterThanOrEqual(base + plan.maxPriorityFeePerGas);
  });

  it("caps both fields at the ceiling and refuses when the ceiling cannot cover the base fee", () => {
    const capped = planFees(ctx, { ...policy, maxFeePerGasCap: parseGwei("10.5") });
    expect(capped).toEqual({ ok: true, maxFeePerGas: parseGwei("10.5"), maxPriorityFeePerGas: parseGwei("0.5") });
    expect(planFees(ctx, { ...policy, maxFeePerGasCap: parseGwei("10") })).toEqual({
      ok: false,
      reason: "base_fee_above_cap",
    });
  });

  it("holds the worst-case gas cost to a share of the reward, and refuses what does not pay", () => {
    const priced = { ...policy, gasTokenPrice: parseUnits("3000", 18), maxRewardShareBps: 5_000n };
    const gas = 100_000n;
    // 100k gas at 21 gwei = 0.0021 ETH = 6.3 USDC; reward 10 USDC: half of it is 5 USDC => max fee <= 16.67 gwei
    const plan = planFees(ctx, priced, { reward: parseUnits("10", 18), gas });
    if (!plan.ok) throw new Error("refused");
    expect((gas * plan.maxFeePerGas * priced.gasTokenPrice) / 10n ** 18n).toBeLessThanOrEqual(parseUnits("5", 18));
    expect(plan.maxFeePerGas).toBeGreaterThan(ctx.baseFeePerGas);
    // 1 USDC reward cannot pay 100k gas at 11 gwei (3.3 USDC)
    const poor = planFees(ctx, priced, { reward: parseUnits("1", 18), gas });
    expect(poor.ok).toBe(false);
    if (!poor.ok) {
      expect(poor.reason).toBe("unprofitable");
      expect(poor.expectedProfit).toBe(
        expectedProfit(parseUnits("1", 18), gas, ctx.baseFeePerGas, ctx.priorityFeePerGas, priced.gasTokenPrice),
      );
    }
  });

  it("counts the value a liquidation sends (a pull oracle's fee) as a cost, in the profit check and the share cap", () => {
    const priced = { ...policy, gasTokenPrice: parseUnits("3000", 18), maxRewardShareBps: 5_000n };
    const gas = 100_000n;
    const reward = parseUnits("10", 18);
    const fee = parseUnits("0.002", 18); // 6 USDC at 3000
    const gasCost = (gas * (ctx.baseFeePerGas + ctx.priorityFeePerGas) * priced.gasTokenPrice) / 10n ** 18n;
    expect(expectedProfit(reward, gas, ctx.baseFeePerGas, ctx.priorityFeePerGas, priced.gasTokenPrice, fee)).toBe(
      reward - gasCost - parseUnits("6", 18),
    );
    // without the fee it pays; with it the 10 USDC reward leaves 4 USDC, of which half may go to gas: 2 USDC at
    // 100k gas is 6.67 gwei, under the 10 gwei base fee
    expect(planFees(ctx, priced, { reward, gas }).ok).toBe(true);
    expect(planFees(ctx, priced, { reward, gas, value: fee })).toEqual({ ok: false, reason: "base_fee_above_cap" });
    // a fee above the reward: nothing may be signed for it
    expect(
      checkFees({ maxFeePerGas: 1n, maxPriorityFeePerGas: 1n }, { gas, reward, value: parseUnits("1", 18) }, priced),
    ).toEqual({
      ok: false,
      reason: "max_fee_above_cap",
    });
  });

  it("takes the observed tip when above the floor", () => {
    expect(pickTip(policy, parseGwei("2"))).toBe(parseGwei("2"));
    expect(pickTip(policy, 0n)).toBe(policy.minPriorityFeePerGas);
    expect(pickTip(policy, undefined)).toBe(policy.minPriorityFeePerGas);
  });
});

describe("replacement fees", () => {
  const previous = { maxFeePerGas: parseGwei("20"), maxPriorityFeePerGas: parseGwei("1") };
  const calm = { maxFeePerGas: parseGwei("5"), maxPriorityFeePerGas: parseGwei("0.1") };

  it("raise both fields by more than the bump rule", () => {
    const r = replacementFees(previous, calm, policy);
    if (!r.ok) throw new Error("refused");
    expect(r.maxFeePerGas * 10_000n).toBeGreaterThan(previous.maxFeePerGas * 11_250n - 1n);
    expect(r.maxPriorityFeePerGas * 10_000n).toBeGreaterThan(previous.maxPriorityFeePerGas * 11_250n - 1n);
  });

  it("follow the market when it moved further than the bump", () => {
    const spiked = { maxFeePerGas: parseGwei("80"), maxPriorityFeePerGas: parseGwei("3") };
    expect(replacementFees(previous, spiked, policy)).toEqual({ ok: true, ...spiked });
  });

  it("bump a zero tip to a positive one", () => {
    const r = replacementFees(
      { maxFeePerGas: 100n, maxPriorityFeePerGas: 0n },
      { maxPriorityFeePerGas: 0n, maxFeePerGas: 0n },
      policy,
    );
    expect(r.ok && r.maxPriorityFeePerGas > 0n && r.maxFeePerGas > 100n).toBe(true);
  });

  it("are refused at the ceiling rather than sent under-bumped", () => {
    expect(replacementFees(previous, calm, { ...policy, maxFeePerGasCap: parseGwei("22") })).toEqual({
      ok: false,
      reason: "at_fee_cap",
    });
    const r = replacementFees(previous, calm, { ...policy, maxFeePerGasCap: parseGwei("30") });
    expect(r).toMatchObject({ ok: true });
    if (r.ok) expect(r.maxFeePerGas).toBeLessThanOrEqual(parseGwei("30"));
  });
});

describe("replacement fees under a ceiling (Trust 2)", () => {
  it("never carry a tip above the max fee when the market's tip is above the ceiling", () => {
    const previous = { maxFeePerGas: parseGwei("20"), maxPriorityFeePerGas: parseGwei("1") };
    const now = { maxFeePerGas: parseGwei("80"), maxPriorityFeePerGas: parseGwei("40") };
    const r = replacementFees(previous, now, { ...policy, maxFeePerGasCap: parseGwei("30") });
    expect(r).toEqual({ ok: true, maxFeePerGas: parseGwei("30"), maxPriorityFeePerGas: parseGwei("30") });
  });
});

describe("the node's transaction fee cap (Trust 3)", () => {
  const ONE_ETH = 10n ** 18n;
  const capped = { ...policy, txFeeCap: ONE_ETH };
  const batch = { reward: parseUnits("1000", 18), gas: 2_300_000n, gasLimit: 3_000_000n };

  it("a full 3M-gas batch at 200 gwei: held to gas x max fee <= 1 ETH (unchecked it offered 1.2 ETH)", () => {
    // 3M gas x (2 x base + 0.01 gwei) passes 1 ETH from a base fee of (333.33 - 0.01) / 2 = 166.66 gwei
    const plan = planFees({ baseFeePerGas: parseGwei("200"), priorityFeePerGas: parseGwei("0.01") }, capped, batch);
    if (!plan.ok) throw new Error(`refused: ${plan.reason}`);
    expect(batch.gasLimit * plan.maxFeePerGas).toBeLessThanOrEqual(ONE_ETH);
    expect(plan.maxPriorityFeePerGas).toBeLessThanOrEqual(plan.maxFeePerGas - parseGwei("200"));
    expect(checkFees(plan, { gas: batch.gasLimit, reward: batch.reward }, capped)).toEqual({ ok: true });
    expect(planFees({ baseFeePerGas: parseGwei("166"), priorityFeePerGas: parseGwei("0.01") }, capped, batch)).toEqual({
      ok: true,
      maxFeePerGas: parseGwei("332.01"),
      maxPriorityFeePerGas: parseGwei("0.01"),
    });
  });

  it("refuses, as a value, what cannot fit at the current base fee", () => {
    const ctx400 = { baseFeePerGas: parseGwei("400"), priorityFeePerGas: parseGwei("1") };
    expect(planFees(ctx400, capped, batch)).toEqual({ ok: false, reason: "tx_fee_above_cap" });
    // the limit is what the node prices: 2.3M gas used, 3M signed
    expect(planFees(ctx400, capped, { ...batch, gasLimit: 2_400_000n })).toMatchObject({ ok: true });
    expect(planFees(ctx400, { ...capped, txFeeCap: undefined }, batch)).toMatchObject({ ok: true });
  });

  it("is checked on a cancel's 21000 gas", () => {
    const tiny = { ...policy, txFeeCap: 21_000n * parseGwei("5") };
    const fees = currentFees({ baseFeePerGas: parseGwei("3"), priorityFeePerGas: parseGwei("1") }, tiny, CANCEL_GAS);
    expect(fees).toEqual({ maxFeePerGas: parseGwei("5"), maxPriorityFeePerGas: parseGwei("1") });
    expect(checkFees(fees, { gas: CANCEL_GAS }, tiny)).toEqual({ ok: true });
  });
});

describe("the one check before signing (Trust 4)", () => {
  const priced = { ...policy, gasTokenPrice: parseUnits("3000", 18), maxRewardShareBps: 5_000n };
  const fees = (max: string, tip: string) => ({ maxFeePerGas: parseGwei(max), maxPriorityFeePerGas: parseGwei(tip) });

  it("passes fees within every cap", () => {
    expect(checkFees(fees("21", "1"), { gas: 100_000n }, policy)).toEqual({ ok: true });
  });

  it("names what a violation breaks", () => {
    expect(checkFees(fees("1", "2"), { gas: 100_000n }, policy)).toEqual({ ok: false, reason: "tip_above_max_fee" });
    expect(checkFees(fees("31", "1"), { gas: 100_000n }, { ...policy, maxFeePerGasCap: parseGwei("30") })).toEqual({
      ok: false,
      reason: "max_fee_above_cap",
    });
    // 100k gas x 17 gwei x 3000 = 5.1 USDC: more than half of a 10 USDC reward
    const liquidation = { gas: 100_000n, reward: parseUnits("10", 18) };
    expect(checkFees(fees("17", "1"), liquidation, priced)).toEqual({ ok: false, reason: "max_fee_above_cap" });
    expect(checkFees(fees("16", "1"), liquidation, priced)).toEqual({ ok: true });
    expect(checkFees(fees("16", "1"), { gas: 100_000n }, priced)).toEqual({ ok: true }); // a cancel: no reward share
    const eth = { ...policy, txFeeCap: 10n ** 18n };
    expect(checkFees(fees("400", "1"), { gas: 3_000_000n }, eth)).toEqual({ ok: false, reason: "tx_fee_above_cap" });
  });

  it("fees for a transaction without a reward: at the market, held to the caps even above them (Trust 1)", () => {
    const ctx = { baseFeePerGas: parseGwei("100"), priorityFeePerGas: parseGwei("2") };
    const cap = { ...policy, maxFeePerGasCap: parseGwei("50") };
    expect(currentFees(ctx, policy)).toEqual(fees("202", "2"));
    expect(currentFees(ctx, cap)).toEqual(fees("50", "2"));
    expect(currentFees(ctx, { ...cap, maxFeePerGasCap: 1n })).toEqual({ maxFeePerGas: 1n, maxPriorityFeePerGas: 1n });
  });
});

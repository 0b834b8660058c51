import { parseGwei, parseUnits } from "viem";
import { describe, expect, it } from "vitest";
import { expectedProfit, pickTip, planFees, replacementFees } from "../../src/executor/fees.ts";
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

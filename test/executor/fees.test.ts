import { parseGwei, parseUnits } from "viem";
import { describe, expect, it } from "vitest";
import { expectedProfit, planFees } from "../../src/executor/fees.ts";

const base = {
  baseFeePerGas: parseGwei("10"),
  suggestedMaxFeePerGas: parseGwei("13"), // 1.2 x base + 1 gwei tip
  suggestedPriorityFeePerGas: parseGwei("1"),
  minPriorityFeePerGas: 0n,
  maxFeePerGasCap: undefined,
};

describe("fee plan", () => {
  it("takes the node's suggestion as it is when no floor or ceiling applies", () => {
    expect(planFees(base)).toEqual({ ok: true, maxFeePerGas: parseGwei("13"), maxPriorityFeePerGas: parseGwei("1") });
  });

  it("raises the fee cap with a raised tip, keeping the headroom over the base fee", () => {
    expect(planFees({ ...base, minPriorityFeePerGas: parseGwei("3") })).toEqual({
      ok: true,
      maxFeePerGas: parseGwei("15"),
      maxPriorityFeePerGas: parseGwei("3"),
    });
  });

  it("never offers less than base fee plus tip", () => {
    const plan = planFees({ ...base, suggestedMaxFeePerGas: parseGwei("5") });
    expect(plan).toEqual({ ok: true, maxFeePerGas: parseGwei("11"), maxPriorityFeePerGas: parseGwei("1") });
  });

  it("caps the fee at the ceiling, trimming the tip to fit, and refuses a base fee above it", () => {
    expect(planFees({ ...base, maxFeePerGasCap: parseGwei("10.5") })).toEqual({
      ok: true,
      maxFeePerGas: parseGwei("10.5"),
      maxPriorityFeePerGas: parseGwei("0.5"),
    });
    expect(planFees({ ...base, maxFeePerGasCap: parseGwei("10") })).toEqual({
      ok: false,
      reason: "base_fee_above_cap",
    });
  });
});

describe("expected profit", () => {
  it("is the reward less the gas at the current price, valued in collateral", () => {
    // 200,000 gas at 11 gwei = 0.0022 ETH; at 3,000 per ETH: 6.6 of collateral
    const profit = expectedProfit(
      parseUnits("50", 18),
      200_000n,
      parseGwei("10"),
      parseGwei("1"),
      parseUnits("3000", 18),
    );
    expect(profit).toBe(parseUnits("43.4", 18));
  });
});

import { parseGwei } from "viem";
import { describe, expect, it } from "vitest";
import { type Fees, replacementFees } from "../../src/executor/fees.ts";
import { backrunFees } from "../../src/precompute/backrunFees.ts";

/** What a fee-ordered builder sorts by: the tip a transaction pays above the base fee. */
function effectiveTip(fees: Fees, baseFeePerGas: bigint): bigint {
  const headroom = fees.maxFeePerGas - baseFeePerGas;
  return fees.maxPriorityFeePerGas < headroom ? fees.maxPriorityFeePerGas : headroom;
}

describe("backrun fees", () => {
  const update = { maxFeePerGas: parseGwei("20"), maxPriorityFeePerGas: parseGwei("2") };

  it("pays one wei under the update in both fields", () => {
    expect(backrunFees(update, parseGwei("1"), undefined)).toEqual({
      ok: true,
      maxFeePerGas: update.maxFeePerGas - 1n,
      maxPriorityFeePerGas: update.maxPriorityFeePerGas - 1n,
    });
  });

  it("orders strictly after the update at every base fee, by effective tip and by fee cap", () => {
    for (const ceiling of [undefined, parseGwei("19"), parseGwei("3")]) {
      const ours = backrunFees(update, 0n, ceiling);
      if (!ours.ok) throw new Error("refused");
      for (let base = 0n; base < update.maxFeePerGas; base += parseGwei("0.25")) {
        if (ours.maxFeePerGas < base) continue; // ours cannot be mined at this base fee at all
        expect(effectiveTip(ours, base)).toBeLessThan(effectiveTip(update, base));
      }
      expect(ours.maxFeePerGas).toBeLessThan(update.maxFeePerGas);
    }
  });

  it("a legacy update (gas price in both fields) is ordered after as well", () => {
    const legacy = { maxFeePerGas: parseGwei("5"), maxPriorityFeePerGas: parseGwei("5") };
    const ours = backrunFees(legacy, parseGwei("1"), undefined);
    expect(ours.ok && effectiveTip(ours, parseGwei("1")) < effectiveTip(legacy, parseGwei("1"))).toBe(true);
  });

  it("refuses when nothing can pay less than the update, or when ours could not be mined", () => {
    expect(backrunFees({ maxFeePerGas: parseGwei("10"), maxPriorityFeePerGas: 0n }, 1n, undefined)).toEqual({
      ok: false,
      reason: "update_tip_zero",
    });
    expect(backrunFees(update, parseGwei("4"), parseGwei("3"))).toEqual({
      ok: false,
      reason: "fee_ceiling_below_base_fee",
    });
  });

  it("a tip above what the cap leaves is held to the cap", () => {
    const ours = backrunFees(
      { maxFeePerGas: parseGwei("20"), maxPriorityFeePerGas: parseGwei("10") },
      1n,
      parseGwei("3"),
    );
    expect(ours).toEqual({ ok: true, maxFeePerGas: parseGwei("3"), maxPriorityFeePerGas: parseGwei("3") });
  });
});

describe("backrun fees under a hard fee cap", () => {
  it("always leave room for a cancel that outbids them under the cap", () => {
    for (const cap of [parseGwei("3"), parseGwei("19.99"), parseGwei("200")]) {
      for (const bumpBps of [1_000n, 1_250n]) {
        const update = { maxFeePerGas: parseGwei("300"), maxPriorityFeePerGas: parseGwei("250") };
        const ours = backrunFees(update, 1n, cap, { cap, bumpBps });
        if (!ours.ok) throw new Error(`refused at cap ${cap}`);
        const policy = {
          baseFeeMultiplierBps: 20_000n,
          minPriorityFeePerGas: 1n,
          maxFeePerGasCap: cap,
          gasTokenPrice: undefined,
          maxRewardShareBps: 9_000n,
          minProfit: 0n,
          replacementBumpBps: bumpBps,
        };
        const cancel = replacementFees(ours, { maxFeePerGas: 2n, maxPriorityFeePerGas: 1n }, policy);
        expect(cancel.ok).toBe(true);
        if (cancel.ok) expect(cancel.maxFeePerGas).toBeLessThanOrEqual(cap);
      }
    }
  });
});

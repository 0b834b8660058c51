import { parseGwei, parseUnits } from "viem";
import { describe, expect, it } from "vitest";
import { checkFees, feeCeiling } from "../../src/executor/fees.ts";
import { decidePending, decideStuck } from "../../src/executor/pendingDecision.ts";
import { FEE_POLICY } from "../helpers/fees.ts";

const policy = FEE_POLICY;
const latest = {
  purpose: "liquidate" as const,
  sentAtBlock: 100n,
  maxFeePerGas: parseGwei("20"),
  maxPriorityFeePerGas: parseGwei("1"),
};
const now = { maxFeePerGas: parseGwei("10"), maxPriorityFeePerGas: parseGwei("0.5") };
/** The liquidation's gas limit and expected reward. */
const tx = { gas: 300_000n, reward: parseUnits("50", 18) };
const view = { status: "pending" as const, head: 101n, latest, wanted: true, stuckBlocks: 3n };

describe("a pending transaction at a new head", () => {
  it("waits while it is wanted and younger than stuckBlocks", () => {
    expect(decidePending(view)).toEqual({ type: "wait" });
    expect(decidePending({ ...view, head: 102n })).toEqual({ type: "wait" });
  });

  it("is checked once it has waited stuckBlocks blocks", () => {
    expect(decidePending({ ...view, head: 103n })).toEqual({ type: "check" });
  });

  it("is cancelled as soon as no target is liquidatable, stuck or not", () => {
    expect(decidePending({ ...view, wanted: false })).toEqual({ type: "cancel" });
    expect(decidePending({ ...view, wanted: false, head: 200n })).toEqual({ type: "cancel" });
  });

  it("is not cancelled when the risk model cannot judge (no valid price)", () => {
    expect(decidePending({ ...view, wanted: undefined })).toEqual({ type: "wait" });
  });

  it("sent behind a pending oracle update: held however long it waits, cancelled once its update says so", () => {
    expect(decidePending({ ...view, tied: "hold", head: 200n })).toEqual({ type: "wait" }); // never bumped
    expect(decidePending({ ...view, tied: "hold", wanted: false })).toEqual({ type: "wait" });
    expect(decidePending({ ...view, tied: "cancel" })).toEqual({ type: "cancel" });
    const cancelling = { ...view, status: "cancelling" as const, latest: { ...latest, purpose: "cancel" as const } };
    expect(decidePending({ ...cancelling, tied: "cancel", head: 200n })).toEqual({ type: "wait" });
  });

  it("is not cancelled twice: a cancel in flight is only checked for being stuck", () => {
    const cancelling = { ...view, status: "cancelling" as const, latest: { ...latest, purpose: "cancel" as const } };
    expect(decidePending({ ...cancelling, wanted: false })).toEqual({ type: "wait" });
    expect(decidePending({ ...cancelling, wanted: false, head: 103n })).toEqual({ type: "check" });
  });
});

describe("a stuck or dropped transaction", () => {
  it("still in the pool: replaced at the same nonce with both fees bumped", () => {
    const r = decideStuck(latest, true, true, now, policy, tx);
    expect(r.type).toBe("replace");
    if (r.type !== "replace") return;
    expect(r.purpose).toBe("liquidate");
    expect(r.fees.maxFeePerGas).toBeGreaterThanOrEqual((latest.maxFeePerGas * 1125n) / 1000n);
    expect(r.fees.maxPriorityFeePerGas).toBeGreaterThanOrEqual((latest.maxPriorityFeePerGas * 1125n) / 1000n);
  });

  it("still in the pool but no longer wanted: replaced by a cancel", () => {
    expect(decideStuck(latest, true, false, now, policy, tx)).toMatchObject({ type: "replace", purpose: "cancel" });
  });

  it("held, not under-bumped, when the fee ceiling leaves no room", () => {
    expect(decideStuck(latest, true, true, now, { ...policy, maxFeePerGasCap: parseGwei("21") }, tx)).toEqual({
      type: "hold",
      reason: "at_fee_cap",
    });
  });

  it("dropped with fees that still do: the same bytes again", () => {
    expect(decideStuck(latest, false, true, now, policy, tx)).toEqual({ type: "rebroadcast" });
  });

  it("dropped while the market moved past its fees: signed again with today's", () => {
    const spiked = { maxFeePerGas: parseGwei("90"), maxPriorityFeePerGas: parseGwei("2") };
    expect(decideStuck(latest, false, true, spiked, policy, tx)).toEqual({
      type: "resign",
      purpose: "liquidate",
      fees: spiked,
    });
  });

  it("dropped and no longer wanted: its nonce is filled by a cancel, never the liquidation", () => {
    const r = decideStuck(latest, false, false, now, policy, tx);
    expect(r).toMatchObject({ type: "resign", purpose: "cancel" });
  });

  it("dropped while the base fee is above the ceiling: signed again within it, never at 2x base (Trust 1)", () => {
    const capped = { ...policy, maxFeePerGasCap: parseGwei("50") };
    const spiked = { maxFeePerGas: parseGwei("202"), maxPriorityFeePerGas: parseGwei("60") };
    const r = decideStuck(latest, false, true, spiked, capped, tx);
    expect(r).toEqual({
      type: "resign",
      purpose: "liquidate",
      fees: { maxFeePerGas: parseGwei("50"), maxPriorityFeePerGas: parseGwei("50") },
    });
  });

  it("dropped: signed again within the reward's share of its gas, as its first fees were (Trust 1)", () => {
    // 300k gas at 3000 USDC per ETH, 90% of 50 USDC: at most 50 gwei
    const priced = { ...policy, gasTokenPrice: parseUnits("3000", 18) };
    const ceiling = feeCeiling(priced, tx) as bigint;
    expect(ceiling).toBe(parseGwei("50"));
    const spiked = { maxFeePerGas: parseGwei("90"), maxPriorityFeePerGas: parseGwei("2") };
    const r = decideStuck(latest, false, true, spiked, priced, tx);
    expect(r).toMatchObject({ type: "resign", fees: { maxFeePerGas: ceiling, maxPriorityFeePerGas: parseGwei("2") } });
    if (r.type === "resign") expect(checkFees(r.fees, tx, priced)).toEqual({ ok: true });
  });

  it("dropped at the ceiling already: the same bytes again, nothing higher to sign", () => {
    const capped = { ...policy, maxFeePerGasCap: latest.maxFeePerGas };
    const spiked = { maxFeePerGas: parseGwei("90"), maxPriorityFeePerGas: parseGwei("0.5") };
    expect(decideStuck(latest, false, true, spiked, capped, tx)).toEqual({ type: "rebroadcast" });
  });

  it("a cancel is held to its own 21000 gas, not the liquidation's reward share", () => {
    const priced = { ...policy, gasTokenPrice: parseUnits("3000", 18), txFeeCap: 10n ** 18n };
    const r = decideStuck(latest, true, false, now, priced, { gas: 30_000_000n, reward: 1n });
    expect(r).toMatchObject({ type: "replace", purpose: "cancel" });
  });
});

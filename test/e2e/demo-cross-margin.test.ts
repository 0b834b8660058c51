/**
 * `npm start -- --exchange cross-margin` run to its end in process: the Pyth-priced cross-margin exchange on Anvil
 * (1-second blocks) with a local Hermes, a crash published on Hermes only, and the keeper flagging in the first block
 * after the price, carrying it and paying the oracle's fee, then closing window by window. The figures are the
 * chain's own (src/demo/crossMarginDemo.ts).
 */
import { describe, expect, it } from "vitest";
import { runCrossMarginDemo } from "../../src/demo/crossMarginDemo.ts";
import { captureLogs } from "../helpers/logs.ts";

describe("the demo on the cross-margin exchange", () => {
  it("flags every liquidatable account in the first block after the price, none healthy, and closes them all", async () => {
    const logs = captureLogs();
    const result = await runCrossMarginDemo({ log: logs.log, signal: new AbortController().signal });
    console.log(`[cross-margin demo] ${JSON.stringify(result)}`);
    expect(result.liquidatableAfterCrash).toBeGreaterThanOrEqual(6);
    expect(result.flaggedByKeeper).toBe(result.liquidatableAfterCrash);
    expect(result.flaggedInFirstBlock).toBe(result.liquidatableAfterCrash);
    expect(result.wronglyFlagged).toBe(0);
    expect(result.stillOpen).toBe(0);
    // the largest account is beyond one window's cap: its closes took more than one window
    expect(result.windowsUsed).toBeGreaterThanOrEqual(2);
    // the chain learned the crash only from the keeper: its liquidations paid the oracle's fee
    expect(BigInt(result.feesPaidWei)).toBeGreaterThan(0n);
    expect(logs.events("liquidation_reverted")).toEqual([]);
    const sent = logs.events("liquidation_sent");
    expect(sent.some((e) => typeof e.valueWei === "string" && BigInt(e.valueWei as string) > 0n)).toBe(true);
    expect(logs.events("demo_summary")).toHaveLength(1);
  }, 180_000);
});

/**
 * `npm start -- --exchange perp-v2` run to its end in process: Perp v2 from its npm bytecode on Anvil (1-second
 * blocks), a crash of both markets, and the keeper liquidating through its contract, partly where the protocol
 * allows only part, and closing what it took over. The figures are the chain's own (src/demo/perpV2Demo.ts).
 */
import { describe, expect, it } from "vitest";
import { runPerpV2Demo } from "../../src/demo/perpV2Demo.ts";
import { captureLogs } from "../helpers/logs.ts";

describe("the demo on Perp v2", () => {
  it("liquidates every account the crash makes liquidatable, some over several calls, and ends holding nothing", async () => {
    const logs = captureLogs();
    const result = await runPerpV2Demo({ log: logs.log, signal: new AbortController().signal });
    console.log(`[perp-v2 demo] ${JSON.stringify(result)}`);
    // the scenario's mix: several accounts under maintenance, some only partly liquidatable
    expect(result.liquidatableAfterCrash).toBeGreaterThanOrEqual(8);
    expect(result.liquidatedByKeeper).toBe(result.liquidatableAfterCrash);
    expect(result.partiallyLiquidated).toBeGreaterThanOrEqual(1);
    expect(result.liquidations).toBeGreaterThan(result.liquidatedByKeeper);
    expect(result.stillLiquidatable).toBe(0);
    // what it took over, closed through the pool
    expect(result.inventoryClosed).toBeGreaterThanOrEqual(1);
    expect(result.inventoryFlat).toBe(true);
    expect(logs.events("liquidation_reverted")).toEqual([]);
    expect(logs.events("demo_summary")).toHaveLength(1);
  }, 240_000);
});

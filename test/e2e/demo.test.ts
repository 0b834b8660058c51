/**
 * The main job (`npm start`, the embedded demo) run to its end in process: a local Anvil, the reference exchange,
 * the price path with its crash, and the keeper liquidating every position that falls below maintenance. With
 * `--precompute backrun` (1-second blocks, liquidations prepared on pending oracle updates) the liquidations land in
 * the blocks of the updates that cause them.
 */
import { describe, expect, it } from "vitest";
import { runDemo } from "../../src/demo/demo.ts";
import { captureLogs } from "../helpers/logs.ts";

describe("the demo", () => {
  it("liquidates every position the crash puts below maintenance, and leaves the healthy ones open", async () => {
    const logs = captureLogs();
    const result = await runDemo({ log: logs.log, stepMs: 300, signal: new AbortController().signal });
    expect(result.stillLiquidatable).toBe(0);
    expect(result.liquidatedByKeeper).toBeGreaterThan(0);
    expect(result.openPositions).toBeGreaterThan(0);
    expect(logs.events("liquidation_confirmed")).toHaveLength(result.liquidatedByKeeper);
    expect(logs.events("liquidation_reverted")).toHaveLength(0);
    expect(logs.events("oracle_update_pending")).toHaveLength(0); // precompute is off by default
  }, 120_000);

  it("--precompute backrun: the same positions, liquidated in the blocks of the updates that crash them", async () => {
    const logs = captureLogs();
    const result = await runDemo({
      log: logs.log,
      stepMs: 300,
      precompute: "backrun",
      signal: new AbortController().signal,
    });
    expect(result.stillLiquidatable).toBe(0);
    expect(result.liquidatedByKeeper).toBeGreaterThan(0);
    expect(logs.events("liquidation_reverted")).toHaveLength(0);
    expect(logs.events("oracle_update_pending").some((l) => Number(l.liquidatable) > 0)).toBe(true);
    const confirmed = logs.events("liquidation_confirmed");
    expect(confirmed).toHaveLength(result.liquidatedByKeeper);
    // an update sent in the last milliseconds of a block can miss it: most, not necessarily all, land in its block
    const sameBlock = confirmed.filter((l) => l.blocksAfterPriceUpdate === 0).length;
    expect(sameBlock).toBeGreaterThanOrEqual(Math.ceil(confirmed.length * 0.8));
  }, 120_000);
});

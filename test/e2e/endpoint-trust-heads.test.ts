/**
 * Two endpoints in front of one node, one of which answers wrongly but well (test/helpers/inconsistentAnswers.ts),
 * each case in both orders: a head lagging 10 blocks behind the node's (nonces and receipts from the tip), and logs
 * answered as a backend on another fork would (every block hash made up). See endpoint-trust.test.ts for the rest of
 * the suite and what every case ends with (test/helpers/trust.ts, verdict).
 */
import { describe, expect, it } from "vitest";
import { liveFault, ORDERS, ourLiquidations, withRun } from "../helpers/trust.ts";

const LAG_BLOCKS = 10;

describe.each(ORDERS)("two endpoints, $order", ({ badFirst }) => {
  it(`a head lagging ${LAG_BLOCKS} blocks while nonces and receipts come from the tip`, async () => {
    await withRun({ badFirst }, async (run) => {
      const { dropBlock } = await liveFault(run, { kind: "laggingHead", blocks: LAG_BLOCKS }, "rpc_endpoint_lagging");
      // followed from the tip: each liquidation mined fewer blocks after the price drop than the laggard is behind
      const sent = await ourLiquidations(run, dropBlock - 1n, await run.head());
      expect.soft(sent.length, "our liquidations after the drop").toBeGreaterThan(0);
      const late = sent.map((s) => Number(s.block - dropBlock));
      expect
        .soft(Math.max(...late), `blocks from the price drop to each liquidation (${late.join(", ")})`)
        .toBeLessThan(LAG_BLOCKS);
    });
  }, 120_000);

  it("logs of another fork (every block hash made up) while following", async () => {
    await withRun({ badFirst }, async (run) => {
      await liveFault(run, { kind: "otherForkLogs" }, "rpc_endpoint_demoted");
    });
  }, 120_000);
});

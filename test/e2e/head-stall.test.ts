/** A head that stops moving is reported once (head_stalled), and its return too (head_resumed). */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { type DevnetFixture, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;

beforeAll(async () => {
  net = await startDevnet({ accounts: 4 });
  ({ keeper, logs } = await startTestKeeper(net, { pollIntervalMs: 50, headStallSeconds: 1 }));
}, 60_000);

afterAll(async () => {
  await shutdown(keeper, net);
});

describe("a stalled head", () => {
  it("is reported once while no block comes, and its return when one does", async () => {
    // automine with no transactions: the chain does not move
    await until("head_stalled", () => logs.events("head_stalled").length === 1, 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(logs.events("head_stalled")).toHaveLength(1); // once, not every poll
    expect(Number(logs.events("head_stalled")[0]?.silentMs)).toBeGreaterThanOrEqual(1000);
    await net.ex.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await until("head_resumed", () => logs.events("head_resumed").length === 1, 10_000);
    expect(Number(logs.events("head_resumed")[0]?.stalledMs)).toBeGreaterThanOrEqual(1000);
  }, 30_000);
});

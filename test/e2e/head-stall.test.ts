/**
 * A head that stops moving is reported once (head_stalled), and its return too (head_resumed). The keeper's requests
 * for the head are counted at a proxy: each poll is followed by a stall check, so "once" is judged over many of them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { type DevnetFixture, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { type RpcProxy, startRpcProxy } from "../helpers/rpcProxy.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;
let proxy: RpcProxy | undefined;
/** Requests for the latest block (the watcher's poll for the head) the proxy has received. */
let headPolls = 0;

beforeAll(async () => {
  net = await startDevnet({ accounts: 4 });
  proxy = await startRpcProxy(net.anvil.rpcUrl, (body) => {
    if (body.includes('"eth_getBlockByNumber"') && body.includes('"latest"')) headPolls++;
    return undefined;
  });
  ({ keeper, logs } = await startTestKeeper(net, { pollIntervalMs: 50, headStallSeconds: 1 }, undefined, {
    rpcUrl: proxy.url,
  }));
}, 60_000);

afterAll(async () => {
  proxy?.close();
  await shutdown(keeper, net);
});

describe("a stalled head", () => {
  it("is reported once while no block comes, and its return when one does", async () => {
    // automine with no transactions: the chain does not move
    await until("head_stalled", () => logs.events("head_stalled").length === 1, 10_000);
    // ten more polls of the unmoved head, each followed by the stall check: every one had the chance to say it again
    const polled = headPolls;
    await until("ten more polls of the stalled head", () => headPolls >= polled + 10, 10_000);
    expect(logs.events("head_stalled")).toHaveLength(1); // once, not every poll
    expect(Number(logs.events("head_stalled")[0]?.silentMs)).toBeGreaterThanOrEqual(1000);
    await net.ex.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await until("head_resumed", () => logs.events("head_resumed").length === 1, 10_000);
    expect(Number(logs.events("head_resumed")[0]?.stalledMs)).toBeGreaterThanOrEqual(1000);
  }, 30_000);
});

/**
 * A WebSocket subscription that stays open but stops announcing heads (a node that dropped it without closing the
 * socket): the watcher's fallback poll finds heads it was never told of, and after two of them the subscription is
 * renewed on a fresh connection, with no keep-alive ping needed. Every block is processed meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import { type FaultProxy, startFaultProxy } from "../helpers/faultProxy.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let proxy: FaultProxy;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;
let miner: ReturnType<typeof setInterval> | undefined;

beforeAll(async () => {
  net = await startDevnet({ accounts: 6 });
  await openPositions(net.ex, ethLongs(2));
  proxy = await startFaultProxy(net.anvil.rpcUrl);
  // the fallback poll comes every 5 s (pollIntervalMs under it)
  ({ keeper, logs } = await startTestKeeper(net, { pollIntervalMs: 1_000 }, undefined, {
    rpcUrl: proxy.url,
    wsUrl: proxy.wsUrl,
  }));
  const k = keeper;
  await until("subscribed", () => proxy.stats.wsSubscribes === 1 && k.watcher.latestTick !== undefined, 20_000);
  const rpc = net.anvil.rpcUrl;
  miner = setInterval(() => {
    fetch(rpc, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "evm_mine", params: [] }),
    }).catch(() => {});
  }, 500);
}, 60_000);

afterAll(async () => {
  if (miner) clearInterval(miner);
  try {
    await shutdown(keeper, net);
  } finally {
    await proxy?.close();
  }
});

describe("a silent WebSocket subscription", () => {
  it("is renewed on a fresh connection after the fallback poll finds two heads it never announced", async () => {
    const k = keeper as RunningKeeper;
    await proxy.set({ kind: "wsSilence" });
    const connections = proxy.stats.wsConnections;
    await until("a new connection", () => proxy.stats.wsConnections > connections, 20_000);
    const renewal = logs.events("rpc_error").find((l) => l.step === "subscribe");
    expect(String(renewal?.error)).toMatch(/silent/);
    await until("subscribed again", () => proxy.stats.wsSubscribes >= 2, 10_000);
    // announcements flow again on the new connection: the keeper is at the head within a block or two
    const seen = proxy.stats.wsNotifications;
    await until("notifications on the new connection", () => proxy.stats.wsNotifications >= seen + 2, 5_000);
    const at = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
    await until("the keeper at the head", () => (k.watcher.latestTick?.blockNumber ?? 0n) >= at, 3_000);
  }, 40_000);
});

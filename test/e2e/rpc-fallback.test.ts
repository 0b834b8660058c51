/**
 * Several RPC endpoints: when the first dies mid-run, reads and broadcasts go on through the next, and the keeper
 * still liquidates once, with no gap.
 */
import { parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import { type RpcProxy, startRpcProxy } from "../helpers/rpcProxy.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
const proxies: RpcProxy[] = [];

beforeAll(async () => {
  net = await startDevnet({ accounts: 8 });
  await openPositions(net.ex, ethLongs(2));
  proxies.push(await startRpcProxy(net.anvil.rpcUrl), await startRpcProxy(net.anvil.rpcUrl));
  ({ keeper } = await startTestKeeper(net, { pollIntervalMs: 50, batching: false, rpcRankIntervalMs: 250 }, undefined, {
    rpcUrl: proxies.map((p) => p.url).join(","),
  }));
  const k = keeper;
  await until("backfill", () => k.book.positions.size === 2 && k.watcher.latestTick !== undefined);
}, 60_000);

afterAll(async () => {
  await shutdown(keeper, net);
  for (const p of proxies) p.close();
});

describe("several RPC endpoints", () => {
  it("goes on through the next endpoint when the first dies, and liquidates once", async () => {
    const k = keeper as RunningKeeper;
    const [first, second] = proxies as [RpcProxy, RpcProxy];
    expect(first.calls).toBeGreaterThan(0);
    first.close();
    const before = second.calls;
    await net.ex.setPrice(ETH, parseUnits("2375", ORACLE_DECIMALS));
    await until("both liquidated", () => k.executor.stats.confirmed === 2, 20_000);
    expect(second.calls).toBeGreaterThan(before);
    const address = k.addresses[0] as `0x${string}`;
    const [latest, pending] = await Promise.all([
      net.ex.publicClient.getTransactionCount({ address }),
      net.ex.publicClient.getTransactionCount({ address, blockTag: "pending" }),
    ]);
    expect([latest, pending]).toEqual([2, 2]);
  }, 40_000);

  it("sends nothing more to any endpoint once stopped (the endpoint ranking goes quiet too)", async () => {
    const k = keeper as RunningKeeper;
    const second = proxies[1] as RpcProxy;
    await k.stop("test: quiet after stop");
    keeper = undefined;
    await new Promise((r) => setTimeout(r, 400)); // a ping already on its way when it stopped arrives
    const after = second.calls;
    // rpcRankIntervalMs is 250 here: several ranking rounds would have pinged by now
    await new Promise((r) => setTimeout(r, 1_500));
    expect(second.calls).toBe(after);
  }, 20_000);
});

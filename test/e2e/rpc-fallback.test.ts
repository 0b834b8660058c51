/**
 * Several RPC endpoints: when the first dies mid-run, reads and broadcasts go on through the next, and the keeper
 * still liquidates once, with no gap. Once stopped, it sends nothing more to any endpoint: the endpoint ranking's
 * pings (eth_blockNumber, asked by nothing else of the keeper), seen at each proxy while it runs, end too.
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
/** Per proxy, the endpoint ranking's pings (eth_blockNumber) received. */
const pings = [0, 0];

beforeAll(async () => {
  net = await startDevnet({ accounts: 8 });
  await openPositions(net.ex, ethLongs(2));
  for (const i of [0, 1]) {
    proxies.push(
      await startRpcProxy(net.anvil.rpcUrl, (body) => {
        if (body.includes('"eth_blockNumber"')) pings[i] = (pings[i] ?? 0) + 1;
        return undefined;
      }),
    );
  }
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
    // the control: while it runs, the ranking pings this endpoint; how long three pings take sizes the quiet window
    const live = { pings: pings[1] ?? 0, at: performance.now() };
    await until("three ranking pings of the live endpoint", () => (pings[1] ?? 0) >= live.pings + 3, 10_000);
    const windowMs = Math.max(1_500, performance.now() - live.at);
    await k.stop("test: quiet after stop");
    keeper = undefined;
    // the scenario, not a condition: a request already on the wire when it stopped may still land (not one sent after)
    await new Promise((r) => setTimeout(r, 400));
    const after = second.calls;
    // the scenario, not a condition: quiet for as long as three live pings took (rpcRankIntervalMs is 250 here), at
    // least 1.5 s; nothing the keeper does shows that rounds it no longer runs would have come
    await new Promise((r) => setTimeout(r, windowMs));
    expect(second.calls).toBe(after);
  }, 20_000);
});

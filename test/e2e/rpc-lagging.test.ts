/**
 * Several RPC endpoints, the first of which lags: its head is frozen while the chain moves on, and it answers
 * everything else correctly. viem's fallback alone would keep reading from it (it answers); the keeper's ranking
 * ping sees its head behind the other's, ranks it last (rpc_endpoint_lagging), and follows the chain through the
 * other. Transactions go to every endpoint.
 */
import { parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { type RpcProxy, startRpcProxy } from "../helpers/rpcProxy.ts";
import { until } from "../helpers/wait.ts";

type Call = { id: number; method: string; params: unknown[] };
type Answer = { id: number; result?: unknown };

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;
const proxies: RpcProxy[] = [];
const sends = [0, 0];
let frozen: { number: string; block: unknown } | undefined;

const head = () => net.ex.publicClient.getBlockNumber({ cacheTime: 0 });

/** A proxy that counts broadcasts; with `lagging`, answers the head as it was when frozen. */
async function proxy(index: number, lagging: boolean): Promise<RpcProxy> {
  return startRpcProxy(net.anvil.rpcUrl, async (body) => {
    const parsed = JSON.parse(body) as Call | Call[];
    const calls = Array.isArray(parsed) ? parsed : [parsed];
    sends[index] = (sends[index] ?? 0) + calls.filter((c) => c.method === "eth_sendRawTransaction").length;
    const headCall = (c: Call) =>
      c.method === "eth_blockNumber" || (c.method === "eth_getBlockByNumber" && c.params[0] === "latest");
    if (!lagging || !frozen || !calls.some(headCall)) return undefined;
    const upstream = await fetch(net.anvil.rpcUrl, {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
    });
    const answered = (await upstream.json()) as Answer | Answer[];
    const answers = Array.isArray(answered) ? answered : [answered];
    const f = frozen;
    const patched = answers.map((a) => {
      const call = calls.find((c) => c.id === a.id);
      if (!call || !headCall(call)) return a;
      return { ...a, result: call.method === "eth_blockNumber" ? f.number : f.block };
    });
    return { status: 200, text: JSON.stringify(Array.isArray(answered) ? patched : patched[0]) };
  });
}

beforeAll(async () => {
  net = await startDevnet({ accounts: 8 });
  await openPositions(net.ex, ethLongs(2));
  proxies.push(await proxy(0, true), await proxy(1, false));
  const block = await net.ex.publicClient.request({ method: "eth_getBlockByNumber", params: ["latest", false] });
  frozen = { number: (block as { number: string }).number, block };
  ({ keeper, logs } = await startTestKeeper(
    net,
    { pollIntervalMs: 50, batching: false, rpcRankIntervalMs: 300, maxEndpointLagBlocks: 2 },
    undefined,
    { rpcUrl: proxies.map((p) => p.url).join(",") },
  ));
  const k = keeper;
  await until("backfill", () => k.book.positions.size === 2 && k.watcher.latestTick !== undefined);
}, 60_000);

afterAll(async () => {
  await shutdown(keeper, net);
  for (const p of proxies) p.close();
});

describe("a lagging RPC endpoint", () => {
  it("is ranked out, and the keeper follows the chain through the other", async () => {
    const k = keeper as RunningKeeper;
    for (let i = 0; i < 5; i++) await net.ex.publicClient.request({ method: "evm_mine", params: [] } as never);
    const top = await head();
    await until("the keeper at the real head", () => k.watcher.latestTick?.blockNumber === top, 10_000);
    // the ranking may have put the other first already (by latency): the lag is seen at its next ping round
    await until("the laggard reported", () => logs.events("rpc_endpoint_lagging").length > 0, 5_000);
    const lagging = logs.events("rpc_endpoint_lagging");
    expect(lagging.length).toBe(1);
    expect(lagging[0]?.endpoint).toBe(proxies[0]?.url);
    expect(BigInt(lagging[0]?.lagBlocks as string)).toBeGreaterThan(2n);
  }, 30_000);

  it("broadcasts each transaction to every endpoint, and liquidates once", async () => {
    const k = keeper as RunningKeeper;
    const before = [...sends];
    await net.ex.setPrice(ETH, parseUnits("2375", ORACLE_DECIMALS));
    await until("both liquidated", () => k.executor.stats.confirmed === 2, 20_000);
    expect((sends[0] ?? 0) - (before[0] ?? 0)).toBeGreaterThanOrEqual(2);
    expect((sends[1] ?? 0) - (before[1] ?? 0)).toBeGreaterThanOrEqual(2);
    const address = k.addresses[0] as `0x${string}`;
    expect(await net.ex.publicClient.getTransactionCount({ address })).toBe(2);
  }, 30_000);

  it("is taken back once it catches up", async () => {
    frozen = undefined;
    await until("caught up", () => logs.events("rpc_endpoint_caught_up").length === 1, 10_000);
  }, 15_000);
});

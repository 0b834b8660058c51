/**
 * Following a head that extends the last one costs one round trip: its logs by block hash and every oracle's answer
 * at that hash (one Multicall3 aggregate3, or one eth_call per oracle where the chain has no Multicall3), in one
 * JSON-RPC batch. Heads come over WebSocket (no request for the head itself); every HTTP request is counted at a
 * proxy, JSON-RPC batch elements one by one.
 */
import { type Hex, parseUnits } from "viem";
import { afterEach, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { MULTICALL3_ADDRESS } from "../../src/prices/chainlink/oracle.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import { type RpcProxy, startRpcProxy } from "../helpers/rpcProxy.ts";
import { settled, until } from "../helpers/wait.ts";

let net: DevnetFixture | undefined;
let keeper: RunningKeeper | undefined;
let proxy: RpcProxy | undefined;

afterEach(async () => {
  proxy?.close();
  await shutdown(keeper, net);
  keeper = undefined;
  net = undefined;
});

type Call = { method: string; params: unknown[] };

async function follow(withMulticall: boolean) {
  const n = await startDevnet({ accounts: 8 });
  net = n;
  if (!withMulticall)
    await n.ex.publicClient.request({ method: "anvil_setCode", params: [MULTICALL3_ADDRESS, "0x"] } as never);
  await openPositions(n.ex, ethLongs(2));
  const calls: Call[][] = [];
  proxy = await startRpcProxy(n.anvil.rpcUrl, (body) => {
    const parsed = JSON.parse(body) as Call | Call[];
    calls.push(Array.isArray(parsed) ? parsed : [parsed]);
    return undefined;
  });
  const started = await startTestKeeper(n, { pollIntervalMs: 20_000 }, undefined, {
    rpcUrl: proxy.url,
    wsUrl: n.anvil.rpcUrl.replace("http://", "ws://"),
  });
  keeper = started.keeper;
  const k = keeper;
  await until("backfill and first tick", () => k.book.positions.size === 2 && k.watcher.latestTick !== undefined);
  /** Mines a block (or lets `send` mine it); the HTTP requests from then until the keeper ticked it and is idle. */
  const followed = async (send?: () => Promise<unknown>): Promise<Call[][]> => {
    const before = calls.length;
    const head = await n.ex.publicClient.getBlockNumber({ cacheTime: 0 });
    if (send) await send();
    else await n.ex.publicClient.request({ method: "evm_mine", params: [] } as never);
    await until(`tick at block ${head + 1n}`, () => (k.watcher.latestTick?.blockNumber ?? 0n) === head + 1n, 5_000);
    await settled(k); // what the tick set off is done: nothing of this head comes later
    return calls.slice(before);
  };
  // start-up is over once a head comes over the subscription: a fresh subscription brings one more poll for the head
  // (eth_getBlockByNumber), and a head the keeper followed without asking for it was announced by a live one
  await until(
    "a head followed over the subscription",
    async () => !(await followed()).flat().some((c) => c.method === "eth_getBlockByNumber"),
    20_000,
  );
  const perHead: Call[][][] = [];
  for (let i = 0; i < 4; i++) {
    // the third block carries a price update (automine: its own block): the tick must show it, read at that block
    perHead.push(await followed(i === 2 ? () => n.ex.setPrice(ETH, parseUnits("2490", ORACLE_DECIMALS)) : undefined));
  }
  return { perHead, k };
}

describe("one round trip per head", () => {
  it("with Multicall3: one HTTP request per head, holding eth_getLogs by block hash and one eth_call", async () => {
    const { perHead } = await follow(true);
    for (const requests of perHead) {
      expect(requests.length).toBe(1);
      const methods = (requests[0] as Call[]).map((c) => c.method).sort();
      expect(methods).toEqual(["eth_call", "eth_getLogs"]);
      const [call] = (requests[0] as Call[]).filter((c) => c.method === "eth_call");
      expect((call?.params[0] as { to: Hex } | undefined)?.to.toLowerCase()).toBe(MULTICALL3_ADDRESS.toLowerCase());
      expect(call?.params[1]).toHaveProperty("blockHash");
      const [logs] = (requests[0] as Call[]).filter((c) => c.method === "eth_getLogs");
      expect(logs?.params[0]).toHaveProperty("blockHash");
    }
  }, 60_000);

  it("without Multicall3: still one HTTP request per head, one eth_call per oracle, and the prices are right", async () => {
    const { perHead, k } = await follow(false);
    const markets = k.book.markets.size;
    for (const requests of perHead) {
      expect(requests.length).toBe(1);
      const methods = (requests[0] as Call[]).map((c) => c.method);
      expect(methods.filter((m) => m === "eth_call").length).toBe(markets);
      expect(methods.filter((m) => m === "eth_getLogs").length).toBe(1);
    }
    expect(k.watcher.latestTick?.prices.get(ETH)).toBe(parseUnits("2490", 18));
  }, 60_000);
});

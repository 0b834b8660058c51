/**
 * Perp v2 behind an endpoint whose eth_getLogs answers carry no `blockTimestamp` (providers that predate geth 1.16
 * leave it out): the keeper takes each log's time from its block's header, so its book is the one a backfill with
 * timestamps builds (funding accrues by the second, so a wrong or missing time would show in the accounts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRef } from "../../src/state/events.ts";
import {
  freshBook,
  openTraders,
  type PerpV2Fixture,
  startPerpV2Fixture,
  startPerpV2Keeper,
  stopKeeper,
  type TestKeeper,
} from "../helpers/perpV2.ts";
import { type RpcProxy, startRpcProxy } from "../helpers/rpcProxy.ts";
import { until } from "../helpers/wait.ts";

let fx: PerpV2Fixture | undefined;
let proxy: RpcProxy | undefined;
let run: TestKeeper | undefined;
let stripped = 0;

beforeAll(async () => {
  fx = await startPerpV2Fixture();
  const upstream = fx.anvil.rpcUrl;
  // every eth_getLogs answer (alone or in a batch) loses its logs' blockTimestamp
  proxy = await startRpcProxy(upstream, async (body) => {
    if (!body.includes("eth_getLogs")) return undefined;
    const answer = await fetch(upstream, { method: "POST", headers: { "content-type": "application/json" }, body });
    const text = (await answer.text()).replace(/,?"blockTimestamp":"0x[0-9a-f]+"/g, () => {
      stripped++;
      return "";
    });
    return { status: 200, text };
  });
}, 240_000);

afterAll(async () => {
  try {
    await stopKeeper(run?.keeper);
    proxy?.close();
  } finally {
    await fx?.stop();
  }
});

describe("Perp v2 without blockTimestamp in logs", () => {
  it("backfills and follows with each log's time from its header; the book equals a timed backfill's", async () => {
    const f = fx as PerpV2Fixture;
    const long = (market: "vETH" | "vBTC", notional: string) => ({ market, side: "long" as const, notional });
    // history before the keeper starts (backfilled), then more while it follows
    await openTraders(f.dev, 10, [
      { name: "a", usdc: "2000", legs: [long("vETH", "5000")] },
      { name: "b", usdc: "3000", legs: [long("vETH", "4000"), long("vBTC", "3000")] },
    ]);
    run = await startPerpV2Keeper({ ...f, anvil: { ...f.anvil, rpcUrl: (proxy as RpcProxy).url } });
    const logs = run.logs;
    await until("backfill_completed", () => logs.events("backfill_completed").length > 0, 60_000);
    await openTraders(f.dev, 12, [{ name: "c", usdc: "2500", legs: [long("vBTC", "6000")] }]);
    const head = await f.head();
    const k = run.keeper;
    await until("the keeper at the head", () => (k.watcher.latestTick?.blockNumber ?? -1n) >= head, 60_000);
    const state = k.book.state();
    const fresh = await freshBook(f, state.cursor as LogRef);
    expect(stripped).toBeGreaterThan(0); // the endpoint did leave the times out
    expect(logs.events("rpc_answer_refuted")).toEqual([]);
    expect(fresh.accounts.size).toBeGreaterThanOrEqual(3);
    expect(new Map(state.accounts)).toEqual(fresh.accounts);
  }, 240_000);
});

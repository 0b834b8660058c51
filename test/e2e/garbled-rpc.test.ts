/**
 * An RPC that takes the broadcast but garbles its answer: the keeper settles the doubt by looking its own hash up,
 * counts the transaction as sent, and sees it to inclusion; it never guesses and never sends a second one. And an
 * RPC that cannot answer simulations for a while: no verdict, no cooldown, planned again once it answers.
 */
import { parseUnits, toFunctionSelector } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { type RpcProxy, startRpcProxy } from "../helpers/rpcProxy.ts";
import { until } from "../helpers/wait.ts";

const LIQUIDATE_SELECTOR = toFunctionSelector("liquidate(address,uint256)");
let net: DevnetFixture;
let proxy: RpcProxy | undefined;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;
let garbled = 0;
/** While set, the proxy answers every simulation of a liquidation with HTTP 502: unreachable for simulations. */
let failEstimates = false;
let failedEstimates = 0;

beforeAll(async () => {
  net = await startDevnet({ accounts: 12 });
  await openPositions(net.ex, ethLongs(2));
  // every answer to a broadcast comes back as broken JSON; simulations fail while failEstimates is set
  proxy = await startRpcProxy(net.anvil.rpcUrl, async (body) => {
    if (body.includes("eth_sendRawTransaction")) {
      garbled++;
      return "forward-and-cut";
    }
    if (failEstimates && body.includes(LIQUIDATE_SELECTOR.slice(2))) {
      failedEstimates++;
      return { status: 502, text: "bad gateway" };
    }
    return undefined;
  });
  ({ keeper, logs } = await startTestKeeper(net, { pollIntervalMs: 50, batching: false }, undefined, {
    rpcUrl: proxy.url,
  }));
}, 60_000);

afterAll(async () => {
  await shutdown(keeper, net);
  proxy?.close();
});

describe("garbled broadcast answers", () => {
  it("looks the hash up, counts the liquidation as sent, and it lands once", async () => {
    const k = keeper as RunningKeeper;
    await until("backfill", () => k.book.positions.size === 2);
    await net.ex.setPrice(ETH, parseUnits("2375", ORACLE_DECIMALS));
    await until("both liquidated on chain", async () => {
      const sizes = await Promise.all([2, 3].map((t) => net.ex.position(net.ex.trader(t).account.address, ETH)));
      return sizes.every((p) => p.size === 0n);
    });
    await until("both confirmed", () => k.executor.stats.confirmed === 2);
    await until("both broadcasts answered", () => logs.events("liquidation_sent").length === 2, 15_000);
    expect(garbled).toBeGreaterThanOrEqual(2);
    expect(logs.events("liquidation_sent")).toHaveLength(2);
    expect(k.executor.stats.sent).toBe(2);
    expect(logs.events("liquidation_failed")).toHaveLength(0);
    expect(logs.lines.filter((l) => Number(l.level) >= 50)).toHaveLength(0);
    const address = k.addresses[0] as `0x${string}`;
    expect(await net.ex.publicClient.getTransactionCount({ address })).toBe(2);
  }, 60_000);

  it("takes a simulation the RPC could not answer as no verdict: rpc_error, no cooldown, liquidated once it answers", async () => {
    const k = keeper as RunningKeeper;
    const specs = [4, 5].map((trader) => ({
      trader,
      marketId: ETH,
      side: "long" as const,
      margin: "200",
      leverage: 20,
    }));
    await openPositions(net.ex, specs);
    await until("indexed", () => k.book.positions.size === 2);
    failEstimates = true;
    await net.ex.setPrice(ETH, parseUnits("2250", ORACLE_DECIMALS));
    await until("the unanswered simulation reported", () =>
      logs.events("rpc_error").some((l) => l.step === "simulate"),
    );
    expect(failedEstimates).toBeGreaterThan(0);
    expect(logs.events("liquidation_skipped").filter((l) => l.reason === "simulation_failed")).toHaveLength(0);
    failEstimates = false;
    await net.ex.publicClient.request({ method: "evm_mine" as never, params: [] as never }); // one new head
    await until("both liquidated on chain", async () => {
      const sizes = await Promise.all(
        specs.map((sp) => net.ex.position(net.ex.trader(sp.trader).account.address, ETH)),
      );
      return sizes.every((p) => p.size === 0n);
    });
    await until("both confirmed", () => k.executor.stats.confirmed === 4);
  }, 60_000);
});

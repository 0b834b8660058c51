/**
 * An RPC that takes the broadcast but garbles its answer: the keeper settles the doubt by looking its own hash up,
 * counts the transaction as sent, and sees it to inclusion; it never guesses and never sends a second one. And an
 * RPC that cannot answer simulations for a while: no verdict, no cooldown, planned again once it answers.
 */
import { createServer, type Server } from "node:http";
import { parseUnits, toFunctionSelector } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningKeeper, startKeeper } from "../../src/app.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { devnetConfig } from "../../src/devnet/config.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, shutdown, startDevnet, testStateDir } from "../helpers/devnet.ts";
import { captureLogs } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

const LIQUIDATE_SELECTOR = toFunctionSelector("liquidate(address,uint256)");
let net: DevnetFixture;
let proxy: Server;
let keeper: RunningKeeper | undefined;
let garbled = 0;
/** While set, the proxy answers every simulation of a liquidation with HTTP 502: unreachable for simulations. */
let failEstimates = false;
let failedEstimates = 0;

/** Forwards to Anvil; every answer to a request that carries eth_sendRawTransaction comes back as broken JSON. */
function garblingProxy(target: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", async () => {
      if (failEstimates && !body.includes("eth_sendRawTransaction") && body.includes(LIQUIDATE_SELECTOR.slice(2))) {
        failedEstimates++;
        res.writeHead(502).end("bad gateway");
        return;
      }
      const upstream = await fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body });
      const text = await upstream.text();
      res.writeHead(200, { "content-type": "application/json" });
      if (body.includes("eth_sendRawTransaction")) {
        garbled++;
        res.end(text.slice(0, Math.floor(text.length / 2))); // the node took it; the answer is cut in half
      } else {
        res.end(text);
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({ server, url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}` });
    }),
  );
}

beforeAll(async () => {
  net = await startDevnet({ accounts: 12 });
  await openPositions(
    net.ex,
    [2, 3].map((trader) => ({ trader, marketId: ETH, side: "long" as const, margin: "200", leverage: 20 })),
  );
  const p = await garblingProxy(net.anvil.rpcUrl);
  proxy = p.server;
  const logs = captureLogs();
  keeper = await startKeeper({
    config: devnetConfig(net.ex.d, p.url, { pollIntervalMs: 50, batching: false, stateDir: testStateDir() }),
    rpcUrl: p.url,
    privateKeys: [ANVIL_KEYS[1]],
    log: logs.log,
  });
  keeper.done.catch(() => {});
  Object.assign(globalThis, { garbledLogs: logs });
}, 60_000);

afterAll(async () => {
  await shutdown(keeper, net);
  proxy?.close();
});

describe("garbled broadcast answers", () => {
  it("looks the hash up, counts the liquidation as sent, and it lands once", async () => {
    const logs = (globalThis as unknown as { garbledLogs: ReturnType<typeof captureLogs> }).garbledLogs;
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
    expect(logs.lines.filter((l) => l.level === "error")).toHaveLength(0);
    const address = k.addresses[0] as `0x${string}`;
    expect(await net.ex.publicClient.getTransactionCount({ address })).toBe(2);
  }, 60_000);

  it("takes a simulation the RPC could not answer as no verdict: rpc_error, no cooldown, liquidated once it answers", async () => {
    const logs = (globalThis as unknown as { garbledLogs: ReturnType<typeof captureLogs> }).garbledLogs;
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

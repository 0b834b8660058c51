/**
 * Several RPC endpoints: when the first dies mid-run, reads and broadcasts go on through the next, and the keeper
 * still liquidates once, with no gap.
 */
import { createServer, type Server } from "node:http";
import { parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningKeeper, startKeeper } from "../../src/app.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { devnetConfig } from "../../src/devnet/config.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, shutdown, startDevnet, testStateDir } from "../helpers/devnet.ts";
import { captureLogs } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
const proxies: { server: Server; url: string; calls: number }[] = [];
const logs = captureLogs();

/** A plain forwarder to Anvil that counts what it serves. */
function forwarder(target: string): Promise<{ server: Server; url: string; calls: number }> {
  const entry = { server: undefined as unknown as Server, url: "", calls: 0 };
  entry.server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", async () => {
      entry.calls++;
      const upstream = await fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body });
      res.writeHead(200, { "content-type": "application/json" }).end(await upstream.text());
    });
  });
  return new Promise((resolve) =>
    entry.server.listen(0, "127.0.0.1", () => {
      const address = entry.server.address();
      entry.url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
      resolve(entry);
    }),
  );
}

beforeAll(async () => {
  net = await startDevnet({ accounts: 8 });
  await openPositions(
    net.ex,
    [2, 3].map((trader) => ({ trader, marketId: ETH, side: "long" as const, margin: "200", leverage: 20 })),
  );
  proxies.push(await forwarder(net.anvil.rpcUrl), await forwarder(net.anvil.rpcUrl));
  const rpcUrl = proxies.map((p) => p.url).join(",");
  keeper = await startKeeper({
    config: devnetConfig(net.ex.d, net.anvil.rpcUrl, { pollIntervalMs: 50, batching: false, stateDir: testStateDir() }),
    rpcUrl,
    privateKeys: [ANVIL_KEYS[1]],
    log: logs.log,
  });
  keeper.done.catch(() => {});
  const k = keeper;
  await until("backfill", () => k.book.positions.size === 2 && k.watcher.latestTick !== undefined);
}, 60_000);

afterAll(async () => {
  await shutdown(keeper, net);
  for (const p of proxies) p.server.close();
});

describe("several RPC endpoints", () => {
  it("goes on through the next endpoint when the first dies, and liquidates once", async () => {
    const k = keeper as RunningKeeper;
    const [first, second] = proxies as [(typeof proxies)[number], (typeof proxies)[number]];
    expect(first.calls).toBeGreaterThan(0);
    first.server.closeAllConnections();
    first.server.close();
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
});

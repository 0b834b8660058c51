/** A stop asked during a long backfill ends it after the range being applied: SIGTERM never waits for history. */
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startKeeper } from "../../src/app.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { devnetConfig } from "../../src/devnet/config.ts";
import { devnetPositions, openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, startDevnet, testStateDir } from "../helpers/devnet.ts";
import { captureLogs } from "../helpers/logs.ts";

let net: DevnetFixture;
let slow: Server;
let url = "";

beforeAll(async () => {
  net = await startDevnet({ accounts: 30 });
  await openPositions(net.ex, devnetPositions().slice(0, 10));
  // every eth_getLogs answers after 400 ms: one block per range makes the backfill take many seconds
  slow = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", async () => {
      if (body.includes("eth_getLogs")) await new Promise((r) => setTimeout(r, 400));
      const upstream = await fetch(net.anvil.rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      res.writeHead(200, { "content-type": "application/json" }).end(await upstream.text());
    });
  });
  await new Promise<void>((r) => slow.listen(0, "127.0.0.1", () => r()));
  const address = slow.address();
  url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
}, 60_000);

afterAll(async () => {
  slow?.close();
  await net?.stop();
});

describe("stopping during a backfill", () => {
  it("stops within a range, not after the whole history", async () => {
    const logs = captureLogs();
    const k = await startKeeper({
      config: devnetConfig(net.ex.d, url, { maxLogRange: 1, logConcurrency: 1, stateDir: testStateDir() }),
      rpcUrl: url,
      privateKeys: [ANVIL_KEYS[1]],
      log: logs.log,
    });
    k.done.catch(() => {});
    await new Promise((r) => setTimeout(r, 600)); // well into the backfill (dozens of blocks at 400 ms each)
    expect(logs.events("backfill_completed")).toHaveLength(0);
    const started = Date.now();
    await k.stop("test stop");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(logs.lines.at(-1)?.event).toBe("keeper_stopped");
    expect(logs.events("backfill_completed")).toHaveLength(0);
  }, 30_000);
});

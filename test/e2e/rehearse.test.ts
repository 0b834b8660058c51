/**
 * Rehearsal on a fork: a local devnet Anvil plays the live network. The rehearsal forks it, drops ETH by 10% on
 * the fork, runs the keeper there and reports what it liquidated; the devnet itself (the "live" chain) is
 * untouched: same price, same positions, no transaction of the keeper.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { devnetConfig } from "../../src/devnet/config.ts";
import { DEVNET_MARKETS, type MarketSpec, ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { parseShock, type RehearsalReport, rehearse } from "../../src/ops/rehearse.ts";
import { type DevnetFixture, ethLongs, startDevnet } from "../helpers/devnet.ts";

let net: DevnetFixture;

beforeAll(async () => {
  net = await startDevnet({ accounts: 8 });
  await openPositions(net.ex, ethLongs(3));
}, 60_000);

afterAll(async () => {
  await net?.stop();
});

describe("rehearse", () => {
  it("parses shocks, and refuses a malformed one", () => {
    expect(parseShock("BTC-USD=-10%")).toEqual({ market: "BTC-USD", percent: -10 });
    expect(parseShock("ETH-USD=+2.5")).toEqual({ market: "ETH-USD", percent: 2.5 });
    expect(() => parseShock("ETH-USD")).toThrow(/--shock must look like/);
    expect(() => parseShock("ETH-USD=-100%")).toThrow(/leaves no price/);
  });

  it("liquidates on the fork what a 10% drop makes liquidatable, and leaves the live chain untouched", async () => {
    const headBefore = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
    const price = await net.ex.price(ETH);
    const config = devnetConfig(net.ex.d, net.anvil.rpcUrl);
    const report = await rehearse({
      config,
      forkUrl: net.anvil.rpcUrl,
      shocks: [{ market: "ETH-USD", percent: -10 }],
      timeoutSeconds: 60,
    });
    expect(report.shocks[0]?.to).toBe(((price * 90n) / 100n).toString());
    expect(report.shocks[0]?.how).toBe("updateAnswer");
    expect(report.liquidatableAfterShock).toBe(3);
    expect(report.liquidated).toBe(3);
    expect(report.reverted).toBe(0);
    expect(report.stillLiquidatable).toBe(0);
    expect(Number(report.rewards)).toBeGreaterThan(0);
    expect(BigInt(report.gasPaidWei)).toBeGreaterThan(0n);
    // the live chain: no new block, the same price, every position still open
    expect(await net.ex.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(headBefore);
    expect(await net.ex.price(ETH)).toBe(price);
    for (const spec of ethLongs(3)) {
      const p = await net.ex.position(net.ex.trader(spec.trader).account.address, ETH);
      expect(p.size).toBeGreaterThan(0n);
    }
    expect(price).toBe(parseUnits("2500", ORACLE_DECIMALS));
  }, 120_000);

  it("from the command line, on a feed that is not a MockV3Aggregator (a proxy): a mock is installed on the fork", async () => {
    const proxied = await startDevnet({
      accounts: 8,
      markets: [
        { ...(DEVNET_MARKETS[0] as MarketSpec) },
        { ...(DEVNET_MARKETS[1] as MarketSpec), oracleKind: "eventful-proxy" },
      ],
    });
    try {
      await openPositions(proxied.ex, ethLongs(2));
      const dir = mkdtempSync(join(tmpdir(), "perp-keeper-rehearse-"));
      const file = join(dir, "live.json");
      const config = devnetConfig(proxied.ex.d, proxied.anvil.rpcUrl);
      writeFileSync(file, JSON.stringify({ network: config.network, exchange: config.exchange }));
      const clean = Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !k.startsWith("KEEPER_") && !k.startsWith("RPC_")),
      );
      const r = spawnSync(
        process.execPath,
        [
          "--import",
          "tsx",
          "src/main.ts",
          "rehearse",
          "--fork-url",
          proxied.anvil.rpcUrl,
          "--config",
          file,
          "--shock",
          "ETH-USD=-10%",
          "--json",
        ],
        { cwd: resolve(import.meta.dirname, "../.."), env: clean, encoding: "utf8", timeout: 120_000 },
      );
      rmSync(dir, { recursive: true, force: true });
      expect(r.status, r.stderr).toBe(0);
      // the funded Anvil key the keeper used on the fork appears nowhere in the report
      expect(r.stdout + r.stderr).not.toContain(ANVIL_KEYS[1].slice(2));
      const report = JSON.parse(r.stdout.trim().split("\n").at(-1) as string) as RehearsalReport;
      expect(report.shocks[0]?.how).toBe("mock installed at the feed's address");
      expect(report.liquidatableAfterShock).toBe(2);
      expect(report.liquidated).toBe(2);
      expect(await proxied.ex.price(ETH)).toBe(parseUnits("2500", ORACLE_DECIMALS)); // the live feed unchanged
    } finally {
      await proxied.stop();
    }
  }, 120_000);
});

/**
 * Rehearsal on a fork: a local devnet Anvil plays the live network. The rehearsal forks it, drops ETH by 10% on
 * the fork, runs the keeper there and reports what it liquidated; the devnet itself (the "live" chain) is
 * untouched: same price, same positions, no transaction of the keeper.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { devnetConfig } from "../../src/devnet/config.ts";
import { DEVNET_MARKETS, type MarketSpec, ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { anvilEnv, parseShock, type RehearsalReport, redactForkUrl, rehearse } from "../../src/ops/rehearse.ts";
import { perpEngineRehearsal } from "../../src/protocol/perpEngine/rehearsal.ts";
import { type DevnetFixture, ethLongs, startDevnet } from "../helpers/devnet.ts";
import { startFaultProxy } from "../helpers/faultProxy.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "perp-keeper-rehearse-cli-"));
let net: DevnetFixture;
let live: string;

beforeAll(async () => {
  net = await startDevnet({ accounts: 8 });
  await openPositions(net.ex, ethLongs(3));
  live = join(dir, "live.json");
  const config = devnetConfig(net.ex.d, net.anvil.rpcUrl);
  writeFileSync(live, JSON.stringify({ network: config.network, exchange: config.exchange }));
}, 60_000);

afterAll(async () => {
  await net?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** `perp-keeper rehearse ...` through tsx, as a process of its own; stdout and stderr read as they come. */
function cli(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("KEEPER_") && !k.startsWith("RPC_")),
  );
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "rehearse", ...args], {
    cwd: ROOT,
    env: { ...clean, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out = { stdout: "", stderr: "" };
  child.stdout.on("data", (c: Buffer) => {
    out.stdout += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    out.stderr += c.toString();
  });
  const exited = new Promise<number | null>((done) => child.once("close", (code) => done(code)));
  return { child, out, exited };
}

/** The pids of the processes named `comm` whose parent is `pid` (Linux /proc). */
function childrenNamed(pid: number, comm: string): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        const stat = readFileSync(`/proc/${e}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        return ppid === pid && stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) === comm;
      } catch {
        return false;
      }
    })
    .map(Number);
}

const SECRET_KEY = ANVIL_KEYS[3];

describe("rehearse", () => {
  it("parses shocks, and refuses a malformed one", () => {
    expect(parseShock("BTC-USD=-10%")).toEqual({ market: "BTC-USD", percent: -10 });
    expect(parseShock("ETH-USD=+2.5")).toEqual({ market: "ETH-USD", percent: 2.5 });
    expect(() => parseShock("ETH-USD")).toThrow(/--shock must look like/);
    expect(() => parseShock("ETH-USD=-100%")).toThrow(/leaves no price/);
  });

  it("redacts the fork URL (Anvil's error text too), and gives Anvil no KEEPER_ or RPC_ variable", () => {
    const url = "https://user:pw@eth.example.com/v2/APIKEY123?key=APIKEY123";
    const anvilSays = `error sending request for url (${url})\nError: failed to get fork block for ${url}.`;
    const redacted = redactForkUrl(anvilSays, url);
    expect(redacted).not.toMatch(/APIKEY123|user|pw@/);
    expect(redacted).toContain("url (https://eth.example.com/…)");
    expect(redacted).toContain("fork block for https://eth.example.com/….");
    const env = anvilEnv({ PATH: "/bin", HOME: "/root", KEEPER_PRIVATE_KEY: "0x1", RPC_URL: url, AWS_SECRET: "s" });
    expect(env).toEqual({ PATH: "/bin", HOME: "/root" });
  });

  it("liquidates on the fork what a 10% drop makes liquidatable, and leaves the live chain untouched", async () => {
    const headBefore = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
    const price = await net.ex.price(ETH);
    const config = devnetConfig(net.ex.d, net.anvil.rpcUrl);
    const report = await rehearse({
      config,
      exchange: perpEngineRehearsal,
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
    expect(report.settled).toBe(true);
    // an exact decimal in collateral units, not a float's rendering
    expect(report.rewards).toMatch(/^\d+(\.\d{1,18})?$/);
    expect(parseUnits(report.rewards, 18)).toBeGreaterThan(0n);
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
          "--fork-block",
          "latest",
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

  it("Ctrl-C stops the fork and the keeper and exits 130, leaving nothing behind; Anvil never saw the key", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "perp-keeper-rehearse-int-"));
    try {
      const r = cli(["--fork-url", net.anvil.rpcUrl, "--config", live, "--shock", "ETH-USD=-10%", "--timeout", "90"], {
        TMPDIR: tmp,
        KEEPER_PRIVATE_KEY: SECRET_KEY,
      });
      const pid = r.child.pid as number;
      const deadline = Date.now() + 60_000;
      while (!r.out.stderr.includes("the keeper backfills")) {
        if (r.child.exitCode !== null || Date.now() > deadline) throw new Error(`rehearse: ${r.out.stderr}`);
        await new Promise((done) => setTimeout(done, 20));
      }
      const [anvil] = childrenNamed(pid, "anvil");
      expect(anvil).toBeDefined();
      const environ = readFileSync(`/proc/${anvil}/environ`, "utf8");
      expect(environ).not.toContain("KEEPER_PRIVATE_KEY");
      expect(environ).not.toContain(SECRET_KEY.slice(2));
      const rehearsalDirs = () => readdirSync(tmp).filter((e) => e.startsWith("perp-keeper-rehearsal-"));
      expect(rehearsalDirs().length).toBe(1); // the rehearsal's state directory
      r.child.kill("SIGINT");
      expect(await r.exited).toBe(130);
      expect(r.out.stderr).toContain("rehearsal interrupted");
      expect(r.out.stdout).toBe(""); // no report, no log line where the report goes
      expect(existsSync(`/proc/${anvil}`)).toBe(false);
      expect(rehearsalDirs()).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 90_000);

  it("a rehearsal whose backfill did not finish by --timeout is no result: exit 1, saying so", async () => {
    // the live RPC answers the fork's log queries slowly: the keeper's backfill on the fork outlasts the deadline
    const slow = await startFaultProxy(net.anvil.rpcUrl);
    try {
      await slow.set({ kind: "delay", ms: 8_000 }, { methods: ["eth_getLogs"] });
      const r = cli(["--fork-url", slow.url, "--config", live, "--shock", "ETH-USD=-10%", "--timeout", "3"]);
      expect(await r.exited, r.out.stderr + r.out.stdout).toBe(1);
      expect(r.out.stderr).toMatch(/backfill on the fork did not finish within --timeout 3 s: no result/);
      expect(r.out.stdout).toBe("");
      expect(slow.methods.get("eth_getLogs")).toBeGreaterThan(0);
    } finally {
      await slow.close();
    }
  }, 90_000);

  it("a fork URL's credentials never reach stderr, though Anvil's error quotes the URL", async () => {
    const r = cli([
      "--fork-url",
      "http://user:sekrit@127.0.0.1:9/v2/APIKEY123?key=APIKEY123",
      "--config",
      live,
      "--shock",
      "ETH-USD=-10%",
    ]);
    expect(await r.exited).toBe(1);
    expect(r.out.stderr).toMatch(/cannot fork: .*failed to get fork block/);
    expect(r.out.stderr).toContain("http://127.0.0.1:9/…");
    expect(r.out.stdout + r.out.stderr).not.toMatch(/APIKEY123|sekrit/);
  }, 60_000);
});

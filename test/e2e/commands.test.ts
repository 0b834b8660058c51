/**
 * The subcommands, run as an operator runs them: the built bin (npm run build, dist/src/main.js) and the source
 * through tsx. check-config validates config and environment against the RPC and sends nothing; status and
 * check-config need no key and ignore a malformed one; a wrong chain or address is exit 2.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { devnetConfig } from "../../src/devnet/config.ts";
import { type DevnetFixture, startDevnet } from "../helpers/devnet.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const BIN = join(ROOT, "dist/src/main.js");
const dir = mkdtempSync(join(tmpdir(), "perp-keeper-commands-"));
let net: DevnetFixture;
let good: string;

function bin(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("KEEPER_") && !k.startsWith("RPC_")),
  );
  return spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { ...clean, ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
}

beforeAll(async () => {
  execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "ignore" });
  net = await startDevnet({ accounts: 4 });
  good = join(dir, "good.json");
  const config = devnetConfig(net.ex.d, net.anvil.rpcUrl);
  writeFileSync(good, JSON.stringify({ network: config.network, exchange: config.exchange }));
}, 120_000);

afterAll(async () => {
  await net?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("perp-keeper commands (built)", () => {
  it("check-config: ok against the devnet, naming the exchange and its markets; no key needed", () => {
    const r = bin(["check-config", "--config", good]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("ok");
    expect(r.stdout).toContain(`a PerpEngine with ${net.ex.d.markets.length} markets`);
    expect(r.stdout).toContain("Multicall3: 0xcA11bde05977b3631167028862bE2a173976CA11");
  });

  it("check-config: another chain id, or an address that is not the exchange, is exit 2 with the reason", () => {
    const config = devnetConfig(net.ex.d, net.anvil.rpcUrl);
    const wrongChain = join(dir, "chain.json");
    writeFileSync(
      wrongChain,
      JSON.stringify({ network: { ...config.network, chainId: 1 }, exchange: config.exchange }),
    );
    const r = bin(["check-config", "--config", wrongChain]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/on chain 31337 but config devnet expects chain 1/);
    const wrongAddress = join(dir, "address.json");
    writeFileSync(
      wrongAddress,
      JSON.stringify({ network: config.network, exchange: { ...config.exchange, address: net.ex.d.collateral } }),
    );
    const a = bin(["check-config", "--config", wrongAddress]);
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/does not answer as a PerpEngine/);
  });

  it("status and check-config ignore a malformed key, and never print it", () => {
    const malformed = "0x1234not-a-key";
    for (const command of ["status", "check-config"]) {
      const r = bin([command, "--config", good], { KEEPER_PRIVATE_KEY: malformed });
      expect(r.status, `${command}: ${r.stderr}`).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(malformed);
    }
  });

  it("an unknown command is exit 2 naming the known ones; --help lists them", () => {
    const r = bin(["frobnicate"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command "frobnicate": run, demo, status, check-config/);
    const help = bin(["--help"]);
    expect(help.status).toBe(0);
    for (const c of ["run", "status", "check-config"]) expect(help.stdout).toContain(c);
  });
});

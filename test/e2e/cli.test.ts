import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const TSX = pathToFileURL(resolve("node_modules/tsx/dist/loader.mjs")).href;
const MAIN = resolve("src/main.ts");
const dir = mkdtempSync(join(tmpdir(), "perp-keeper-cli-"));
const SECRET = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

function run(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("KEEPER_") && k !== "RPC_URL"),
  );
  // from an empty folder, so that a developer's own .env cannot leak in
  return spawnSync(process.execPath, ["--import", TSX, MAIN, ...args], {
    cwd: dir,
    env: { ...clean, ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = {
  network: { name: "devnet", chainId: 31337, rpcUrl: "http://127.0.0.1:1" },
  exchange: { adapter: "perp-engine", address: "0x5FbDB2315678afecb367f032d93F642f64180aa3", deployBlock: 0 },
};

describe("command line", () => {
  it("prints its usage", () => {
    const r = run(["--help"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("--config");
    expect(r.stdout).toContain("KEEPER_PRIVATE_KEY");
  });

  it("exits 2 with the failing field on an invalid config", () => {
    const file = join(dir, "bad.json");
    writeFileSync(file, JSON.stringify({ ...config, keeper: { maxConcurrentLiquidations: 0 } }));
    const r = run(["--config", file], { KEEPER_PRIVATE_KEY: SECRET });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("keeper.maxConcurrentLiquidations");
  });

  it("exits 2 when no signer key is set", () => {
    const file = join(dir, "good.json");
    writeFileSync(file, JSON.stringify(config));
    const r = run(["--config", file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("KEEPER_PRIVATE_KEY is not set");
  });

  it("exits 2 when --status has no config to read", () => {
    const r = run(["--status"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("status needs --config");
  });

  it("rehearse on an exchange it cannot rehearse (perp-v2) is exit 2 naming the adapter, before any fork", () => {
    const file = join(dir, "perp-v2.json");
    const exchange = { adapter: "perp-v2", address: config.exchange.address, deployBlock: 0 };
    writeFileSync(file, JSON.stringify({ ...config, exchange }));
    const r = run(["rehearse", "--config", file, "--fork-url", "http://127.0.0.1:1", "--shock", "vETH=-10%"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("rehearse is not available for the perp-v2 adapter");
    expect(r.stderr).not.toContain("forking");
  });

  it("exits 2 on a malformed key without printing it", () => {
    const file = join(dir, "good.json");
    writeFileSync(file, JSON.stringify(config));
    const bad = `${SECRET.slice(0, -2)}zz`;
    const r = run(["--config", file], { KEEPER_PRIVATE_KEY: bad });
    expect(r.status).toBe(2);
    expect(r.stderr + r.stdout).not.toContain(SECRET.slice(2, -2));
  });

  it("retries an unreachable RPC until the start-up deadline, naming the endpoint, then exits 1", () => {
    const file = join(dir, "unreachable.json");
    writeFileSync(file, JSON.stringify({ ...config, keeper: { startupTimeoutSeconds: 2 } }));
    const started = Date.now();
    const r = run(["--config", file], { KEEPER_PRIVATE_KEY: SECRET, LOG_FORMAT: "json" });
    const elapsed = Date.now() - started;
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("cannot reach the RPC at http://127.0.0.1:1 within 2 s");
    const retries = r.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.event === "rpc_error" && l.step === "connect");
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(retries.every((l) => l.endpoint === "http://127.0.0.1:1")).toBe(true);
    expect(elapsed).toBeGreaterThan(1500); // it did wait for the deadline
    expect(r.stdout + r.stderr).not.toContain(SECRET.slice(2));
  });
});

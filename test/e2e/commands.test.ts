/**
 * The subcommands, run as an operator runs them: the built bin (npm run build, dist/src/main.js) and the source
 * through tsx. check-config makes run's start-up checks (the same functions) and sends nothing; status needs no key
 * and ignores a malformed one; a wrong chain, address, start block, key, signer or state directory is exit 2.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { devnetConfig } from "../../src/devnet/config.ts";
import { type DevnetFixture, startDevnet } from "../helpers/devnet.ts";
import { until } from "../helpers/wait.ts";

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
  const KEY = ANVIL_KEYS[1] as string;
  const SIGNER = privateKeyToAccount(KEY as Hex).address;

  it("check-config: ok against the devnet, printing what run would use (overrides, signers and balances)", () => {
    const stateDir = join(dir, "check-state");
    const r = bin(["check-config", "--config", good], {
      KEEPER_PRIVATE_KEY: KEY,
      KEEPER_STATE_DIR: stateDir,
      KEEPER_DRY_RUN: "true",
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("ok");
    expect(r.stdout).toContain(`a PerpEngine with ${net.ex.d.markets.length} markets`);
    expect(r.stdout).toContain("Multicall3: 0xcA11bde05977b3631167028862bE2a173976CA11");
    expect(r.stdout).toContain(`state directory: ${stateDir} (from KEEPER_STATE_DIR), writable`);
    expect(r.stdout).toContain("dry run: true (from KEEPER_DRY_RUN)");
    expect(r.stdout).toMatch(new RegExp(`${SIGNER} {2}\\d+(\\.\\d+)?\\n`));
    expect(existsSync(join(stateDir, "journal"))).toBe(true);
    // the config file's settings when nothing overrides them
    const plain = bin(["check-config", "--config", good], { KEEPER_PRIVATE_KEY: KEY });
    expect(plain.status, plain.stderr).toBe(0);
    expect(plain.stdout).toContain("state directory: ./data (from config keeper.stateDir)");
    expect(plain.stdout).toContain("dry run: false (from config keeper.dryRun)");
    expect(r.stdout + r.stderr + plain.stdout + plain.stderr).not.toContain(KEY.slice(2));
  });

  it("check-config: another chain id, or an address that is not the exchange, is exit 2 with the reason", () => {
    const config = devnetConfig(net.ex.d, net.anvil.rpcUrl);
    const wrongChain = join(dir, "chain.json");
    writeFileSync(
      wrongChain,
      JSON.stringify({ network: { ...config.network, chainId: 1 }, exchange: config.exchange }),
    );
    const r = bin(["check-config", "--config", wrongChain], { KEEPER_PRIVATE_KEY: KEY });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/on chain 31337 but config devnet expects chain 1/);
    const wrongAddress = join(dir, "address.json");
    writeFileSync(
      wrongAddress,
      JSON.stringify({ network: config.network, exchange: { ...config.exchange, address: net.ex.d.collateral } }),
    );
    const a = bin(["check-config", "--config", wrongAddress], { KEEPER_PRIVATE_KEY: KEY });
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/does not answer as a PerpEngine/);
  });

  it("a deployBlock beyond the head: check-config and run both exit 2 with the same reason", async () => {
    const config = devnetConfig(net.ex.d, net.anvil.rpcUrl);
    const head = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
    const future = join(dir, "future.json");
    writeFileSync(
      future,
      JSON.stringify({ network: config.network, exchange: { ...config.exchange, deployBlock: Number(head) + 1000 } }),
    );
    const env = { KEEPER_PRIVATE_KEY: KEY, KEEPER_STATE_DIR: join(dir, "future-state") };
    const check = bin(["check-config", "--config", future], env);
    const run = bin(["run", "--config", future], env);
    for (const r of [check, run]) {
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/deployBlock \d+ is above the chain head \d+/);
    }
  });

  it("check-config reads the keys as run does: a malformed key, or none, is exit 2 and never printed", () => {
    const malformed = "0x1234not-a-key";
    const bad = bin(["check-config", "--config", good], { KEEPER_PRIVATE_KEY: malformed });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/KEEPER_PRIVATE_KEY must be a valid 0x-prefixed 32-byte secp256k1 private key/);
    expect(bad.stdout + bad.stderr).not.toContain(malformed);
    const none = bin(["check-config", "--config", good]);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/KEEPER_PRIVATE_KEY is not set/);
    // status signs nothing: a malformed key does not stop it
    const status = bin(["status", "--config", good], { KEEPER_PRIVATE_KEY: malformed });
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout + status.stderr).not.toContain(malformed);
  });

  it("an unfunded signer: check-config exit 2 naming it, as run; in a dry run (sends nothing) it is reported only", () => {
    const empty = generatePrivateKey();
    const address = privateKeyToAccount(empty).address;
    const env = { KEEPER_PRIVATE_KEY: empty, KEEPER_STATE_DIR: join(dir, "unfunded-state") };
    const check = bin(["check-config", "--config", good], env);
    expect(check.status).toBe(2);
    expect(check.stderr).toMatch(new RegExp(`no signer can pay for a liquidation .*fund ${address}`));
    const run = bin(["run", "--config", good], env);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`no signer can pay for a liquidation .*fund ${address}`));
    const dry = bin(["check-config", "--config", good, "--dry-run"], env);
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`${address}  0  (cannot pay: it would be left out)`);
    expect(dry.stdout).toContain("dry run: true (from --dry-run)");
    for (const r of [check, run, dry]) expect(r.stdout + r.stderr).not.toContain(empty.slice(2));
  });

  it("a state directory that cannot be written: check-config and run exit 2 naming it", () => {
    const blocker = join(dir, "a-file");
    writeFileSync(blocker, "not a directory");
    const env = { KEEPER_PRIVATE_KEY: KEY, KEEPER_STATE_DIR: join(blocker, "state") };
    for (const command of ["check-config", "run"]) {
      const r = bin([command, "--config", good], env);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(`the state directory is not writable: ${join(blocker, "state")}`);
    }
  });

  it("--version prints the package's version; an unknown flag is exit 2", () => {
    const version = bin(["--version"]);
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
    const typo = bin(["run", "--dryrun", "--config", good], { KEEPER_PRIVATE_KEY: KEY });
    expect(typo.status).toBe(2);
    expect(typo.stderr).toMatch(/Unknown option '--dryrun'/);
  });

  it("an unknown command is exit 2 naming the known ones; --help lists them", () => {
    const r = bin(["frobnicate"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command "frobnicate": run, demo, status, check-config/);
    const help = bin(["--help"]);
    expect(help.status).toBe(0);
    // each listed as a command, at the start of its own line
    for (const c of ["run", "demo", "status", "check-config", "rehearse"]) {
      expect(help.stdout).toMatch(new RegExp(`^ {2}${c} +\\S`, "m"));
    }
  });
});

/** A systemd unit's [Service] settings (the last value of each key, as systemd reads them). */
function unitSettings(text: string): Map<string, string> {
  const settings = new Map<string, string>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("[")) section = line;
    else if (section === "[Service]") {
      const eq = line.indexOf("=");
      settings.set(line.slice(0, eq), line.slice(eq + 1));
    }
  }
  return settings;
}

describe("deployment files", () => {
  it("the systemd unit: SIGTERM, a stop timeout above the grace period, restart on failure but not on exit 2, secrets from a file", () => {
    const unit = unitSettings(readFileSync(join(ROOT, "deploy/perp-keeper.service"), "utf8"));
    expect(unit.get("KillSignal")).toBe("SIGTERM");
    expect(unit.get("Restart")).toBe("on-failure");
    expect(unit.get("RestartPreventExitStatus")).toBe("2");
    expect(unit.get("EnvironmentFile")).toMatch(/^\/etc\//);
    expect(unit.get("User")).not.toBe("root");
    const grace = parseConfig(JSON.parse(readFileSync(good, "utf8"))).keeper.shutdownGraceMs;
    expect(Number(unit.get("TimeoutStopSec")) * 1000).toBeGreaterThan(grace + 5_000);
  });

  it("the unit's ExecStart, run as written (paths mapped to this checkout), starts the keeper and stops on SIGTERM", async () => {
    const unit = unitSettings(readFileSync(join(ROOT, "deploy/perp-keeper.service"), "utf8"));
    const argv = (unit.get("ExecStart") as string)
      .split(/\s+/)
      .map((a) => a.replace("/opt/perp-keeper", ROOT).replace("/etc/perp-keeper/keeper.json", good));
    expect(argv[0]).toBe("/usr/bin/node");
    expect(argv.slice(1, 3)).toEqual([BIN, "run"]);
    const environment = Object.fromEntries(
      (unit.get("Environment") as string).split(/\s+/).map((kv) => kv.split("=") as [string, string]),
    );
    const stateDir = join(dir, "state");
    const child = spawn(process.execPath, argv.slice(1), {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "",
        ...environment,
        KEEPER_STATE_DIR: stateDir,
        // what /etc/perp-keeper/env holds
        KEEPER_PRIVATE_KEY: ANVIL_KEYS[1],
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const exited = new Promise<number | null>((done) => child.once("close", (code) => done(code)));
    await until("keeper_started", () => out.includes('"event":"keeper_started"'), 30_000);
    expect(out).toContain(`"stateDir":"${stateDir}"`);
    // the endpoint in use, and where it was set
    expect(out).toContain(`"rpc":["${net.anvil.rpcUrl}"],"rpcFrom":"config network.rpcUrl"`);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(out).toContain('"event":"keeper_stopped"');
  }, 60_000);

  it("the Dockerfile: multi-stage, non-root, runs the built bin, state directory a volume, SIGTERM", () => {
    const docker = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    expect(docker.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    // numeric, not root: what Kubernetes' runAsNonRoot can verify
    expect(docker).toMatch(/^USER [1-9]\d*(:\d+)?$/m);
    expect(docker).toMatch(/^ENTRYPOINT \["node", "dist\/src\/main\.js"\]/m);
    expect(docker).toMatch(/^VOLUME \["\/data"\]/m);
    expect(docker).toMatch(/KEEPER_STATE_DIR=\/data/);
    expect(docker).toMatch(/^STOPSIGNAL SIGTERM/m);
    // what the image builds and runs is what npm run build gives here
    expect(docker).toContain("npm run build");
    expect(existsSync(BIN)).toBe(true);
    // the final stage runs JavaScript only: no TypeScript of ours copied in, the dependencies' deleted in the build
    const [build, final] = docker.split(/^FROM .*$/m).slice(1) as [string, string];
    expect(build).toMatch(/npm prune --omit=dev[^\n]*\\\n\s*&& find node_modules -type f \\\( -name "\*\.ts"/);
    expect(final).not.toMatch(/^COPY (--from=build \/app\/)?src/m);
    expect(final).toMatch(/^COPY --from=build \/app\/node_modules/m);
  });

  it("the build context leaves out secrets and what the image does not need", () => {
    const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    for (const entry of [".env", ".env.*", ".git", "node_modules", "dist", "data", "test"]) {
      expect(ignored).toContain(entry);
    }
    // what the Dockerfile copies stays in
    for (const needed of ["src", "abi", "config", "package.json", "package-lock.json", "tsconfig.json"]) {
      expect(ignored).not.toContain(needed);
    }
  });

  it("the unit's install steps create /etc/perp-keeper before writing into it", () => {
    const steps = readFileSync(join(ROOT, "deploy/perp-keeper.service"), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("#   sudo "));
    const mkdir = steps.findIndex((l) => /install -d .*\/etc\/perp-keeper$/.test(l));
    const firstWrite = steps.findIndex((l) => /\/etc\/perp-keeper\//.test(l));
    expect(mkdir).toBeGreaterThanOrEqual(0);
    expect(mkdir).toBeLessThan(firstWrite);
  });
});

/**
 * Bad configurations and environments, run through the real command line: each one ends with its exit code and a
 * message that says what is wrong and where, and none prints a key. Exit codes: 2 a bad setup, 1 a failure (the
 * RPC did not answer).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const TSX = pathToFileURL(join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;
const dir = mkdtempSync(join(tmpdir(), "perp-keeper-bad-"));
const KEY = ANVIL_KEYS[1];

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = {
  network: { name: "devnet", chainId: 31337, rpcUrl: "http://127.0.0.1:1" },
  exchange: { adapter: "perp-engine", address: "0x5FbDB2315678afecb367f032d93F642f64180aa3", deployBlock: 0 },
  keeper: { startupTimeoutSeconds: 1 },
};

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith("KEEPER_") && !k.startsWith("RPC_") && !k.startsWith("LOG_"),
    ),
  );
  const child = spawn(process.execPath, ["--import", TSX, join(ROOT, "src/main.ts"), ...args], {
    cwd: dir, // an empty folder: no developer's .env leaks in
    env: { ...clean, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    out += c.toString();
  });
  return new Promise((done) => child.once("close", (code) => done({ code, out })));
}

const good = file("good.json", JSON.stringify(base));
// a development .env in the working directory: read only when asked for (--dotenv, KEEPER_ENV_FILE)
file(".env", "LOG_LEVEL=loud\n");
const CASES: { name: string; args: string[]; env?: Record<string, string>; code: number; message: RegExp }[] = [
  {
    name: "an unknown config field",
    args: ["run", "--config", file("unknown.json", JSON.stringify({ ...base, keeper: { surprise: 1 } }))],
    env: { KEEPER_PRIVATE_KEY: KEY },
    code: 2,
    message: /invalid .*unknown\.json:\n {2}keeper: Unrecognized key: "surprise"/,
  },
  {
    name: "a field out of range",
    args: ["check-config", "--config", file("range.json", JSON.stringify({ ...base, keeper: { stuckBlocks: 0 } }))],
    code: 2,
    message: /keeper\.stuckBlocks: .*>=1/,
  },
  {
    name: "malformed JSON",
    args: ["check-config", "--config", file("broken.json", '{\n  "network": {,\n}')],
    code: 2,
    message: /broken\.json:2:15: .*\n {4}"network": \{,\n {16}\^/,
  },
  {
    name: "a config file that is not there",
    args: ["check-config", "--config", join(dir, "missing.json")],
    code: 2,
    message: /cannot read config .*missing\.json/,
  },
  { name: "run without a key", args: ["run", "--config", good], code: 2, message: /KEEPER_PRIVATE_KEY is not set/ },
  {
    name: "a malformed key",
    args: ["run", "--config", good],
    env: { KEEPER_PRIVATE_KEY: "0xabc123notakey" },
    code: 2,
    message: /KEEPER_PRIVATE_KEY must be a valid 0x-prefixed 32-byte secp256k1 private key/,
  },
  {
    name: "both key variables",
    args: ["run", "--config", good],
    env: { KEEPER_PRIVATE_KEY: KEY, KEEPER_PRIVATE_KEYS: KEY },
    code: 2,
    message: /set KEEPER_PRIVATE_KEYS or KEEPER_PRIVATE_KEY, not both/,
  },
  {
    name: "an RPC_URL that is not http(s)",
    args: ["check-config", "--config", good],
    env: { RPC_URL: "ftp://127.0.0.1:1" },
    code: 2,
    message: /RPC_URL must be http\(s\) URLs/,
  },
  {
    name: "both RPC_URL and RPC_URLS",
    args: ["check-config", "--config", good],
    env: { RPC_URL: "http://127.0.0.1:1", RPC_URLS: "http://127.0.0.1:2" },
    code: 2,
    message: /set RPC_URL or RPC_URLS, not both/,
  },
  {
    name: "an RPC_WS_URL that is not ws(s)",
    args: ["check-config", "--config", good],
    env: { RPC_WS_URL: "http://127.0.0.1:1" },
    code: 2,
    message: /RPC_WS_URL must be a ws\(s\) URL/,
  },
  {
    name: "a bad LOG_LEVEL",
    args: ["check-config", "--config", good],
    env: { LOG_LEVEL: "loud" },
    code: 2,
    message: /LOG_LEVEL must be one of/,
  },
  {
    name: "a bad KEEPER_DRY_RUN",
    args: ["run", "--config", good],
    env: { KEEPER_PRIVATE_KEY: KEY, KEEPER_DRY_RUN: "maybe" },
    code: 2,
    message: /KEEPER_DRY_RUN must be true or false, got "maybe"/,
  },
  {
    name: "an unknown command",
    args: ["launch"],
    code: 2,
    message: /unknown command "launch"/,
  },
  {
    name: "an RPC that does not answer (check-config): the endpoint named, its credentials not",
    args: ["check-config", "--config", good],
    env: { KEEPER_PRIVATE_KEY: KEY, RPC_URL: "http://user:hunter2@127.0.0.1:1/v3/abc123notakey?key=abc123notakey" },
    code: 1,
    message:
      /perp-keeper failed: cannot reach the RPC at http:\/\/127\.0\.0\.1:1\/… *: .*(HTTP request failed|fetch failed)/,
  },
  {
    name: "an unknown flag (run --dryrun)",
    args: ["run", "--dryrun", "--config", good],
    env: { KEEPER_PRIVATE_KEY: KEY },
    code: 2,
    message: /configuration error: Unknown option '--dryrun'.*see --help/,
  },
  {
    name: "a flag without its value",
    args: ["run", "--config"],
    code: 2,
    message: /configuration error: Option '--config <value>' argument missing/,
  },
  {
    name: "check-config with a malformed key",
    args: ["check-config", "--config", good],
    env: { KEEPER_PRIVATE_KEY: "0xabc123notakey" },
    code: 2,
    message: /KEEPER_PRIVATE_KEY must be a valid 0x-prefixed 32-byte secp256k1 private key/,
  },
  {
    name: "a state directory under a file (check-config)",
    args: ["check-config", "--config", good],
    env: { KEEPER_PRIVATE_KEY: KEY, KEEPER_STATE_DIR: join(file("blocker", "x"), "state") },
    code: 2,
    message: /the state directory is not writable: .*blocker\/state \(ENOTDIR\)/,
  },
  {
    name: "a .env in the working directory is not read unless asked for",
    args: ["check-config", "--config", good],
    env: { KEEPER_PRIVATE_KEY: KEY, LOG_LEVEL: "" },
    code: 1,
    message: /cannot reach the RPC at http:\/\/127\.0\.0\.1:1/,
  },
  {
    name: "a .env asked for with --dotenv is read",
    args: ["check-config", "--config", good, "--dotenv", join(dir, ".env")],
    env: { KEEPER_PRIVATE_KEY: KEY },
    code: 2,
    message: /LOG_LEVEL must be one of/,
  },
  {
    name: "a .env asked for with KEEPER_ENV_FILE is read",
    args: ["check-config", "--config", good],
    env: { KEEPER_PRIVATE_KEY: KEY, KEEPER_ENV_FILE: join(dir, ".env") },
    code: 2,
    message: /LOG_LEVEL must be one of/,
  },
  {
    name: "an env file asked for that is not there",
    args: ["check-config", "--config", good, "--dotenv", join(dir, "missing.env")],
    code: 2,
    message: /cannot read the env file .*missing\.env/,
  },
  {
    name: "a --fork-block that is not a number",
    args: [
      "rehearse",
      "--config",
      good,
      "--fork-url",
      "http://127.0.0.1:1",
      "--fork-block",
      "soon",
      "--shock",
      "ETH-USD=-1%",
    ],
    code: 2,
    message: /--fork-block takes a block number or "latest", got "soon"/,
  },
];

describe("bad setups", () => {
  it.concurrent.each(CASES)(
    "$name: exit $code with a clear message",
    async (c) => {
      const { code, out } = await run(c.args, c.env ?? {});
      expect(code, out).toBe(c.code);
      expect(out).toMatch(c.message);
      expect(out).not.toContain(KEY.slice(2));
      expect(out).not.toContain("abc123notakey");
      expect(out).not.toContain("hunter2");
    },
    60_000,
  );
});

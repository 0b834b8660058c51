import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfigFile, parseConfig, readEnv } from "../../src/config/load.ts";
import { executorSettings } from "../../src/run.ts";

const valid = {
  network: { name: "devnet", chainId: 31337, rpcUrl: "http://127.0.0.1:8545" },
  exchange: { adapter: "perp-engine", address: "0x5FbDB2315678afecb367f032d93F642f64180aa3", deployBlock: 1 },
};

describe("config files", () => {
  it("refuses executor settings that would wedge or disable it, naming the field", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ baseFeeMultiplier: "0.5" }, "keeper.baseFeeMultiplier"], // no headroom over the base fee
      [{ maxRewardShareForGas: "5" }, "keeper.maxRewardShareForGas"],
      [{ maxFeePerGasGwei: "0" }, "keeper.maxFeePerGasGwei"],
      [{ replacementBumpPercent: 5 }, "keeper.replacementBumpPercent"], // under every node's replacement rule
      [{ stuckBlocks: 0 }, "keeper.stuckBlocks"],
      [{ batchGasLimit: 1000 }, "keeper.batchGasLimit"],
      [{ txFeeCapEth: "-1" }, "keeper.txFeeCapEth"],
      [{ txFeeCapEth: "1e18" }, "keeper.txFeeCapEth"],
      [{ txFeeCapEth: 1 }, "keeper.txFeeCapEth"],
    ];
    for (const [keeper, path] of cases) {
      expect(() => parseConfig({ ...valid, keeper }), JSON.stringify(keeper)).toThrow(path);
    }
    expect(parseConfig(valid).keeper.txFeeCapEth).toBe("1"); // geth's and Erigon's default rpc.txfeecap
    expect(parseConfig({ ...valid, keeper: { txFeeCapEth: "0" } }).keeper.txFeeCapEth).toBe("0"); // none
    expect(
      parseConfig({ ...valid, keeper: { baseFeeMultiplier: "1", maxRewardShareForGas: "1" } }).keeper,
    ).toMatchObject({
      baseFeeMultiplier: "1",
      maxRewardShareForGas: "1",
    });
  });

  it("reads several RPC endpoints, each checked, and refuses both variables at once", () => {
    expect(readEnv({ RPC_URLS: "http://127.0.0.1:1, http://127.0.0.1:2" }).rpcUrl).toBe(
      "http://127.0.0.1:1, http://127.0.0.1:2",
    );
    expect(() => readEnv({ RPC_URLS: "http://127.0.0.1:1,ftp://127.0.0.1:2" })).toThrow(
      /RPC_URLS must be http\(s\) URLs/,
    );
    expect(() => readEnv({ RPC_URL: "http://127.0.0.1:1", RPC_URLS: "http://127.0.0.1:2" })).toThrow(/not both/);
  });

  it("reads several signer keys, and names a bad entry by position without echoing it", () => {
    const [a, b] = [
      "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
      "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    ];
    expect(readEnv({ KEEPER_PRIVATE_KEYS: `${a}, ${b}` }).privateKeys).toEqual([a, b]);
    expect(readEnv({ KEEPER_PRIVATE_KEY: a }).privateKeys).toEqual([a]);
    const bad = `${a},0xdeadbeef${b.slice(10)}zz`;
    expect(() => readEnv({ KEEPER_PRIVATE_KEYS: bad })).toThrow(/entry 2 of 2/);
    try {
      readEnv({ KEEPER_PRIVATE_KEYS: bad });
    } catch (e) {
      expect((e as Error).message).not.toContain(b.slice(10, 40));
    }
    expect(() => readEnv({ KEEPER_PRIVATE_KEYS: `${a},${a.toUpperCase().replace("0X", "0x")}` })).toThrow(
      /same key twice/,
    );
    expect(() => readEnv({ KEEPER_PRIVATE_KEYS: a, KEEPER_PRIVATE_KEY: b })).toThrow(/not both/);
  });

  it("accepts a minimal config and fills the keeper's defaults", () => {
    const config = parseConfig(valid);
    expect(config.keeper.maxLogRange).toBe(2000);
    expect(config.keeper.dryRun).toBe(false);
    expect(config.keeper.precompute).toEqual({
      mode: "off",
      simulation: "auto",
      maxWaitBlocks: 3,
      checkIntervalMs: 250,
      txpoolPollMs: 250,
    });
  });

  it("refuses a bad same-block liquidation setting, naming its path", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ precompute: { mode: "sometimes" } }, "keeper.precompute.mode"],
      [{ precompute: { simulation: "debug_traceCall" } }, "keeper.precompute.simulation"],
      [{ precompute: { maxWaitBlocks: 0 } }, "keeper.precompute.maxWaitBlocks"],
      [{ precompute: { mode: "backrun", extra: 1 } }, "keeper.precompute"],
    ];
    for (const [keeper, path] of cases) {
      expect(() => parseConfig({ ...valid, keeper }), JSON.stringify(keeper)).toThrow(path);
    }
    expect(parseConfig({ ...valid, keeper: { precompute: { mode: "on-block" } } }).keeper.precompute.mode).toBe(
      "on-block",
    );
  });

  it("refuses a bad bidding policy, naming its path, and fills its defaults", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ bidding: { ordering: "fastest" } }, /keeper\.bidding\.ordering.*"priority" or "fcfs"/],
      [{ bidding: { profitShareBps: 10_001 } }, /keeper\.bidding\.profitShareBps.*at most 10000/],
      [{ bidding: { profitShareBps: -1 } }, /keeper\.bidding\.profitShareBps.*at least 0/],
      [{ bidding: { profitShareBps: 12.5 } }, /keeper\.bidding\.profitShareBps.*whole number/],
      [{ bidding: { profitShareBps: "5000" } }, /keeper\.bidding\.profitShareBps/],
      [{ bidding: { maxPriorityFeePerGasGwei: 5 } }, /keeper\.bidding\.maxPriorityFeePerGasGwei/],
      [{ bidding: { maxPriorityFeePerGasGwei: "-1" } }, /keeper\.bidding\.maxPriorityFeePerGasGwei/],
      [{ bidding: { maxPriorityFeePerGasGwei: "1e3" } }, /keeper\.bidding\.maxPriorityFeePerGasGwei/],
      [{ bidding: { share: 5000 } }, /keeper\.bidding/],
      [{ bidding: "priority" }, /keeper\.bidding/],
      [{ bidding: { enabled: "yes" } }, /keeper\.bidding\.enabled.*true or false/],
      [{ bidding: { txpoolPollMs: 10 } }, /keeper\.bidding\.txpoolPollMs.*at least 50/],
      [{ bidding: { firstSingles: 51 } }, /keeper\.bidding\.firstSingles.*at most 50/],
    ];
    for (const [keeper, message] of cases) {
      expect(() => parseConfig({ ...valid, keeper }), JSON.stringify(keeper)).toThrow(message);
    }
    expect(parseConfig(valid).keeper.bidding).toEqual({
      enabled: true,
      txpoolPollMs: 250,
      firstSingles: 0,
      ordering: "priority",
      profitShareBps: 5000,
    });
    const set = { ordering: "fcfs", profitShareBps: 0, maxPriorityFeePerGasGwei: "2.5" };
    expect(parseConfig({ ...valid, keeper: { bidding: set } }).keeper.bidding).toEqual({
      enabled: true,
      txpoolPollMs: 250,
      firstSingles: 0,
      ...set,
    });
    // off: today's policy, the going tip and no pool watch
    expect(executorSettings(parseConfig({ ...valid, keeper: { bidding: { enabled: false } } }).keeper).bidding).toBe(
      undefined,
    );
    expect(executorSettings(parseConfig({ ...valid, keeper: { bidding: set } }).keeper).bidding).toEqual({
      ordering: "fcfs",
      firstSingles: 0,
      profitShareBps: 0n,
      maxPriorityFeePerGas: 2_500_000_000n,
    });
    expect(executorSettings(parseConfig(valid).keeper).bidding).toEqual({
      ordering: "priority",
      firstSingles: 0,
      profitShareBps: 5000n,
      maxPriorityFeePerGas: undefined,
    });
  });

  it("names every bad field with its path", () => {
    const bad = {
      ...valid,
      network: { ...valid.network, rpcUrl: "ftp://127.0.0.1" },
      exchange: { ...valid.exchange, address: "0x1234" },
      keeper: { pollIntervalMs: -5, surprise: 1 },
    };
    const error = (() => {
      try {
        parseConfig(bad, "config/x.json");
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.message).toContain("config/x.json");
    expect(error?.message).toContain("exchange.address");
    expect(error?.message).toContain("keeper.pollIntervalMs");
    expect(error?.message).toContain("network.rpcUrl");
    expect(error?.message).toMatch(/surprise/);
  });

  it("reports an unreadable or malformed file clearly", () => {
    const dir = mkdtempSync(join(tmpdir(), "perp-keeper-"));
    const file = join(dir, "broken.json");
    writeFileSync(file, '{\n  "network": {\n    "chainId": 1,,\n  }\n}');
    // file:line:column, the offending line, a caret under the column
    expect(() => loadConfigFile(file)).toThrow(
      /broken\.json:3:18: Expected double-quoted property name\n {6}"chainId": 1,,\n {19}\^/,
    );
    writeFileSync(file, '{"a": 1');
    expect(() => loadConfigFile(file)).toThrow(/broken\.json:1:8: /);
    expect(() => loadConfigFile(join(dir, "missing.json"))).toThrow(ConfigError);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("environment", () => {
  it("rejects a malformed private key without echoing it", () => {
    const secret = "0xdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeXY";
    let message = "";
    try {
      readEnv({ KEEPER_PRIVATE_KEY: secret });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/KEEPER_PRIVATE_KEY/);
    expect(message).not.toContain("deadbeef");
  });

  it("rejects a well-formed but invalid key (outside the curve's order) without printing it in any form", () => {
    const key = `0x${"f".repeat(64)}`;
    let message = "";
    try {
      readEnv({ KEEPER_PRIVATE_KEY: key });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/valid .*private key/);
    expect(message).not.toMatch(/ffff|115792089237316195423570985008687907853269984665640564039457584007913129639935/);
  });

  it("parses booleans, durations and URLs strictly", () => {
    expect(readEnv({ KEEPER_DRY_RUN: "true", KEEPER_RUN_SECONDS: "2.5" })).toMatchObject({
      dryRun: true,
      runSeconds: 2.5,
    });
    expect(() => readEnv({ KEEPER_DRY_RUN: "maybe" })).toThrow(/KEEPER_DRY_RUN/);
    expect(() => readEnv({ KEEPER_RUN_SECONDS: "-1" })).toThrow(/KEEPER_RUN_SECONDS/);
    expect(() => readEnv({ RPC_URL: "localhost:8545" })).toThrow(/RPC_URL/);
    expect(() => readEnv({ RPC_URL: "ws://127.0.0.1:8545" })).toThrow(/http\(s\)/);
    expect(() => readEnv({ RPC_URL: "ftp://rpc.example/v2/SECRETAPIKEY" })).toThrow(/ftp:\/\/rpc\.example\/…/);
    expect(() => readEnv({ RPC_URL: "ftp://rpc.example/v2/SECRETAPIKEY" })).not.toThrow(/SECRETAPIKEY/);
    expect(readEnv({ RPC_URL: "https://rpc.example/v2/key" }).rpcUrl).toBe("https://rpc.example/v2/key");
    expect(() => readEnv({ LOG_LEVEL: "loud" })).toThrow(/LOG_LEVEL/);
  });
});

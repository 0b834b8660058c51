/** The start-up checks run and check-config share (src/ops/preflight.ts), the parts that need no chain. */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig, readEnv } from "../../src/config/load.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { checkStateDir, fundingFloor, resolveRun } from "../../src/ops/preflight.ts";

const dir = mkdtempSync(join(tmpdir(), "perp-keeper-preflight-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = {
  network: { name: "devnet", chainId: 31337, rpcUrl: "http://127.0.0.1:1" },
  exchange: { adapter: "perp-engine", address: "0x5FbDB2315678afecb367f032d93F642f64180aa3", deployBlock: 0 },
  keeper: { stateDir: "./from-config" },
};
const configFile = join(dir, "keeper.json");
writeFileSync(configFile, JSON.stringify(base));

describe("checkStateDir", () => {
  it("creates the state directory with journal/ and snapshot/, and leaves no probe behind", () => {
    const state = join(dir, "fresh");
    checkStateDir(state);
    expect(readdirSync(state).sort()).toEqual(["journal", "snapshot"]);
    expect(readdirSync(join(state, "journal"))).toEqual([]);
  });

  it("refuses a journal/ that is not a writable directory, naming it", () => {
    const state = join(dir, "journal-is-a-file");
    mkdirSync(state);
    writeFileSync(join(state, "journal"), "");
    expect(() => checkStateDir(state)).toThrow(`the state directory is not writable: ${join(state, "journal")}`);
  });
});

describe("resolveRun", () => {
  const key = ANVIL_KEYS[1] as string;
  it("applies KEEPER_STATE_DIR and KEEPER_DRY_RUN over the config file, and says where each came from", () => {
    const env = readEnv({ KEEPER_PRIVATE_KEY: key, KEEPER_STATE_DIR: "/var/lib/k", KEEPER_DRY_RUN: "true" });
    const s = resolveRun({ configPath: configFile, env, rpcFlag: false, dryRunFlag: undefined });
    expect(s.config.keeper.stateDir).toBe("/var/lib/k");
    expect(s.config.keeper.dryRun).toBe(true);
    expect([s.stateDirSource, s.dryRunSource, s.rpcSource]).toEqual([
      "KEEPER_STATE_DIR",
      "KEEPER_DRY_RUN",
      "config network.rpcUrl",
    ]);
    const flagged = resolveRun({
      configPath: configFile,
      env: readEnv({ KEEPER_PRIVATE_KEY: key }),
      rpcFlag: false,
      dryRunFlag: false,
    });
    expect(flagged.config.keeper.stateDir).toBe("./from-config");
    expect(flagged.dryRunSource).toBe("--dry-run");
  });

  it("needs a key, as run does", () => {
    expect(() =>
      resolveRun({ configPath: configFile, env: readEnv({}), rpcFlag: false, dryRunFlag: undefined }),
    ).toThrow(/KEEPER_PRIVATE_KEY is not set/);
  });
});

describe("fundingFloor", () => {
  const keeper = parseConfig(base).keeper;
  it("is two liquidations' gas (80k each) at base fee x multiplier + the tip floor", () => {
    // 2 x 80,000 x (10 gwei x 2 + 0.01 gwei)
    expect(fundingFloor(keeper, 10_000_000_000n)).toBe(160_000n * 20_010_000_000n);
  });

  it("keeper.minSignerBalance when higher, and the fee ceiling caps the max fee", () => {
    expect(fundingFloor({ ...keeper, minSignerBalance: "1" }, 10_000_000_000n)).toBe(10n ** 18n);
    expect(fundingFloor({ ...keeper, maxFeePerGasGwei: "5" }, 10_000_000_000n)).toBe(160_000n * 5_000_000_000n);
  });
});

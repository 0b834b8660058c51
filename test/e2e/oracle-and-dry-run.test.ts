/**
 * Bad oracle answers are refused; in a dry run the keeper finds and prices liquidations and sends nothing, and it
 * runs beside the live keeper of the same key and state directory without touching its lock, journal or snapshot.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseUnits } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mockV3AggregatorAbi } from "../../abi/MockV3Aggregator.ts";
import type { RunningKeeper } from "../../src/app.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions, TEXTBOOK_POSITIONS } from "../../src/devnet/positions.ts";
import type { Attempt } from "../../src/executor/attempt.ts";
import { attemptRecord, Journal } from "../../src/executor/journal.ts";
import { journalPath } from "../../src/executor/signers.ts";
import { type DevnetFixture, shutdown, startDevnet, startTestKeeper, testStateDir } from "../helpers/devnet.ts";
import { type CapturedLog, captureLogs } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;

beforeAll(async () => {
  net = await startDevnet({ accounts: 5 });
  await openPositions(net.ex, TEXTBOOK_POSITIONS);
  ({ keeper, logs } = await startTestKeeper(net, { dryRun: true, gasTokenPrice: "3000" }));
});

afterAll(async () => {
  await shutdown(keeper, net);
});

describe("bad oracle answers", () => {
  it("refuses a zero answer: the market is skipped, nothing is flagged", async () => {
    await net.ex.setPrice(ETH, 0n);
    await until("an oracle_invalid line", () => logs.events("oracle_invalid").length > 0);
    expect(logs.events("oracle_invalid")[0]).toMatchObject({ market: "ETH-USD", reason: "non_positive_answer" });
    // more blocks on the same bad answer: reported once, not every block
    const k = keeper as RunningKeeper;
    for (let i = 0; i < 3; i++) await net.ex.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    const head = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
    await until("the keeper at the head", () => k.watcher.latestTick?.blockNumber === head);
    expect(logs.events("oracle_invalid")).toHaveLength(1);
    expect(logs.events("position_flagged")).toHaveLength(0);
  });

  it("refuses an answer older than the market's maxOracleAge", async () => {
    const block = await net.ex.publicClient.getBlock();
    const old = block.timestamp - 3601n;
    await net.ex.send(net.ex.owner, {
      address: net.ex.d.markets[ETH]?.oracle,
      abi: mockV3AggregatorAbi,
      functionName: "updateRoundData",
      args: [100n, parseUnits("1000", ORACLE_DECIMALS), old, old],
    });
    await until("a stale oracle_invalid line", () => logs.events("oracle_invalid").some((l) => l.reason === "stale"));
    expect(logs.events("oracle_invalid").some((l) => l.reason === "stale" && l.market === "ETH-USD")).toBe(true);
    expect(logs.events("position_flagged")).toHaveLength(0); // 1,000 would be far below the ETH long's liquidation price
  });
});

describe("dry run", () => {
  it("simulates and prices the liquidation of the 20x ETH long after a 5% drop, and sends nothing", async () => {
    await net.ex.setPrice(ETH, parseUnits("2375", ORACLE_DECIMALS));
    await until("a liquidation_dry_run line", () => logs.events("liquidation_dry_run").length > 0);
    const [dry] = logs.events("liquidation_dry_run");
    const trader = net.ex.trader(3).account.address;
    expect(dry).toMatchObject({ trader, marketId: ETH });
    expect(Number(dry?.reward)).toBeCloseTo(4 * 2375 * 0.005, 6);
    // gas at Anvil's ~1 gwei, priced at 3,000 per ETH: a profit just under the reward
    expect(Number(dry?.expectedProfit)).toBeLessThan(Number(dry?.reward));
    expect(Number(dry?.expectedProfit)).toBeGreaterThan(Number(dry?.reward) - 5);
    expect(BigInt(dry?.gas as string)).toBeGreaterThan(21_000n);
    expect(logs.events("liquidation_sent")).toHaveLength(0);
    expect(logs.events("oracle_recovered")).toMatchObject([{ market: "ETH-USD" }]);
    const keeperAddress = net.ex.trader(1).account.address;
    expect(await net.ex.publicClient.getTransactionCount({ address: keeperAddress })).toBe(0);
    expect((await net.ex.position(trader, ETH)).size).not.toBe(0n);
  });
});

/** Every file under `dir`, by relative path, with its bytes and mtime. */
function tree(dir: string): Record<string, { text: string; mtimeMs: number }> {
  const out: Record<string, { text: string; mtimeMs: number }> = {};
  for (const entry of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
    const at = join(dir, entry);
    if (statSync(at).isFile()) out[entry] = { text: readFileSync(at, "utf8"), mtimeMs: statSync(at).mtimeMs };
  }
  return out;
}

describe("dry run beside the live keeper", () => {
  it("starts while the live keeper holds the signer's lock and leaves its state directory byte for byte", async () => {
    const stateDir = testStateDir();
    const key = ANVIL_KEYS[1];
    const address = privateKeyToAccount(key).address;
    const path = journalPath(stateDir, await net.ex.publicClient.getChainId(), address);
    // the live keeper: its journal open (and locked), one attempt of its own in flight
    const { journal: live } = await Journal.open(path, { log: captureLogs().log });
    const inFlight: Attempt = {
      id: "live-1",
      signer: address,
      nonce: 1_000,
      kind: "single",
      targets: [],
      to: address,
      data: "0x",
      gas: 21_000n,
      txs: [],
      status: "signed",
      createdAtBlock: 1n,
    };
    await live.append([attemptRecord(inFlight)]);
    const before = tree(stateDir);
    expect(Object.keys(before).sort()).toEqual([
      join("journal", `${path.split("/").at(-1)}`),
      join("journal", `${path.split("/").at(-1)}.lock`),
    ]);
    // 70 blocks: a final block (Anvil's finalized tag, 64 under the head) after the positions, so a snapshot could be
    // written
    await net.ex.publicClient.request({ method: "anvil_mine" as never, params: ["0x46"] as never });
    let dry: RunningKeeper | undefined;
    try {
      // snapshots on (every second): a live keeper would write one once backfilled and again at stop
      const started = await startTestKeeper(net, { dryRun: true, stateDir, snapshotIntervalSeconds: 1 }, [key]);
      dry = started.keeper;
      const dryLogs = started.logs;
      expect(dryLogs.events("journal_read_only")).toMatchObject([{ signer: address, file: path, unresolved: 1 }]);
      expect(dryLogs.events("journal_lock_waiting")).toEqual([]);
      expect(dryLogs.events("executor_recovered")).toEqual([]); // the live keeper's attempt is not its to follow
      await until("the dry run backfilled", () => dryLogs.events("backfill_completed").length > 0);
      await until("a book at a final block", () => dry?.watcher.finalState() !== undefined);
      await new Promise((r) => setTimeout(r, 1_500)); // a snapshot interval: none may be written
      await dry.stop("test finished");
      dry = undefined;
      expect(dryLogs.events("snapshot_written")).toEqual([]);
      expect(tree(stateDir)).toEqual(before);
    } finally {
      await dry?.stop("test finished").catch(() => {});
      await live.close();
    }
  });
});

/**
 * Perp v2 looking ahead, on the real Curie bytecode (Anvil, 1 s blocks) with the protocol's mark-price config
 * (markPriceMarketTwapInterval 1800, premiumInterval 900): the mark is the median of the pool's 15 s TWAP, its 30 min
 * TWAP and index + premium, so after one pool step of -9% (the index moved first) it drifts down over ~15 blocks. ETH
 * longs with leverage spread from 7x to 9.8x cross maintenance at different blocks of that drift.
 *
 * With `exchange.lookahead` on, the keeper reads each head's marks again as the next block will see them and sends
 * for that block the liquidations of the accounts that will be liquidatable there: most accounts are liquidated in
 * the first block whose transactions can liquidate them, i.e. the chain's own views at the END of block L-1
 * (getAccountValue >= getMarginRequirementForLiquidation, read at L-1) say healthy, yet our liquidator's
 * PositionLiquidated for them is in block L. The control runs the same scenario on a fresh chain with lookahead off:
 * no account is liquidated that way (each only after an end-of-block state already said liquidatable).
 * Everything is measured on the chain; the keeper's log only says that it anticipated.
 */
import type { Address } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accountBalanceAbi, clearingHouseAbi } from "../../src/devnet/perpV2/abis.ts";
import { long, openTraders, spec, type Trader } from "../../src/devnet/perpV2/stage.ts";
import {
  chainBetween,
  healthReader,
  KEEPER_KEYS,
  type PerpV2Fixture,
  settledKeeper,
  startPerpV2Fixture,
  startPerpV2Keeper,
  stopKeeper,
  type TestKeeper,
  unexplained,
  waitHealthy,
  writeLogs,
} from "../helpers/perpV2.ts";
import { until } from "../helpers/wait.ts";

const ETH = "vETH";
const PRICE = 2000;
/** The step: index, then the pool, to 91% (943 ticks: within maxTickCrossedWithinBlock's 1000). */
const STEP_TO = String(PRICE * 0.91);
/**
 * $1000 each, ETH longs of these notionals: measured without a keeper (pool reset to 2000 after they opened), they
 * cross maintenance 7 to 13 blocks after the step, one to four a block (the mark falls ~12.5 a block, 2000 -> 1823).
 */
const NOTIONALS = [9800, 9600, 9400, 9200, 9000, 8800, 8600, 8400, 8200, 8000, 7800, 7600, 7400, 7200, 7000];
/** Blocks (1 s) after the step by which the mark has stopped drifting (the 15 s market TWAP). */
const DRIFT_BLOCKS = 16n;
const signers = KEEPER_KEYS.map((k) => privateKeyToAccount(k).address.toLowerCase() as Address);

/** What the chain's own views say of `trader` at the end of `block`. */
async function liquidatableAt(fx: PerpV2Fixture, trader: Address, block: bigint): Promise<boolean> {
  const read = (address: Address, abi: unknown, functionName: string) =>
    fx.client.readContract({
      address,
      abi,
      functionName,
      args: [trader],
      blockNumber: block,
    } as never) as Promise<bigint>;
  const [value, requirement] = await Promise.all([
    read(fx.dev.d.clearingHouse, clearingHouseAbi, "getAccountValue"),
    read(fx.dev.d.accountBalance, accountBalanceAbi, "getMarginRequirementForLiquidation"),
  ]);
  return value < requirement;
}

interface FirstLiquidation {
  readonly name: string;
  readonly trader: Address;
  /** The block of the trader's first liquidation after the step. */
  readonly block: bigint;
  readonly ours: boolean;
  /** The first block from the step whose end-of-block state says liquidatable (undefined: none before `block`). */
  readonly endLiquidatable: bigint | undefined;
  /** Liquidated by us in the first block whose transactions could: the end of block - 1 said healthy. */
  readonly firstPossible: boolean;
}

interface Outcome {
  readonly stepBlock: bigint;
  readonly first: FirstLiquidation[];
  readonly anticipated: Record<string, unknown>[];
  readonly reverted: number;
  readonly txs: number;
  readonly failed: { reason: string; name: string; blockNumber: bigint; txHash: string }[];
  readonly ours: { name: string; blockNumber: bigint; txHash: string }[];
  readonly healthyError: string | undefined;
  /** Traders the chain says are liquidatable at the last head read. */
  readonly leftLiquidatable: string[];
  /**
   * Forecasts (head -> forBlock) whose expected time was not the block's real time: "head->forBlock +Δs". Printed,
   * not asserted: with chain/blockClock.ts as of this test, the forecast made at the step's head is 14 s late (the
   * keeper has seen two intervals, the devnet's 15 s warp and 1 s, and the clock takes the upper of the two), so every
   * account is sent for the next block too early and each item is skipped (`early`).
   */
  readonly mistimed: string[];
  /** Batch items skipped as not liquidatable other than follow-ups the account no longer needed (sent early). */
  readonly early: number;
  readonly seconds: number;
}

/**
 * One run: a fresh chain with the protocol's marks, the traders opened and the pool put back at 2000, a keeper
 * (`exchange` settings) caught up, then the step; waits until no trader is liquidatable, and reads what happened.
 */
function scenario(label: string, exchange: Record<string, unknown>) {
  let fx: PerpV2Fixture | undefined;
  let run: TestKeeper | undefined;
  let traders: Trader[] = [];
  let outcome: Outcome | undefined;

  beforeAll(async () => {
    fx = await startPerpV2Fixture({ markPrice: "protocol" }); // and its 3600 s warm-up
    const dev = fx.dev;
    traders = await openTraders(
      dev,
      10,
      NOTIONALS.map((n) => spec(`long${n}`, 1000, long(ETH, n))),
    );
    // the longs pushed the pool up ~1.3%: the arbitrageur puts it back, so that the step is one trade of 943 ticks
    await dev.movePoolTo(ETH, String(PRICE));
    run = await startPerpV2Keeper(fx, { exchange });
    const { keeper, logs } = run;
    await until("backfill_completed", () => logs.events("backfill_completed").length > 0, 60_000);
    const head = await fx.head();
    await until("the keeper at the head", () => (keeper.watcher.latestTick?.blockNumber ?? -1n) >= head, 30_000);
    // the setup warps the chain's clock (the pool's moves jump 15 s): the keeper's block clock (its last 8 intervals)
    // sees 8 ordinary 1-s blocks before the step, as a chain that is not set in time gives it
    const clean = head + 8n;
    await until("8 ordinary blocks", () => (keeper.watcher.latestTick?.blockNumber ?? -1n) >= clean, 30_000);
  }, 180_000);

  afterAll(async () => {
    try {
      const dir = process.env.PV2_E2E_LOGS; // a directory: the keeper's log and who is who, for a diagnosis
      if (dir && fx && run) {
        const names = Object.fromEntries(traders.map((t) => [t.address, t.name]));
        writeLogs(`${dir}/${label}`, [run], { names, liquidator: fx.liquidator, d: fx.dev.d, outcome });
      }
      await stopKeeper(run?.keeper);
    } finally {
      await fx?.stop();
    }
  });

  /** Runs the step and measures it (once). */
  return async (): Promise<Outcome> => {
    if (outcome) return outcome;
    const f = fx as PerpV2Fixture;
    const { keeper, logs } = run as TestKeeper;
    const started = Date.now();
    const nameOf = (a: Address) => traders.find((t) => t.address === a)?.name ?? a;
    const health = healthReader(f);
    const who = traders.map((t) => t.address);
    expect([...(await health(who)).liquidatable.values()].some(Boolean)).toBe(false);

    await f.dev.setIndexPrice(ETH, STEP_TO);
    const steps = await f.dev.movePoolTo(ETH, STEP_TO, { maxStep: 0.1 });
    expect(steps).toHaveLength(1);
    const stepBlock = steps[0]?.receipt.blockNumber as bigint;
    // the drift: the 15 s TWAP has taken in the step 15 blocks after it; then none may be left liquidatable
    const drifted = stepBlock + DRIFT_BLOCKS;
    await until(`block ${drifted}`, async () => (await f.head()) >= drifted, 60_000);

    const waited = await waitHealthy(health, who, `no account liquidatable (${label})`, nameOf, 90_000);
    await settledKeeper(keeper).catch(() => {});
    const quiet = (waited.at ?? (await f.head())) + 2n;
    await until("two more blocks", async () => (await f.head()) >= quiet, 10_000);
    const chain = await chainBetween(f, signers, stepBlock, await f.head());

    const final = await health(who);
    // the forecasts' times against the blocks' own
    const mistimed: string[] = [];
    const forecasts = new Map<string, { head: bigint; forBlock: bigint; expected: bigint }>();
    for (const l of logs.events("account_anticipated")) {
      const key = `${l.blockNumber}->${l.forBlock}@${l.expectedTimestamp}`;
      const at = { head: BigInt(String(l.blockNumber)), forBlock: BigInt(String(l.forBlock)) };
      forecasts.set(key, { ...at, expected: BigInt(String(l.expectedTimestamp)) });
    }
    for (const fc of forecasts.values()) {
      const real = (await f.client.getBlock({ blockNumber: fc.forBlock })).timestamp;
      if (real !== fc.expected)
        mistimed.push(`${fc.head}->${fc.forBlock} ${fc.expected > real ? "+" : ""}${fc.expected - real}s`);
    }

    const first: FirstLiquidation[] = [];
    for (const t of traders) {
      const mine = chain.liquidated.filter((l) => l.trader === t.address);
      if (mine.length === 0) continue;
      const l = mine.reduce((a, b) => (b.blockNumber < a.blockNumber ? b : a));
      let endLiquidatable: bigint | undefined;
      for (let b = stepBlock; b < l.blockNumber && endLiquidatable === undefined; b++) {
        if (await liquidatableAt(f, t.address, b)) endLiquidatable = b;
      }
      first.push({
        name: t.name,
        trader: t.address,
        block: l.blockNumber,
        ours: l.liquidator === f.liquidator.toLowerCase(),
        endLiquidatable,
        firstPossible:
          l.liquidator === f.liquidator.toLowerCase() && !(await liquidatableAt(f, t.address, l.blockNumber - 1n)),
      });
    }
    outcome = {
      stepBlock,
      first,
      anticipated: logs.events("account_anticipated"),
      reverted: chain.reverted.length,
      txs: chain.txs.length,
      failed: chain.failed.map((x) => ({ ...x, name: nameOf(x.trader) })),
      ours: chain.ours.map((x) => ({ name: nameOf(x.trader), blockNumber: x.blockNumber, txHash: x.txHash })),
      healthyError: waited.error,
      leftLiquidatable: [...final.liquidatable].filter(([, x]) => x).map(([a]) => nameOf(a)),
      mistimed,
      early: unexplained(chain.failed, chain.liquidated).length,
      seconds: (Date.now() - started) / 1000,
    };
    const inFirst = first.filter((x) => x.firstPossible);
    console.log(
      `[perp-v2 lookahead e2e] ${label}: step in block ${stepBlock}; ${first.length}/${traders.length} accounts liquidated, ${inFirst.length} in the first block that could (the end of the block before said healthy); ${chain.ours.length} liquidations by our contract in ${chain.txs.length} transactions (${chain.reverted.length} reverted, ${chain.failed.length} batch items skipped: ${[...new Set(outcome.failed.map((x) => x.reason))].join(", ") || "-"}, ${outcome.early} of them not follow-ups); ${outcome.anticipated.length} account_anticipated lines, ${forecasts.size} forecasts, mistimed: ${mistimed.join(", ") || "none"}; ${outcome.seconds.toFixed(0)} s\n  ${first
        .map(
          (x) =>
            `${x.name}: liquidated in ${x.block} (+${x.block - stepBlock})${x.firstPossible ? " first possible" : ` end-of-block liquidatable from ${x.endLiquidatable ?? "?"} (${x.endLiquidatable === undefined ? "?" : `${x.block - x.endLiquidatable} later`})`}${x.ours ? "" : " NOT OURS"}`,
        )
        .join("\n  ")}${waited.error ? `\n  ${waited.error}` : ""}`,
    );
    return outcome;
  };
}

describe("Perp v2 lookahead: liquidations land in the first block that allows them (protocol marks, Anvil 1 s blocks)", () => {
  describe("lookahead on (the default)", () => {
    const measure = scenario("lookahead on", {});

    it("liquidates most accounts that cross maintenance during the mark's drift in the very block they cross it", async () => {
      const o = await measure();
      const inFirst = o.first.filter((x) => x.firstPossible);
      expect.soft(o.healthyError).toBeUndefined();
      expect.soft(o.leftLiquidatable).toEqual([]);
      expect.soft(o.reverted).toBe(0);
      expect.soft(o.first.filter((x) => !x.ours).map((x) => x.name)).toEqual([]);
      expect.soft(o.anticipated.length).toBeGreaterThan(0);
      expect(o.first.length).toBeGreaterThanOrEqual(6);
      expect(inFirst.length).toBeGreaterThanOrEqual(3);
      expect(inFirst.length * 2).toBeGreaterThanOrEqual(o.first.length);
      // forecasts timed to the real next block: few items sent a block early and skipped (a 15 s jump seen among the
      // last intervals once forecast the next block 14 s late, and every account's item was skipped)
      expect.soft(o.early).toBeLessThanOrEqual(Math.floor(o.first.length / 3));
      // each was anticipated: an account_anticipated line for it, for the block it was liquidated in
      for (const x of inFirst) {
        const lines = o.anticipated.filter((l) => String(l.account).toLowerCase() === x.trader);
        expect
          .soft(
            lines.some((l) => BigInt(String(l.forBlock)) === x.block),
            `${x.name} anticipated for block ${x.block}`,
          )
          .toBe(true);
      }
    }, 180_000);
  });

  describe("control: lookahead off", () => {
    const measure = scenario("lookahead off", { lookahead: false });

    it("liquidates each account only after an end-of-block state already said it was liquidatable", async () => {
      const o = await measure();
      expect.soft(o.healthyError).toBeUndefined();
      expect.soft(o.leftLiquidatable).toEqual([]);
      expect.soft(o.reverted).toBe(0);
      expect.soft(o.anticipated).toEqual([]);
      expect(o.first.length).toBeGreaterThanOrEqual(6);
      expect(o.first.filter((x) => x.firstPossible).map((x) => x.name)).toEqual([]);
    }, 180_000);
  });
});

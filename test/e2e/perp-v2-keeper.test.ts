/**
 * The keeper liquidating Perp v2 ("Curie") from its real npm bytecode on Anvil (1 s blocks), through its own
 * PerpV2Liquidator: two markets made by a maker, traders long and short, some cross-margin, a leverage spread so that
 * a crash of both markets (index first, then the pool in steps) leaves some accounts wholly liquidatable (margin ratio
 * < 3.125%), some partly (the contract takes 50% a call), $100 positions taken whole, and the rest healthy. Then: a
 * competitor outbidding the keeper for one target, a maker whose orders must be cancelled first, a restart mid-burst,
 * and a reorganisation that takes liquidations back. Health is always the chain's own (getAccountValue <
 * getMarginRequirementForLiquidation), and every transaction of the keeper's signers is checked on chain.
 */
import { type Address, decodeEventLog, decodeFunctionData, type Hex, parseGwei } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { perpV2LiquidatorAbi } from "../../abi/PerpV2Liquidator.ts";
import { accountBalanceAbi, clearingHouseAbi } from "../../src/devnet/perpV2/abis.ts";
import { priceToTick } from "../../src/devnet/perpV2/math.ts";
import { decodePerpV2Events } from "../../src/devnet/perpV2/scenario.ts";
import type { Wallet } from "../../src/devnet/perpV2/tx.ts";
import type { LogRef } from "../../src/state/events.ts";
import {
  chainBetween,
  freshBook,
  type HealthReader,
  healthReader,
  KEEPER_KEYS,
  type Leg,
  naming,
  openTraders,
  type PerpV2Fixture,
  ROLE,
  settledKeeper,
  startPerpV2Fixture,
  startPerpV2Keeper,
  stopKeeper,
  submitPoolStep,
  type TestKeeper,
  type Trader,
  type TraderSpec,
  unexplained,
  waitHealthy,
  withMiningPaused,
  writeLogs,
} from "../helpers/perpV2.ts";
import { until } from "../helpers/wait.ts";

const ETH = "vETH";
const BTC = "vBTC";
/** Blocks after the crash's last pool step by which every liquidation must have landed. */
const BLOCK_BOUND = 20n;
const long = (market: Leg["market"], notional: number): Leg => ({ market, side: "long", notional: String(notional) });
const short = (market: Leg["market"], notional: number): Leg => ({ market, side: "short", notional: String(notional) });
const spec = (name: string, usdc: number, ...legs: Leg[]): TraderSpec => ({ name, usdc: String(usdc), legs });

/** Ratios after ETH 2000 -> 1800 and BTC 30000 -> 26500 (measured without a keeper): full < 3.125% <= part < 6.25%. */
const WAVE1: TraderSpec[] = [
  ...[9000, 9000, 8500, 8500].map((n, i) => spec(`ethFull${i}`, 1000, long(ETH, n))),
  ...[6500, 6700, 6900, 7100].map((n, i) => spec(`ethPart${i}`, 1000, long(ETH, n))),
  spec("victim", 1000, long(ETH, 9500)),
  spec("ethTiny", 13.5, long(ETH, 100)),
  spec("safeEth0", 2000, long(ETH, 6000)),
  spec("safeEth1", 3000, long(ETH, 8000)),
  spec("safeEthShort0", 1000, short(ETH, 5000)),
  spec("safeEthShort1", 1500, short(ETH, 9000)),
  ...[9000, 8500, 8800].map((n, i) => spec(`btcFull${i}`, 1000, long(BTC, n))),
  ...[6600, 6800, 7000].map((n, i) => spec(`btcPart${i}`, 1000, long(BTC, n))),
  spec("btcTiny", 13.5, long(BTC, 100)),
  spec("safeBtc", 3000, long(BTC, 9000)),
  spec("safeBtcShort", 1000, short(BTC, 6000)),
  spec("crossFull", 1400, long(ETH, 6500), long(BTC, 6000)),
  spec("crossPart", 1500, long(ETH, 11000), short(BTC, 3000)),
  spec("crossHedged", 1500, long(ETH, 9000), short(BTC, 4000)),
  spec("safeCross", 3000, long(ETH, 5000), long(BTC, 4000)),
];
const WAVE2: TraderSpec[] = [
  ...[9000, 9000, 8500, 6800, 6800].map((n, i) => spec(`w2Eth${i}`, 1000, long(ETH, n))),
  ...[9000, 9000, 8500, 6800, 6800].map((n, i) => spec(`w2Btc${i}`, 1000, long(BTC, n))),
  spec("w2Cross", 1300, long(ETH, 6000), long(BTC, 6000)),
];
const WAVE3: TraderSpec[] = [9000, 9000, 8500, 8000].map((n, i) => spec(`w3Eth${i}`, 1000, long(ETH, n)));

let fx: PerpV2Fixture | undefined;
let run: TestKeeper | undefined;
const runs: TestKeeper[] = [];
const traders: Trader[] = [];
let maker2: Wallet;
const signers = KEEPER_KEYS.map((k) => privateKeyToAccount(k).address.toLowerCase() as Address);
const ready = () => fx as PerpV2Fixture;
const keeper = () => run as TestKeeper;
const byName = (name: string) => traders.find((t) => t.name === name) as Trader;
const lower = (a: string) => a.toLowerCase() as Address;
const nameOf = (a: Address) =>
  traders.find((t) => t.address === a)?.name ?? (a === lower(maker2.account.address) ? "maker2" : a);
let health: HealthReader;
const healthyOrNot = (who: readonly Address[], what: string) => waitHealthy(health, who, what, nameOf);
/** Waits until none of `who` is liquidatable: a precondition, thrown on a timeout. */
async function allHealthy(who: readonly Address[], what: string): Promise<bigint> {
  const r = await healthyOrNot(who, what);
  if (r.error !== undefined || r.at === undefined) throw new Error(r.error);
  return r.at;
}
const onChain = (from: bigint, to: bigint) => chainBetween(ready(), signers, from, to);

beforeAll(async () => {
  fx = await startPerpV2Fixture();
  const dev = fx.dev;
  health = healthReader(fx);
  // a maker with a narrow vBTC order (the price falls through it: it buys) and an ETH long, collateral near its minimum
  maker2 = dev.account(ROLE.maker2);
  await dev.fund(maker2, "5120");
  await dev.addLiquidity(maker2, BTC, "1", "30000", priceToTick(28_000), priceToTick(31_000));
  await dev.openLong(maker2, ETH, "9000");
  traders.push(...(await openTraders(dev, 10, WAVE1)));
  run = await startPerpV2Keeper(fx);
  runs.push(run);
  const logs = run.logs;
  await until("backfill_completed", () => logs.events("backfill_completed").length > 0, 60_000);
}, 240_000);

afterAll(async () => {
  try {
    const dir = process.env.PV2_E2E_LOGS; // a directory: every keeper's log and who is who, for a diagnosis
    if (dir && fx) {
      const names = Object.fromEntries(traders.map((t) => [t.address, t.name]));
      writeLogs(dir, runs, { names, maker2: maker2.account.address, liquidator: fx.liquidator, d: fx.dev.d });
    }
    await stopKeeper(run?.keeper);
  } finally {
    await fx?.stop();
  }
});

describe("the keeper on Perp v2 (real Curie bytecode, Anvil with 1 s blocks)", () => {
  let crashStart = 0n;
  let crashEnd = 0n;
  let wave1: Awaited<ReturnType<typeof onChain>>;
  let competitorTx: Hex;

  it("liquidates every account a crash of both markets makes liquidatable, partial ones until healthy, nothing else", async () => {
    const { dev, client } = ready();
    const { logs } = keeper();
    const victim = byName("victim");
    const competitor = dev.account(ROLE.competitor);
    const everyone = [...traders.map((t) => t.address), lower(maker2.account.address)];
    expect([...(await health(everyone)).liquidatable.values()].some(Boolean)).toBe(false);

    crashStart = await ready().head();
    await dev.setIndexPrice(ETH, "1800");
    // the first ETH pool step mined by hand: the keeper's transaction for the victim waits in the pool, and a
    // competitor outbids it (Anvil orders by fee cap) in the block that mines it
    await withMiningPaused(ready(), async () => {
      await dev.warp(15);
      const step = await submitPoolStep(dev, ETH, "1845");
      await ready().rpc("evm_mine");
      await dev.tx.confirm(step);
      await until(
        "the keeper's liquidation of the victim",
        () => naming(logs, "liquidation_sent", victim.address).length > 0,
        20_000,
      );
      competitorTx = await competitor.writeContract({
        address: dev.d.clearingHouse,
        abi: clearingHouseAbi,
        functionName: "liquidate",
        args: [victim.address, dev.market(ETH).baseToken, 0n],
        gas: 2_900_000n,
        maxFeePerGas: parseGwei("1000"),
        maxPriorityFeePerGas: parseGwei("1"),
      });
      await ready().rpc("evm_mine");
    });
    expect((await client.waitForTransactionReceipt({ hash: competitorTx })).status).toBe("success");
    await dev.movePoolTo(ETH, "1800");
    await dev.crash(BTC, "26500");
    crashEnd = await ready().head();
    const atEnd = await health(everyone);

    const waited = await healthyOrNot(everyone, "no account liquidatable after the crash");
    await settledKeeper(keeper().keeper).catch(() => {});
    const quiet = (waited.at ?? (await ready().head())) + 2n;
    await until("two more blocks", async () => (await ready().head()) >= quiet, 10_000);
    wave1 = await onChain(crashStart, await ready().head());
    const { liquidated, failed, ours, calls, txs } = wave1;
    const multi = traders.filter((t) => calls(t.address).length >= 2);
    const whole = traders.filter((t) => t.legs.length === 1 && calls(t.address).length === 1);
    const safe = traders.filter((t) => t.name.startsWith("safe"));
    console.log(
      `[perp-v2 e2e] crash: ${everyone.length} accounts, ${new Set(liquidated.map((l) => l.trader)).size} liquidated (${whole.length} whole in one call, ${multi.length} over several), ${safe.length} healthy untouched; ${ours.length} liquidations by our contract in ${txs.length} transactions (${wave1.reverted.length} reverted, ${failed.length} batch items failed); crash blocks ${crashStart}..${crashEnd}, last liquidation ${wave1.last} (${wave1.last - crashEnd} blocks after the last pool step)${waited.error ? `; ${waited.error}` : ""}`,
    );

    // every account the chain said was liquidatable is healthy again, within the bound, nothing reverted
    expect.soft(waited.error).toBeUndefined();
    expect.soft(wave1.reverted).toEqual([]);
    expect.soft(wave1.last - crashEnd).toBeLessThanOrEqual(BLOCK_BOUND);
    for (const [who, was] of atEnd.liquidatable) {
      if (was)
        expect
          .soft(
            liquidated.some((l) => l.trader === who),
            `${nameOf(who)} liquidated`,
          )
          .toBe(true);
    }
    // the scenario's mix: partial accounts needed several calls, $100 positions went whole in one
    expect.soft(multi.length).toBeGreaterThanOrEqual(2);
    for (const name of ["ethTiny", "btcTiny"]) expect.soft(calls(byName(name).address), name).toHaveLength(1);
    expect.soft(whole.length).toBeGreaterThanOrEqual(4);
    // every liquidation but the competitor's is ours
    expect
      .soft(liquidated.filter((l) => l.liquidator !== lower(ready().liquidator)))
      .toEqual([expect.objectContaining({ trader: victim.address, liquidator: lower(competitor.account.address) })]);
    // healthy accounts: never liquidated, never even sent for
    expect(safe.length).toBe(7);
    const safeHit = liquidated.filter((l) => safe.some((t) => t.address === l.trader)).map((l) => nameOf(l.trader));
    expect.soft(safeHit).toEqual([]);
    expect.soft(safe.filter((t) => naming(logs, "liquidation_sent", t.address).length > 0)).toEqual([]);
    // no batch item failed but the victim's (the race the test caused) and follow-ups the account no longer needed
    const otherFailures = unexplained(failed, liquidated)
      .filter((f) => f.trader !== victim.address)
      .map((f) => ({ ...f, who: nameOf(f.trader) }));
    expect.soft(otherFailures).toEqual([]);
  }, 300_000);

  it("loses a race to a competitor cleanly: no revert, no second attempt at the gone target", async () => {
    const { logs } = keeper();
    const victim = byName("victim");
    const mine = wave1.txs.filter((t) =>
      naming(logs, "liquidation_sent", victim.address).some((l) => l.txHash === t.hash),
    );
    const race = await ready().client.getTransactionReceipt({ hash: competitorTx });
    const sent = naming(logs, "liquidation_sent", victim.address);
    const outcome = [
      ...naming(logs, "liquidation_lost_race", victim.address),
      ...naming(logs, "liquidation_skipped", victim.address),
    ];
    console.log(
      `[perp-v2 e2e] race: competitor first in block ${race.blockNumber}; keeper: ${sent.length} attempt(s) for the victim, mined in block(s) ${mine.map((t) => `${t.blockNumber} ${t.status}`).join(", ")}, outcome ${outcome.map((l) => `${l.event}${l.how ? `/${l.how}` : l.reason ? `/${l.reason}` : ""}`).join(", ")}`,
    );
    // the keeper's one transaction for the victim was mined in the competitor's block (or later) and succeeded
    expect.soft(sent).toHaveLength(1);
    expect.soft(mine).toHaveLength(1);
    expect.soft(mine[0]?.blockNumber).toBeGreaterThanOrEqual(race.blockNumber);
    expect.soft(mine[0]?.status).toBe("success");
    // its outcome: lost or skipped, never confirmed; the victim went to the competitor alone
    expect.soft(outcome.length).toBeGreaterThanOrEqual(1);
    expect.soft(naming(logs, "liquidation_confirmed", victim.address)).toEqual([]);
    expect.soft(wave1.calls(victim.address)).toEqual([]);
    expect.soft(wave1.failed.filter((f) => f.trader === victim.address).length).toBeLessThanOrEqual(1);
  });

  it("cancels a liquidatable maker's orders and liquidates it in one transaction (cancelAndLiquidate)", async () => {
    const { dev, client } = ready();
    const { logs } = keeper();
    const maker = lower(maker2.account.address);
    const btc = lower(dev.market(BTC).baseToken);
    const attempts = naming(logs, "liquidation_sent", maker);
    // the keeper's transaction that removed the maker's orders, and what else it did
    let cancelled: { hash: Hex; block: bigint; orders: string[][]; removed: number; taken: number } | undefined;
    for (const hash of attempts.map((l) => l.txHash as Hex)) {
      const receipt = await client.getTransactionReceipt({ hash }).catch(() => undefined);
      if (!receipt) continue;
      const events = decodePerpV2Events(receipt.logs);
      const of = (name: string, key: string) =>
        events.findIndex(
          (e) => e.eventName === name && lower(String((e.args as Record<string, unknown>)[key])) === maker,
        );
      const removed = of("LiquidityChanged", "maker");
      if (removed < 0) continue;
      const call = decodeFunctionData({
        abi: perpV2LiquidatorAbi,
        data: (await client.getTransaction({ hash })).input,
      });
      const [orders] = call.args as unknown as [readonly { maker: Address; baseToken: Address }[]];
      const pairs = orders.map((o) => [lower(o.maker), lower(o.baseToken)]);
      cancelled = {
        hash,
        block: receipt.blockNumber,
        orders: pairs,
        removed,
        taken: of("PositionLiquidated", "trader"),
      };
      break;
    }
    const liquidations = wave1.liquidated.filter((l) => l.trader === maker);
    const failures = wave1.failed.filter((f) => f.trader === maker || f.reason.includes("CH_CLWTISO"));
    const hasOrder = await client.readContract({
      address: dev.d.accountBalance,
      abi: accountBalanceAbi,
      functionName: "hasOrder",
      args: [maker2.account.address],
    });
    const stillLiquidatable = (await health([maker])).liquidatable.get(maker);
    console.log(
      `[perp-v2 e2e] maker: orders removed in ${cancelled ? `tx ${cancelled.hash} (block ${cancelled.block}, ${cancelled.block - crashEnd} blocks after the last pool step), liquidated in the same tx: ${cancelled.taken > cancelled.removed}` : "no keeper transaction"}; ${attempts.length} keeper transactions for it, ${liquidations.length} liquidations, ${failures.length} failed items (${[...new Set(failures.map((f) => f.reason))].join(", ")}); still liquidatable: ${stillLiquidatable}`,
    );
    // one transaction: the orders cancelled, then the position liquidated by our contract
    expect(cancelled).toBeDefined();
    expect.soft(cancelled?.orders).toContainEqual([maker, btc]);
    expect.soft(cancelled?.taken ?? -1).toBeGreaterThan(cancelled?.removed ?? 0);
    expect.soft(liquidations.length).toBeGreaterThanOrEqual(1);
    expect.soft(liquidations.filter((l) => l.liquidator !== lower(ready().liquidator))).toEqual([]);
    expect.soft(failures).toEqual([]);
    expect.soft(hasOrder).toBe(false);
    expect.soft(stillLiquidatable).toBe(false);
  });

  it("closes what it took over through the pool (inventory mode close): the liquidator holds nothing soon after", async () => {
    const { dev, client } = ready();
    const { logs } = keeper();
    const liquidator = ready().liquidator;
    const bases = [ETH, BTC].map((m) => dev.market(m).baseToken);
    const sizes = () =>
      Promise.all(
        bases.map((base) =>
          client.readContract({
            address: dev.d.accountBalance,
            abi: accountBalanceAbi,
            functionName: "getTakerPositionSize",
            args: [liquidator, base],
          }),
        ),
      );
    let flatAt: bigint | undefined;
    await until(
      "the liquidator's positions closed",
      async () => {
        const head = await ready().head();
        if ((await sizes()).some((s) => s !== 0n)) return false;
        flatAt = head;
        return true;
      },
      30_000,
    );
    // the closes were the keeper's: InventoryClosed by our contract, in our own transactions
    const after = await onChain(crashStart, await ready().head());
    const closed: bigint[] = [];
    for (const tx of after.txs) {
      const receipt = await client.getTransactionReceipt({ hash: tx.hash });
      for (const l of receipt.logs) {
        if (l.address.toLowerCase() !== lower(liquidator)) continue;
        try {
          const e = decodeEventLog({ abi: perpV2LiquidatorAbi, data: l.data, topics: l.topics });
          if (e.eventName === "InventoryClosed") closed.push(receipt.blockNumber);
        } catch {
          // another of the contract's events
        }
      }
    }
    const confirmed = logs.events("inventory_close_confirmed").length;
    const failed = logs.events("inventory_close_failed").length;
    console.log(
      `[perp-v2 e2e] inventory: ${wave1.ours.length} takeovers in the crash; ${closed.length} closes through the pool (${confirmed} on their own), ${failed} refused by the slippage bound; flat by block ${flatAt} (last liquidation ${wave1.last})`,
    );
    expect(flatAt).toBeDefined();
    expect.soft(closed.length).toBeGreaterThanOrEqual(1);
    // flat within closeWithinBlocks (5, the default) of the crash's last liquidation
    expect.soft((flatAt ?? 0n) - wave1.last).toBeLessThanOrEqual(5n);
    expect.soft(logs.events("liquidator_margin_low")).toEqual([]);
    // the keeper never liquidated its own account (its closes are upkeep, not liquidations)
    expect.soft(after.calls(lower(liquidator))).toEqual([]);
  });

  it("restarted mid-burst with the same state directory and keys, finishes the rest: no nonce sent twice, nothing reverted", async () => {
    const { dev } = ready();
    const first = keeper();
    const w2 = await openTraders(dev, 10 + WAVE1.length, WAVE2);
    traders.push(...w2);
    const burst = traders.map((t) => t.address); // the maker is the third test's subject: judged there
    const sentBefore = first.logs.events("liquidation_sent").length;
    const start = await ready().head();
    const crashing = (async () => {
      await dev.crash(ETH, "1620");
      await dev.crash(BTC, "23850");
    })();
    crashing.catch(() => {});
    const ofWave = (l: Record<string, unknown>) => w2.some((t) => JSON.stringify(l).toLowerCase().includes(t.address));
    await until(
      "the first liquidation of the burst",
      () => first.logs.events("liquidation_sent").slice(sentBefore).some(ofWave),
      60_000,
    );
    await first.keeper.stop("restart test");
    const stopped = first.logs.events("keeper_stopped").at(-1);
    run = await startPerpV2Keeper(ready(), { stateDir: first.stateDir });
    runs.push(run);
    const second = keeper();
    await crashing;
    const crashDone = await ready().head();
    await until("backfill_completed", () => second.logs.events("backfill_completed").length > 0, 60_000);
    const waited = await healthyOrNot(burst, "no account liquidatable after the restart");
    await settledKeeper(second.keeper).catch(() => {});
    const chain = await onChain(start, await ready().head());
    const sentAfter = second.logs.events("liquidation_sent");
    const sent = [...first.logs.events("liquidation_sent").slice(sentBefore), ...sentAfter];
    const nonces = sent.map((l) => `${String(l.signer).toLowerCase()}:${String(l.nonce)}`);
    const minedNonces = chain.txs.map((t) => `${t.from}:${t.nonce}`);
    const failures = unexplained(chain.failed, chain.liquidated).filter(
      (f) => f.trader !== lower(maker2.account.address),
    );
    const recovered = second.logs.events("executor_recovered").map((r) => ({
      settled: r.settled,
      tracked: r.tracked,
      abandoned: r.abandoned,
    }));
    console.log(
      `[perp-v2 e2e] restart: ${w2.length} new accounts, ${new Set(chain.ours.map((l) => l.trader)).size} liquidated in ${chain.ours.length} liquidations, ${chain.txs.length} transactions (${sent.length - sentAfter.length} sent before the stop, ${sentAfter.length} after; pendingInJournal at stop ${String(stopped?.pendingInJournal)}; recovered ${JSON.stringify(recovered)}; ${chain.reverted.length} reverted, ${failures.length} batch items failed); crash done at ${crashDone}, last liquidation ${chain.last} (${chain.last - crashDone} blocks after)${waited.error ? `; ${waited.error}` : ""}`,
    );

    expect.soft(waited.error).toBeUndefined();
    expect.soft(chain.reverted).toEqual([]);
    // no nonce sent twice (by the two keepers together), the second keeper did the rest of the burst
    expect.soft(new Set(nonces).size).toBe(nonces.length);
    expect.soft(new Set(minedNonces).size).toBe(minedNonces.length);
    expect.soft(sentAfter.filter(ofWave).length).toBeGreaterThanOrEqual(1);
    // the wave's accounts went to our contract, and no item of ours failed
    expect.soft(chain.liquidated.filter((l) => l.liquidator !== lower(ready().liquidator))).toEqual([]);
    expect.soft(failures.map((f) => ({ ...f, who: nameOf(f.trader) }))).toEqual([]);
    expect.soft(w2.filter((t) => chain.calls(t.address).length === 0).map((t) => t.name)).toEqual([]);
  }, 300_000);

  it("after a reorganisation takes liquidations back, its book equals a fresh backfill's and it liquidates again", async () => {
    const { dev } = ready();
    const { keeper: k, logs } = keeper();
    const w3 = await openTraders(dev, 10 + WAVE1.length + WAVE2.length, WAVE3);
    traders.push(...w3);
    const who = w3.map((t) => t.address);
    const burst = traders.map((t) => t.address); // the maker is the third test's subject: judged there
    const start = await ready().head();
    const steps = await dev.crash(ETH, "1500");
    expect(steps).toHaveLength(1); // no transaction of the devnet's after it: the reorganisation takes only the keeper's
    const crashBlock = steps[0]?.receipt.blockNumber ?? 0n;
    await allHealthy(burst, "the new accounts liquidated");
    await settledKeeper(k).catch(() => {});
    const before = await onChain(start, await ready().head());
    const firstLiquidation = before.ours
      .filter((l) => who.includes(l.trader))
      .reduce((m, l) => (l.blockNumber < m ? l.blockNumber : m), 2n ** 64n);
    expect(firstLiquidation).toBeGreaterThan(crashBlock);

    const reorgs = logs.events("reorg_detected").length;
    let depth = 0;
    let again: Trader[] = [];
    await withMiningPaused(ready(), async () => {
      depth = Number((await ready().head()) - firstLiquidation + 1n);
      await ready().rpc("anvil_reorg", [depth, []]);
      dev.tx.forget();
      const h = await health(who);
      again = w3.filter((t) => h.liquidatable.get(t.address));
    });
    expect(again.length).toBeGreaterThanOrEqual(1); // the liquidations are gone from the chain
    await until("the reorganisation noticed", () => logs.events("reorg_detected").length > reorgs, 20_000);
    const waited = await healthyOrNot(burst, "liquidated again after the reorganisation");
    await settledKeeper(k).catch(() => {});
    const after = await onChain(firstLiquidation, await ready().head());
    const failures = unexplained(after.failed, after.liquidated).filter(
      (f) => f.trader !== lower(maker2.account.address),
    );
    // the book against a fresh backfill of the canonical chain, up to the same event
    const state = k.book.state();
    const fresh = await freshBook(ready(), state.cursor as LogRef);
    const reorg = logs.events("reorg_detected").at(-1);
    console.log(
      `[perp-v2 e2e] reorg: depth ${depth} from block ${firstLiquidation} (action ${String(reorg?.action)}, ancestor ${String(reorg?.ancestor)}), ${again.length}/${w3.length} accounts liquidatable again, ${after.ours.length} liquidations after it (${after.reverted.length} reverted, ${failures.length} batch items failed), healthy at ${waited.at ?? "never"} (${waited.at === undefined ? "-" : waited.at - firstLiquidation} blocks after the first removed block); fresh backfill: ${fresh.accounts.size} accounts to cursor block ${state.cursor?.blockNumber}${waited.error ? `; ${waited.error}` : ""}`,
    );

    expect.soft(reorg?.action).toBe("rollback");
    expect.soft(waited.error).toBeUndefined();
    expect.soft(after.reverted).toEqual([]);
    expect.soft(again.filter((t) => after.calls(t.address).length === 0).map((t) => t.name)).toEqual([]);
    expect.soft(failures.map((f) => ({ ...f, who: nameOf(f.trader) }))).toEqual([]);
    expect(state.cursor).toBeDefined();
    expect.soft(new Map(state.accounts)).toEqual(fresh.accounts);
    expect.soft(new Map(state.markets)).toEqual(fresh.markets);
    expect.soft(state.global).toEqual(fresh.global);
  }, 300_000);
});

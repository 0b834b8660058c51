/**
 * The keeper liquidating Perp v2 ("Curie") from its real npm bytecode on Anvil (1 s blocks), through its own
 * PerpV2Liquidator: two markets made by a maker, traders long and short, some cross-margin, a leverage spread so that
 * a crash of both markets (index first, then the pool in steps) leaves some accounts wholly liquidatable (margin ratio
 * < 3.125%), some partly (the contract takes 50% a call), $100 positions taken whole, and the rest healthy. Then: a
 * competitor outbidding the keeper for one target, a maker whose orders must be cancelled first, a restart mid-burst,
 * and a reorganisation that takes liquidations back. Health is always the chain's own (getAccountValue <
 * getMarginRequirementForLiquidation), and every transaction of the keeper's signers is checked on chain.
 */
import { type Address, decodeFunctionData, type Hex, parseGwei } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { perpV2LiquidatorAbi } from "../../abi/PerpV2Liquidator.ts";
import { accountBalanceAbi, clearingHouseAbi } from "../../src/devnet/perpV2/abis.ts";
import { priceToTick } from "../../src/devnet/perpV2/math.ts";
import { decodePerpV2Events } from "../../src/devnet/perpV2/scenario.ts";
import type { Wallet } from "../../src/devnet/perpV2/tx.ts";
import type { LogRef } from "../../src/state/events.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import {
  freshBook,
  healthReader,
  KEEPER_KEYS,
  type Leg,
  type Liquidation,
  liquidationsBetween,
  openTraders,
  type PerpV2Fixture,
  ROLE,
  signerTransactions,
  startPerpV2Fixture,
  startPerpV2Keeper,
  stopKeeper,
  submitPoolStep,
  type TestKeeper,
  type Trader,
  type TraderSpec,
  withMiningPaused,
} from "../helpers/perpV2.ts";
import { settled, until } from "../helpers/wait.ts";

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
const WAVE3: TraderSpec[] = [9000, 9000, 8500, 6800].map((n, i) => spec(`w3Eth${i}`, 1000, long(ETH, n)));

let fx: PerpV2Fixture | undefined;
let run: TestKeeper | undefined;
const traders: Trader[] = [];
let maker2: Wallet;
const signers = KEEPER_KEYS.map((k) => privateKeyToAccount(k).address.toLowerCase() as Address);
const ready = () => fx as PerpV2Fixture;
const keeper = () => run as TestKeeper;
const byName = (name: string) => traders.find((t) => t.name === name) as Trader;
const lower = (a: string) => a.toLowerCase() as Address;
/** Log lines of `event` that name `address` anywhere (a single's trader, a batch's targets). */
const naming = (logs: CapturedLog, event: string, address: Address) =>
  logs.events(event).filter((l) => JSON.stringify(l).toLowerCase().includes(address));
let health: ReturnType<typeof healthReader>;

/** Waits until the chain says none of `who` is liquidatable; the block it saw that at. */
async function allHealthy(who: readonly Address[], what: string, timeoutMs = 120_000): Promise<bigint> {
  let at = 0n;
  await until(
    what,
    async () => {
      const h = await health(who);
      at = h.blockNumber;
      return [...h.liquidatable.values()].every((x) => !x);
    },
    timeoutMs,
  );
  return at;
}

/** What the chain and the keeper's signers did in [from, to]; asserts nothing the signers sent reverted. */
async function onChain(from: bigint, to: bigint) {
  const { liquidated, failed } = await liquidationsBetween(ready(), from, to);
  const txs = await signerTransactions(ready(), signers, from, to);
  expect(txs.filter((t) => t.status !== "success")).toEqual([]);
  const ours = liquidated.filter((l) => l.liquidator === lower(ready().liquidator));
  const calls = (trader: Address) => ours.filter((l) => l.trader === trader);
  return {
    liquidated,
    failed,
    txs,
    ours,
    calls,
    last: ours.reduce((m, l) => (l.blockNumber > m ? l.blockNumber : m), 0n),
  };
}

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
  const logs = run.logs;
  await until("backfill_completed", () => logs.events("backfill_completed").length > 0, 60_000);
}, 240_000);

afterAll(async () => {
  try {
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

    const healthyAt = await allHealthy(everyone, "no account liquidatable after the crash");
    await settled(keeper().keeper);
    await until("two more blocks", async () => (await ready().head()) >= healthyAt + 2n, 10_000);
    wave1 = await onChain(crashStart, await ready().head());
    const { liquidated, failed, ours, calls, txs } = wave1;

    // the scenario's mix: partial accounts needed several calls, $100 positions went whole in one
    const multi = traders.filter((t) => calls(t.address).length >= 2);
    expect(multi.length).toBeGreaterThanOrEqual(2);
    for (const name of ["ethTiny", "btcTiny"]) expect(calls(byName(name).address)).toHaveLength(1);
    const whole = traders.filter((t) => t.legs.length === 1 && calls(t.address).length === 1);
    expect(whole.length).toBeGreaterThanOrEqual(4);
    // every liquidation but the competitor's is ours; every account the chain said was liquidatable was liquidated
    expect(liquidated.filter((l) => l.liquidator !== lower(ready().liquidator))).toEqual([
      expect.objectContaining({ trader: victim.address, liquidator: lower(competitor.account.address) }),
    ]);
    for (const [who, was] of atEnd.liquidatable)
      if (was)
        expect(
          liquidated.some((l) => l.trader === who),
          who,
        ).toBe(true);
    // healthy accounts: never liquidated, never even sent for
    const safe = traders.filter((t) => t.name.startsWith("safe"));
    expect(safe.length).toBe(7);
    for (const t of safe) {
      expect(
        liquidated.filter((l) => l.trader === t.address),
        t.name,
      ).toEqual([]);
      expect(naming(logs, "liquidation_sent", t.address), t.name).toEqual([]);
    }
    // no batch item failed but the victim's (the race the test caused); all of it within the bound
    expect(failed.filter((f) => f.trader !== victim.address)).toEqual([]);
    expect(wave1.last - crashEnd).toBeLessThanOrEqual(BLOCK_BOUND);
    const everLiquidatable = new Set([...liquidated.map((l) => l.trader)]);
    console.log(
      `[perp-v2 e2e] crash: ${everyone.length} accounts, ${everLiquidatable.size} liquidated (${whole.length} whole in one call, ${multi.length} over several), ${safe.length} healthy untouched; ${ours.length} liquidations by our contract in ${txs.length} transactions; crash blocks ${crashStart}..${crashEnd}, last liquidation ${wave1.last} (${wave1.last - crashEnd} blocks after the last pool step)`,
    );
  }, 300_000);

  it("loses a race to a competitor cleanly: no revert, no second attempt at the gone target", async () => {
    const { logs } = keeper();
    const victim = byName("victim");
    const mine = wave1.txs.filter((t) =>
      naming(logs, "liquidation_sent", victim.address).some((l) => l.txHash === t.hash),
    );
    const race = await ready().client.getTransactionReceipt({ hash: competitorTx });
    // the keeper's one transaction for the victim was mined in the competitor's block, after it, and succeeded
    expect(naming(logs, "liquidation_sent", victim.address)).toHaveLength(1);
    expect(mine).toHaveLength(1);
    expect(mine[0]?.blockNumber).toBeGreaterThanOrEqual(race.blockNumber);
    expect(mine[0]?.status).toBe("success");
    const outcome = [
      ...naming(logs, "liquidation_lost_race", victim.address),
      ...naming(logs, "liquidation_skipped", victim.address),
    ];
    expect(outcome.length).toBeGreaterThanOrEqual(1);
    expect(naming(logs, "liquidation_confirmed", victim.address)).toEqual([]);
    expect(wave1.calls(victim.address)).toEqual([]);
    expect(wave1.failed.filter((f) => f.trader === victim.address).length).toBeLessThanOrEqual(1);
    console.log(
      `[perp-v2 e2e] race: competitor first in block ${race.blockNumber}; keeper: ${outcome.map((l) => `${l.event}${l.how ? `/${l.how}` : l.reason ? `/${l.reason}` : ""}`).join(", ")}; 1 attempt, 0 reverts`,
    );
  });

  it("cancels a liquidatable maker's orders and liquidates it in one transaction (cancelAndLiquidate)", async () => {
    const { dev, client } = ready();
    const maker = lower(maker2.account.address);
    const liquidations = wave1.liquidated.filter((l) => l.trader === maker);
    expect(liquidations.length).toBeGreaterThanOrEqual(1);
    expect(liquidations.every((l) => l.liquidator === lower(ready().liquidator))).toBe(true);
    const first = liquidations[0] as Liquidation;
    const tx = await client.getTransaction({ hash: first.txHash });
    const call = decodeFunctionData({ abi: perpV2LiquidatorAbi, data: tx.input });
    expect(call.functionName).toBe("cancelAndLiquidate");
    const [orders] = call.args as unknown as [readonly { maker: Address; baseToken: Address }[]];
    expect(orders.map((o) => [lower(o.maker), lower(o.baseToken)])).toContainEqual([
      maker,
      lower(dev.market(BTC).baseToken),
    ]);
    // in that transaction: the orders removed, then the position liquidated
    const events = decodePerpV2Events((await client.getTransactionReceipt({ hash: first.txHash })).logs);
    const removed = events.findIndex(
      (e) => e.eventName === "LiquidityChanged" && lower(String((e.args as { maker: string }).maker)) === maker,
    );
    const taken = events.findIndex(
      (e) => e.eventName === "PositionLiquidated" && lower(String((e.args as { trader: string }).trader)) === maker,
    );
    expect(removed).toBeGreaterThanOrEqual(0);
    expect(taken).toBeGreaterThan(removed);
    expect(wave1.failed.filter((f) => f.reason.includes("CH_CLWTISO") || f.trader === maker)).toEqual([]);
    const hasOrder = await client.readContract({
      address: dev.d.accountBalance,
      abi: accountBalanceAbi,
      functionName: "hasOrder",
      args: [maker2.account.address],
    });
    expect(hasOrder).toBe(false);
    expect((await health([maker])).liquidatable.get(maker)).toBe(false);
    console.log(
      `[perp-v2 e2e] maker: orders cancelled and position liquidated in tx ${first.txHash} (block ${first.blockNumber}, ${first.blockNumber - crashEnd} blocks after the last pool step), ${liquidations.length} liquidation(s) in all, no CH_CLWTISO`,
    );
  });

  it("restarted mid-burst with the same state directory and keys, finishes the rest: no nonce sent twice, nothing reverted", async () => {
    const { dev } = ready();
    const first = keeper();
    const w2 = await openTraders(dev, 10 + WAVE1.length, WAVE2);
    traders.push(...w2);
    const everyone = [...traders.map((t) => t.address), lower(maker2.account.address)];
    const sentBefore = first.logs.events("liquidation_sent").length;
    const start = await ready().head();
    const crashing = (async () => {
      await dev.crash(ETH, "1620");
      await dev.crash(BTC, "23850");
    })();
    crashing.catch(() => {});
    await until(
      "the first liquidation of the burst",
      () => first.logs.events("liquidation_sent").length > sentBefore,
      60_000,
    );
    await first.keeper.stop("restart test");
    const stopped = first.logs.events("keeper_stopped").at(-1);
    run = await startPerpV2Keeper(ready(), { stateDir: first.stateDir });
    const second = keeper();
    await crashing;
    const crashDone = await ready().head();
    await until("backfill_completed", () => second.logs.events("backfill_completed").length > 0, 60_000);
    await allHealthy(everyone, "no account liquidatable after the restart");
    await settled(second.keeper);
    const end = await ready().head();
    const chain = await onChain(start, end);

    const sent = [
      ...first.logs.events("liquidation_sent").slice(sentBefore),
      ...second.logs.events("liquidation_sent"),
    ];
    const nonces = sent.map((l) => `${String(l.signer).toLowerCase()}:${String(l.nonce)}`);
    expect(new Set(nonces).size).toBe(nonces.length);
    expect(second.logs.events("liquidation_sent").length).toBeGreaterThanOrEqual(1);
    // the wave's accounts went to our contract, and no item of ours failed
    expect(chain.liquidated.filter((l) => l.liquidator !== lower(ready().liquidator))).toEqual([]);
    expect(chain.failed).toEqual([]);
    for (const t of w2) expect(chain.calls(t.address).length, t.name).toBeGreaterThanOrEqual(1);
    const minedNonces = chain.txs.map((t) => `${t.from}:${t.nonce}`);
    expect(new Set(minedNonces).size).toBe(minedNonces.length);
    const recovered = second.logs.events("executor_recovered");
    console.log(
      `[perp-v2 e2e] restart: ${w2.length} new accounts, ${new Set(chain.ours.map((l) => l.trader)).size} liquidated in ${chain.ours.length} liquidations, ${chain.txs.length} transactions (${sent.length - second.logs.events("liquidation_sent").length} before the stop, ${second.logs.events("liquidation_sent").length} after; pendingInJournal at stop ${String(stopped?.pendingInJournal)}; recovered ${JSON.stringify(recovered.map((r) => ({ settled: r.settled, tracked: r.tracked, abandoned: r.abandoned })))}); crash done at ${crashDone}, last liquidation ${chain.last} (${chain.last - crashDone} blocks after)`,
    );
  }, 300_000);

  it("after a reorganisation takes liquidations back, its book equals a fresh backfill's and it liquidates again", async () => {
    const { dev } = ready();
    const { keeper: k, logs } = keeper();
    const w3 = await openTraders(dev, 10 + WAVE1.length + WAVE2.length, WAVE3);
    traders.push(...w3);
    const who = w3.map((t) => t.address);
    const everyone = [...traders.map((t) => t.address), lower(maker2.account.address)];
    const start = await ready().head();
    const steps = await dev.crash(ETH, "1500");
    expect(steps).toHaveLength(1); // no transaction of the devnet's after it: the reorganisation takes only the keeper's
    const crashBlock = steps[0]?.receipt.blockNumber ?? 0n;
    await allHealthy(everyone, "the new accounts liquidated");
    await settled(k);
    const before = await onChain(start, await ready().head());
    const firstLiquidation = before.ours
      .filter((l) => who.includes(l.trader))
      .reduce((m, l) => (l.blockNumber < m ? l.blockNumber : m), 2n ** 64n);
    expect(firstLiquidation).toBeGreaterThan(crashBlock);

    const reorgs = logs.events("reorg_detected").length;
    let depth = 0;
    let again = 0;
    await withMiningPaused(ready(), async () => {
      depth = Number((await ready().head()) - firstLiquidation + 1n);
      await ready().rpc("anvil_reorg", [depth, []]);
      dev.tx.forget();
      again = [...(await health(who)).liquidatable.values()].filter(Boolean).length;
    });
    expect(again).toBeGreaterThanOrEqual(1); // the liquidations are gone from the chain
    await until("the reorganisation noticed", () => logs.events("reorg_detected").length > reorgs, 20_000);
    const healthyAt = await allHealthy(everyone, "liquidated again after the reorganisation");
    await settled(k);
    const after = await onChain(firstLiquidation, await ready().head());
    for (const t of w3) expect(after.calls(t.address).length, t.name).toBeGreaterThanOrEqual(1);
    expect(after.failed).toEqual([]);

    // the book against a fresh backfill of the canonical chain, up to the same event
    const book = k.book as unknown as {
      state(): {
        accounts: readonly (readonly [string, unknown])[];
        markets: readonly (readonly [number, unknown])[];
        global: unknown;
        cursor: LogRef | undefined;
      };
    };
    const state = book.state();
    expect(state.cursor).toBeDefined();
    const fresh = await freshBook(ready(), state.cursor as LogRef);
    expect(new Map(state.accounts)).toEqual(fresh.accounts);
    expect(new Map(state.markets)).toEqual(fresh.markets);
    expect(state.global).toEqual(fresh.global);
    const reorg = logs.events("reorg_detected").at(-1);
    console.log(
      `[perp-v2 e2e] reorg: depth ${depth} from block ${firstLiquidation} (action ${String(reorg?.action)}), ${again}/${w3.length} accounts liquidatable again, ${after.ours.length} liquidations after it, healthy at ${healthyAt} (${healthyAt - firstLiquidation} blocks after the first removed block); book = fresh backfill (${fresh.accounts.size} accounts, cursor block ${state.cursor?.blockNumber})`,
    );
  }, 300_000);
});

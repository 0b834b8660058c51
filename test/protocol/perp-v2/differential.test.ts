/**
 * Differential test of the Perp v2 model against the real Curie bytecode on Anvil (src/devnet/perpV2): random
 * traders across two markets (cross margin, longs and shorts), a full-range maker and a narrow one, funding accrued
 * over time, boundary cases (the $100 rule, the 1/(2·share) cap and its uint24 overflow, bad debt), the crash, and the
 * liquidations the plan asks for. At each checkpoint the book is rebuilt from the chain's own logs and every account
 * is compared with the chain's views at the same block (chainCheck.ts): storage mirrored, account value exact or the
 * chain's within [low, high], the requirement exact, 0 wrong liquidation decisions (the confirmation decoding the
 * chain's answer where the bound straddles), getLiquidatablePositionSize for every (trader, base).
 */
import { type Address, type Hex, parseAbi } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Anvil, startAnvil } from "../../../src/devnet/anvil.ts";
import { priceToTick } from "../../../src/devnet/perpV2/math.ts";
import { PerpV2Devnet } from "../../../src/devnet/perpV2/scenario.ts";
import type { Wallet } from "../../../src/devnet/perpV2/tx.ts";
import { accountBalanceAbi, clearingHouseAbi } from "../../../src/protocol/perpV2/abi.ts";
import { PerpV2Book } from "../../../src/protocol/perpV2/book.ts";
import { discoverPerpV2 } from "../../../src/protocol/perpV2/discover.ts";
import { perpV2Decoder } from "../../../src/protocol/perpV2/events.ts";
import { encodeTarget, planTargets } from "../../../src/protocol/perpV2/liquidation.ts";
import { perpV2Margin } from "../../../src/protocol/perpV2/margin.ts";
import { type PerpV2Outcome, receiptOutcomes, revertMeaning } from "../../../src/protocol/perpV2/outcomes.ts";
import { type PerpV2Deployment, perpV2Deployment } from "../../../src/protocol/perpV2/prices.ts";
import { chainEvents, compareAccount, newTally, type Snapshot, snapshot } from "./chainCheck.ts";

const ETH = "vETH";
const BTC = "vBTC";

/** A seeded generator (mulberry32): the same traders every run. */
function random(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let anvil: Anvil | undefined;
let dev: PerpV2Devnet;
let d: PerpV2Deployment;
let fromBlock: bigint;
const tally = newTally();
const outcomes: PerpV2Outcome[] = [];

async function checkpoint(label: string): Promise<Snapshot> {
  const s = await snapshot(dev.publicClient as never, d, fromBlock);
  const traders = [...s.book.accounts.keys()];
  for (const key of traders) await compareAccount(dev.publicClient as never, d, s, key as Address, tally);
  expect(tally.wrong, label).toBe(0);
  return s;
}

describe("perp-v2 model against the chain (Anvil, real Curie bytecode)", () => {
  beforeAll(async () => {
    anvil = await startAnvil({ accounts: 40 });
    try {
      dev = await PerpV2Devnet.deploy(anvil.rpcUrl);
      const head = await dev.publicClient.getBlockNumber();
      fromBlock = dev.d.deployBlock; // the ClearingHouse's block: markets are listed after it
      d = perpV2Deployment(
        await discoverPerpV2(dev.publicClient as never, dev.d.clearingHouse, {
          blockNumber: head,
          deployBlock: fromBlock,
        }),
      );
      expect(d.contracts.baseTokens).toEqual(dev.d.markets.map((m) => m.baseToken.toLowerCase()));
    } catch (error) {
      await anvil.stop();
      anvil = undefined;
      throw error;
    }
  }, 180_000);

  afterAll(async () => {
    await anvil?.stop();
  });

  it("follows random cross-margin traders, makers, funding over time, the crash and the liquidations", async () => {
    const rnd = random(20261202);
    const maker = dev.account(1);
    const narrowMaker = dev.account(3);
    const liquidator = dev.account(4);
    const named: Record<string, Wallet> = {
      tiny: dev.account(5),
      ratio: dev.account(6),
      badDebt: dev.account(7),
      withdrawer: dev.account(8),
    };
    const randoms = Array.from({ length: 14 }, (_, i) => dev.account(10 + i));
    const collateral = randoms.map(() => String(Math.round(500 + rnd() * 4500)));
    await dev.fundMany([
      { trader: maker, usdc: "20000000" },
      { trader: narrowMaker, usdc: "2100" },
      { trader: liquidator, usdc: "500000" },
      { trader: named.tiny as Wallet, usdc: "13.5" },
      { trader: named.ratio as Wallet, usdc: "1800" },
      { trader: named.badDebt as Wallet, usdc: "1000" },
      { trader: named.withdrawer as Wallet, usdc: "5000" },
      ...randoms.map((trader, i) => ({ trader, usdc: collateral[i] as string })),
    ]);
    await dev.addLiquidity(maker, ETH, "10000", "20000000");
    await dev.addLiquidity(maker, BTC, "400", "12000000");
    // a maker whose order sits below the price: quote only, it buys ETH as the price falls through it
    await dev.addLiquidity(narrowMaker, ETH, 0n, "20000", priceToTick(1820), priceToTick(1980));
    await checkpoint("after the makers");

    const long = (quote: string) => ({ isBaseToQuote: false, isExactInput: true, amount: quote });
    const short = (quote: string) => ({ isBaseToQuote: true, isExactInput: false, amount: quote });
    const trades: { trader: Wallet; base: string; args: ReturnType<typeof long> }[] = [
      { trader: named.tiny as Wallet, base: ETH, args: long("100") },
      { trader: named.ratio as Wallet, base: ETH, args: long("12000") },
      { trader: named.ratio as Wallet, base: BTC, args: short("150") },
      { trader: named.badDebt as Wallet, base: ETH, args: long("9500") },
      { trader: named.withdrawer as Wallet, base: BTC, args: short("10000") },
    ];
    randoms.forEach((trader, i) => {
      const budget = Number(collateral[i]) * (2 + rnd() * 7);
      const split = rnd();
      const legs: [string, number][] =
        split < 0.3
          ? [[ETH, budget]]
          : split < 0.5
            ? [[BTC, budget]]
            : [
                [ETH, budget * split],
                [BTC, budget * (1 - split)],
              ];
      for (const [base, notional] of legs) {
        const amount = String(Math.max(20, Math.round(notional)));
        trades.push({ trader, base, args: rnd() < 0.6 ? long(amount) : short(amount) });
      }
    });
    await dev.openPositions(trades);
    await checkpoint("after the opens");

    // funding accrues: the index moves away from the pool, time passes, some trade (each settles its own funding).
    // ChainlinkPriceFeedV3's TWAP view is wrong while the aggregator's latest round is not cached and older than the
    // interval: it extends the last cached observation's price up to the interval's start (CumulativeTwap.sol:139-142)
    // while the current cumulative carries the new price from its update on: a TWAP far off, or an underflow; and the
    // mark's premium term (index + marketTwap − indexTwap) then goes negative and getMarkPrice reverts
    await dev.setIndexPrice(ETH, "2010");
    await dev.setIndexPrice(BTC, "29900");
    // a trade in each market caches the new answers in the index TWAP (see the crash below) and starts a funding tail
    await dev.openPosition(randoms[2] as Wallet, ETH, long("50"));
    await dev.openPosition(randoms[3] as Wallet, BTC, long("50"));
    await dev.warp(1800);
    await checkpoint("30 minutes later: funding since the last update");
    await dev.openPosition(randoms[0] as Wallet, ETH, long("300"));
    const [firstBase] = await dev.publicClient.readContract({
      address: d.contracts.accountBalance,
      abi: accountBalanceAbi,
      functionName: "getBaseTokens",
      args: [(randoms[1] as Wallet).account.address],
    });
    await dev.closePosition(randoms[1] as Wallet, firstBase as Address);
    await withdraw(named.withdrawer as Wallet, 100_000_000n);
    await dev.warp(600);
    await checkpoint("after trades, a close and a withdrawal");

    // the crash: ETH −10% (index, then the pool through the narrow maker's order), BTC +8%
    await dev.crash(ETH, "1800");
    await dev.crash(BTC, "32400");
    await dev.warp(30);
    const crashed = await checkpoint("after the crash");
    let liquidations = 0;
    let rounds = 0;
    const liquidatable = await listLiquidatable(crashed);
    expect(liquidatable.length).toBeGreaterThan(3);

    const first = await liquidateAll(liquidator);
    expect(first.liquidations).toBeGreaterThan(3);
    expect(first.seen.has(narrowMaker.account.address.toLowerCase())).toBe(true);
    const end = await checkpoint("after the liquidations");
    expect(await listLiquidatable(end)).toEqual([]);

    // the crash's second leg: ETH −8% more, BTC back −12%, the index ahead of the pool (funding), a minute on
    await dev.crash(ETH, "1656");
    await dev.crash(BTC, "28500");
    await dev.setIndexPrice(ETH, "1640");
    await dev.openPosition(maker, ETH, long("50")); // caches the new index answer (see above)
    await dev.warp(60);
    await checkpoint("after the second leg");
    const second = await liquidateAll(liquidator);
    expect(second.liquidations).toBeGreaterThan(0);
    expect(await listLiquidatable(await checkpoint("after the second liquidations"))).toEqual([]);
    liquidations = first.liquidations + second.liquidations;
    rounds = first.rounds + second.rounds;

    // the liquidator unwinds one market, withdraws (its owed PnL floored into its balance); funding runs on
    await dev.closePosition(liquidator, ETH);
    await withdraw(liquidator, 1_000_000_000n);
    await dev.warp(3600);
    await checkpoint("an hour after the liquidator's close and withdrawal");

    // BTC's index falls and no BTC trade caches the round for two minutes: the index TWAP view underflows, every
    // getMarkPrice(BTC) reverts, and with it the account views of whoever holds BTC; the book finds the mark missing
    await dev.setIndexPrice(BTC, "28000");
    await dev.warp(120);
    const unpriced = tally.unpriced;
    await checkpoint("an uncached index fall");
    expect(tally.unpriced).toBeGreaterThan(unpriced);

    // undo: the book of every event, rewound over the last blocks, is the book of the events before them
    const events = await chainEvents(dev.publicClient as never, d, fromBlock, end.head.blockNumber);
    const full = new PerpV2Book(d.global);
    const log = events.map((e) => ({ block: e.ref.blockNumber, changes: full.apply(e) }));
    const cut = end.head.blockNumber - 20n;
    for (let i = log.length - 1; i >= 0 && (log[i]?.block ?? 0n) > cut; i--) full.undo(log[i]?.changes ?? []);
    const before = new PerpV2Book(d.global);
    for (const e of events) if (e.ref.blockNumber <= cut) before.apply(e);
    expect(new Map(full.accounts)).toEqual(new Map(before.accounts));
    expect(new Map(full.markets)).toEqual(new Map(before.markets));

    expect(outcomes.some((o) => o.badDebt > 0n)).toBe(true);
    expect(outcomes.some((o) => !o.full)).toBe(true);
    console.log(
      `perp-v2 differential: ${tally.accounts} account comparisons at ${tally.blocks.size} blocks ` +
        `(${tally.exact} exact, ${tally.bounded} bounded, ${tally.straddled} confirmed by reads), ` +
        `${tally.decisions} decisions, ${tally.wrong} wrong; ${tally.sizes} liquidatable sizes ` +
        `(${tally.sizeReverts} reverting); ${tally.unpriced} unpriced on both sides; ` +
        `${liquidations} liquidations in ${rounds} rounds`,
    );
  }, 600_000);
});

/**
 * Liquidates as the plan says, largest position first, until nobody is left: each account evaluated with the index
 * TWAP alone (the funding tail bounded), confirmed by reads when it straddles, its makers' orders cancelled first; every
 * call simulated, sent, and its receipt read back against the plan. A checkpoint after each round.
 */
async function liquidateAll(liquidator: Wallet) {
  let liquidations = 0;
  let rounds = 0;
  const seen = new Set<string>();
  for (; rounds < 12; rounds++) {
    const s = await snapshot(dev.publicClient as never, d, fromBlock);
    const model = perpV2Margin(() => s.book, { contracts: d.contracts });
    let any = false;
    for (const a of s.book.accounts.values()) {
      if (a.key === d.global.insuranceFund || a.key === liquidator.account.address.toLowerCase()) continue;
      let e = model.evaluate(a, s.clamp);
      if (e.kind === "bounded" && e.low < 0n && e.high >= 0n) {
        const results = await Promise.all(
          model.confirm
            .reads(a)
            .map((r) => dev.publicClient.call({ ...r, blockNumber: s.head.blockNumber }).then((x) => x.data)),
        );
        e = model.confirm.decode(a, results);
      }
      const plan = planTargets(a, e, s.book, s.clamp, { clearingHouse: d.contracts.clearingHouse });
      const target = plan.targets[0];
      if (!target && plan.prerequisites.length === 0) continue;
      any = true;
      for (const call of plan.prerequisites) {
        await dev.tx.send(liquidator, `cancelAllExcessOrders ${a.key}`, {
          to: call.to,
          data: call.data,
          gas: 5_000_000n,
        });
      }
      if (plan.prerequisites.length > 0 || !target) continue; // the maker's pool balance is a taker position now
      const call = encodeTarget(target, d.contracts.clearingHouse);
      const revert = await dev.publicClient
        .call({ account: liquidator.account.address, to: call.to, data: call.data, gas: 5_000_000n })
        .then(
          () => undefined,
          (err: { data?: Hex; cause?: { data?: Hex } }) => err.cause?.data ?? err.data,
        );
      if (revert !== undefined) throw new Error(`${a.key}: liquidate would revert: ${revertMeaning(revert)?.name}`);
      const receipt = await dev.tx.send(liquidator, `liquidate ${a.key}`, {
        to: call.to,
        data: call.data,
        gas: 5_000_000n,
      });
      liquidations++;
      seen.add(a.key);
      const outcome = receiptOutcomes(perpV2Decoder(d.contracts), receipt.logs, s.book.global).get(target.key);
      expect(outcome, `${target.key}: outcome`).toBeDefined();
      if (!outcome) continue;
      outcomes.push(outcome);
      expect(outcome.liquidator).toBe(liquidator.account.address.toLowerCase());
      if (target.expected) expect(outcome.size >= target.expected[0] && outcome.size <= target.expected[1]).toBe(true);
      if (e.kind === "exact" && target.expected) {
        // an exact evaluation: the plan's figures are the call's, to the wei
        expect(outcome.size, `${target.key}: size`).toBe(target.expected[0]);
        expect(outcome.notional, `${target.key}: notional`).toBe(target.notional);
        expect(outcome.penalty, `${target.key}: penalty`).toBe(target.penalty);
        expect(outcome.reward, `${target.key}: reward`).toBe(target.expectedReward);
      }
    }
    await checkpoint(`liquidation round ${rounds}`);
    if (!any) break;
  }
  return { liquidations, rounds, seen };
}

/** Vault.withdraw of USDC units, with gas for settleAllFunding over two markets (the devnet's 400k runs out). */
async function withdraw(trader: Wallet, units: bigint) {
  await dev.tx.call(trader, `withdraw by ${trader.account.address}`, {
    address: d.contracts.vault,
    abi: parseAbi(["function withdraw(address token, uint256 amount)"]),
    functionName: "withdraw",
    args: [d.global.settlementToken, units],
    gas: 2_000_000n,
  });
}

async function listLiquidatable(s: Snapshot): Promise<string[]> {
  const out: string[] = [];
  for (const key of s.book.accounts.keys()) {
    if (key === d.global.insuranceFund) continue;
    const [av, req] = await Promise.all([
      dev.publicClient.readContract({
        address: d.contracts.clearingHouse,
        abi: clearingHouseAbi,
        functionName: "getAccountValue",
        args: [key as Address],
        blockNumber: s.head.blockNumber,
      }),
      dev.publicClient.readContract({
        address: d.contracts.accountBalance,
        abi: accountBalanceAbi,
        functionName: "getMarginRequirementForLiquidation",
        args: [key as Address],
        blockNumber: s.head.blockNumber,
      }),
    ]);
    if (av < req) out.push(key);
  }
  return out;
}

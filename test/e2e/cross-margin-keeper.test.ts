/**
 * The keeper on the Pyth-priced cross-margin exchange (CrossMarginEngine, issue 17) on Anvil with 1-second blocks and
 * the stage's local Hermes: a crash of ETH and BTC published on Hermes only (the chain learns it from the keeper).
 * Accounts hold one market or both, some are healthy (one close to the edge), and one is beyond a window's cap.
 *
 * - Every account the exchange's own rules find liquidatable at the crash prices is flagged in the first block after
 *   the Hermes move, none of the healthy; every transaction of the keeper's carried exactly the oracle's fee for the
 *   update bytes it carried (MockPyth.getUpdateFee in its block), none reverted, and the log and the journal carry
 *   the value.
 * - Windows continued: what is beyond a market's window cap is closed in later windows, each continuation in the
 *   first block where the window has room (block timestamps against the window), until no position is left.
 */
import type { Address } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  atHead,
  type CrossMarginFixture,
  closesSince,
  engineEvents,
  flaggedOnChain,
  flagsSince,
  freshBlock,
  journalAttempts,
  keeperTxs,
  liquidatableAtPrices,
  positionsOf,
  show,
  startCrossMarginFixture,
  startCrossMarginTestKeeper,
  stopKeeper,
  type TestKeeper,
  unusedRoom,
  windowCap,
  windowedMarkets,
} from "../helpers/crossMargin.ts";
import { until } from "../helpers/wait.ts";

const WINDOW = 4n;
/** 28 ETH and 0.98 BTC a 4-second window. */
const MARKETS = windowedMarkets(WINDOW, "28", "0.98");
const CRASH = { ETH: "2600", BTC: "52000" } as const;

/** Entry prices ETH 3000, BTC 60000; the crash takes 13.3% off both. */
const ACCOUNTS = [
  { name: "eth", collateral: "1000", positions: [{ market: "ETH", size: "10" }] },
  { name: "eth2", collateral: "2500", positions: [{ market: "ETH", size: "10" }] },
  { name: "btc", collateral: "1500", positions: [{ market: "BTC", size: "0.5" }] },
  {
    name: "cross",
    collateral: "2500",
    positions: [
      { market: "ETH", size: "5" },
      { market: "BTC", size: "0.25" },
    ],
  },
  {
    name: "hedged",
    collateral: "1200",
    positions: [
      { market: "ETH", size: "4" },
      { market: "BTC", size: "-0.05" },
    ],
  },
  // 69 ETH and 1.0 BTC flagged in all: ETH takes three windows, BTC two
  {
    name: "big",
    collateral: "10000",
    positions: [
      { market: "ETH", size: "40" },
      { market: "BTC", size: "0.2" },
    ],
  },
  { name: "safeEth", collateral: "6000", positions: [{ market: "ETH", size: "10" }] },
  // 485 of margin at the crash against 318 required: healthy by a little
  { name: "edgeEth", collateral: "4500", positions: [{ market: "ETH", size: "10" }] },
  { name: "safeBtc", collateral: "8000", positions: [{ market: "BTC", size: "0.5" }] },
  { name: "safeShort", collateral: "1000", positions: [{ market: "ETH", size: "-10" }] },
  {
    name: "safeCross",
    collateral: "9000",
    positions: [
      { market: "ETH", size: "5" },
      { market: "BTC", size: "0.25" },
    ],
  },
] as const;
const LIQUIDATABLE = ["eth", "eth2", "btc", "cross", "hedged", "big"];
/** Events no run here has a reason to log. */
const NEVER = ["executor_error", "liquidation_reverted", "liquidation_failed", "prices_stale"];

let fx: CrossMarginFixture | undefined;
let run: TestKeeper | undefined;
const ready = () => fx as CrossMarginFixture;
const keeper = () => run as TestKeeper;
const idOf = (name: string) => ready().ids[ACCOUNTS.findIndex((a) => a.name === name)] as bigint;
const nameOf = (id: bigint) => ACCOUNTS[ready().ids.indexOf(id)]?.name ?? String(id);

beforeAll(async () => {
  fx = await startCrossMarginFixture({ markets: MARKETS, accounts: ACCOUNTS });
  run = await startCrossMarginTestKeeper(fx);
  await atHead(fx, run.keeper);
}, 60_000);

afterAll(async () => {
  try {
    await stopKeeper(run?.keeper);
  } finally {
    await fx?.stop();
  }
});

describe("the keeper on the cross-margin exchange (Pyth prices from Hermes, Anvil with 1 s blocks)", () => {
  let moveBlock = 0n;
  let expected: bigint[] = [];

  it("flags every account a crash across markets makes liquidatable in the first block after the Hermes move, paying the oracle's fee exactly", async () => {
    const f = ready();
    const { keeper: k, logs, signers, stateDir } = keeper();
    // the scenario: nothing liquidatable before, exactly the designed accounts at the crash prices
    expect(await liquidatableAtPrices(f, f.ids, { ETH: "3000", BTC: "60000" })).toEqual([]);
    expected = await liquidatableAtPrices(f, f.ids, CRASH);
    expect(expected.map(nameOf).sort()).toEqual([...LIQUIDATABLE].sort());
    await atHead(f, k);

    // right after a block: the keeper has most of a block's time to bring the price on chain
    moveBlock = await freshBlock(f);
    f.move(CRASH);
    const movedAt = await f.head();
    if (movedAt !== moveBlock) throw new Error(`a block came while moving Hermes (${moveBlock} -> ${movedAt}): retry`);
    await until("every liquidatable account flagged", async () => {
      const flags = await flagsSince(f, moveBlock + 1n);
      return expected.every((id) => flags.some((x) => x.accountId === id));
    });
    const head = await f.head();
    const flags = await flagsSince(f, moveBlock + 1n);
    const txs = await keeperTxs(f, signers, moveBlock + 1n, head);
    console.log(
      `[cross-margin e2e] crash at block ${moveBlock}: flags ${show(flags.map((x) => ({ who: nameOf(x.accountId), block: x.blockNumber })))}; ` +
        `keeper txs ${show(txs.map((t) => ({ block: t.blockNumber, fn: t.fn, accounts: t.accounts.map(nameOf), updates: t.updates.length, value: t.value, fee: t.feeRequired, status: t.status })))}`,
    );

    // every liquidatable account flagged in the first block after the move, by the keeper; none of the healthy
    expect(flags.map((x) => nameOf(x.accountId)).sort()).toEqual([...LIQUIDATABLE].sort());
    for (const flag of flags) {
      expect.soft({ who: nameOf(flag.accountId), block: flag.blockNumber }).toEqual({
        who: nameOf(flag.accountId),
        block: moveBlock + 1n,
      });
      expect.soft(signers).toContain(flag.from);
    }
    // each transaction paid what the oracle asked for the bytes it carried, and none reverted
    expect(txs.length).toBeGreaterThan(0);
    for (const tx of txs) {
      expect.soft({ hash: tx.hash, status: tx.status }).toEqual({ hash: tx.hash, status: "success" });
      expect.soft({ hash: tx.hash, value: tx.value }).toEqual({ hash: tx.hash, value: tx.feeRequired });
    }
    const flagTxs = txs.filter((t) => flags.some((x) => x.txHash === t.hash));
    for (const tx of flagTxs) {
      // a flag carries a price of every market its accounts hold, and pays for it
      expect.soft(tx.updates.length).toBeGreaterThan(0);
      expect.soft(tx.value).toBeGreaterThan(0n);
      const held = new Set<bigint>();
      for (const id of tx.accounts.filter((a) => flags.some((x) => x.accountId === a && x.txHash === tx.hash))) {
        for (const p of ACCOUNTS[f.ids.indexOf(id)]?.positions ?? []) {
          held.add(f.d.markets.find((m) => m.name === p.market)?.marketId as bigint);
        }
      }
      expect.soft(tx.updates.length).toBe(held.size);
    }
    // the log and the journal carry the value
    await until("the keeper's confirmations", () =>
      flagTxs.every((t) => logs.events("liquidation_confirmed").some((l) => l.txHash === t.hash)),
    );
    for (const tx of flagTxs) {
      const sent = logs.events("liquidation_sent").find((l) => l.txHash === tx.hash);
      expect.soft(sent?.valueWei).toBe(tx.value.toString());
      const attempt = journalAttempts(f, stateDir, tx.from as Address).find((a) =>
        a.txs.some((x) => x.hash === tx.hash),
      );
      expect.soft(attempt?.value).toBe(tx.value);
    }
    for (const event of NEVER) expect.soft(logs.events(event)).toEqual([]);
  });

  it("closes what is beyond a window's cap in later windows, each continuation in the first block where the window has room", async () => {
    const f = ready();
    const { logs, signers } = keeper();
    expect(moveBlock).toBeGreaterThan(0n);
    await until(
      "no flagged account left with a position",
      async () => {
        if ((await flaggedOnChain(f)).length > 0) return false;
        for (const id of expected) if ((await positionsOf(f, id)).size > 0) return false;
        return true;
      },
      40_000,
    );
    const head = await f.head();
    const closes = await closesSince(f, moveBlock + 1n);
    const lastClose = closes.reduce((m, c) => (c.blockNumber > m ? c.blockNumber : m), 0n);
    const late = await unusedRoom(f, expected, moveBlock + 1n, moveBlock + 2n, lastClose);
    const txs = await keeperTxs(f, signers, moveBlock + 1n, head);
    const big = closes.filter((c) => c.accountId === idOf("big"));
    const summary = MARKETS.map((m) => {
      const id = f.d.markets.find((x) => x.name === m.name)?.marketId;
      const of = closes.filter((c) => c.marketId === id);
      const byBlock = new Map<bigint, { t: bigint; amount: bigint }>();
      for (const c of of) {
        const e = byBlock.get(c.blockNumber) ?? { t: c.timestamp, amount: 0n };
        byBlock.set(c.blockNumber, { t: e.t, amount: e.amount + c.amount });
      }
      return { market: m.name, cap: windowCap(m.config), closes: [...byBlock].map(([b, e]) => ({ b, ...e })) };
    });
    console.log(
      `[cross-margin e2e] windows of ${WINDOW} s: ${show(summary)}; late continuations ${show(late)}; ` +
        `keeper txs ${show(txs.map((t) => ({ block: t.blockNumber, fn: t.fn, accounts: t.accounts.map(nameOf), value: t.value })))}`,
    );

    // 69 ETH and 1.0 BTC flagged: ETH closed over three windows, BTC over two; the large account (40 ETH, beyond one
    // window's cap) over two at least, to nothing
    const windowsOf = (marketName: string, of: readonly (typeof closes)[number][] = closes) => {
      const id = f.d.markets.find((x) => x.name === marketName)?.marketId;
      return new Set(of.filter((c) => c.marketId === id).map((c) => c.blockNumber)).size;
    };
    expect(windowsOf("ETH")).toBe(3);
    expect(windowsOf("BTC")).toBe(2);
    expect(windowsOf("ETH", big)).toBeGreaterThanOrEqual(2);
    expect(await positionsOf(f, idOf("big"))).toEqual(new Map());
    // no window had room while a flagged account waited in its market: every continuation in the first block with room
    expect(late).toEqual([]);
    // continuations carry no price and pay nothing; nothing reverted; every transaction closed something
    for (const tx of txs) {
      expect.soft({ hash: tx.hash, status: tx.status }).toEqual({ hash: tx.hash, status: "success" });
      expect.soft({ hash: tx.hash, value: tx.value }).toEqual({ hash: tx.hash, value: tx.feeRequired });
      const did = engineEvents(f, tx.receipt).filter(
        (e) => e.eventName === "PositionLiquidated" || e.eventName === "AccountFlaggedForLiquidation",
      );
      expect.soft({ hash: tx.hash, closed: did.length > 0 }).toEqual({ hash: tx.hash, closed: true });
    }
    // still none of the healthy flagged
    const flagged = (await flagsSince(f, moveBlock + 1n)).map((x) => nameOf(x.accountId));
    expect(flagged.sort()).toEqual([...LIQUIDATABLE].sort());
    for (const event of NEVER) expect.soft(logs.events(event)).toEqual([]);
  });
});

/**
 * The cross-margin keeper (issue 17) across a restart and a reorganisation, on Anvil with 1-second blocks and the
 * stage's local Hermes.
 *
 * (a) A restart mid-window: an account beyond an 8-second window's cap is flagged and partly closed; the keeper is
 *     stopped before the window has room again and started on the same state directory (its snapshot and journal);
 *     the new process finishes the account in the first block where the window has room, and nothing is sent twice.
 * (b) A reorganisation takes back the blocks that hold a flag (anvil_reorg with mining paused): the keeper rolls its
 *     book back to the chain's, and liquidates the account again on the new branch, carrying the price again.
 * (c) The same once the bytes the flag carried are older than the exchange's maxPriceAge: the liquidation on the new
 *     branch must carry a fresh price, never the stale one (skipped: see there).
 */
import { type Address, type Hex, keccak256 } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crossMarginEngineAbi } from "../../abi/CrossMarginEngine.ts";
import { decodeMockPythUpdate } from "../../src/devnet/hermes/updateData.ts";
import {
  atHead,
  blockTime,
  type CrossMarginFixture,
  closesSince,
  engineEvents,
  flagsSince,
  forgetBlockTimes,
  freshBlock,
  keeperTxs,
  liquidatableAtPrices,
  positionsOf,
  pythPriceOnChain,
  settledKeeper,
  show,
  startCrossMarginFixture,
  startCrossMarginTestKeeper,
  stopKeeper,
  type TestKeeper,
  unusedRoom,
  windowedMarkets,
  withMiningPaused,
  writeLogs,
} from "../helpers/crossMargin.ts";
import { testStateDir } from "../helpers/devnet.ts";
import { until } from "../helpers/wait.ts";

const WINDOW = 8n;
/** 28 ETH and 0.98 BTC an 8-second window. */
const MARKETS = windowedMarkets(WINDOW, "28", "0.98");
const ACCOUNTS = [
  // 50 ETH: 28 at the flag, 22 a window later
  { name: "big", collateral: "10000", positions: [{ market: "ETH", size: "50" }] },
  { name: "btc", collateral: "1500", positions: [{ market: "BTC", size: "0.5" }] },
  { name: "safe", collateral: "6000", positions: [{ market: "ETH", size: "10" }] },
  // liquidatable below about 50000
  { name: "late", collateral: "5300", positions: [{ market: "BTC", size: "0.5" }] },
] as const;
/** Seconds a Pyth price stays usable on the exchange: short, so that carried bytes go stale within the test. */
const MAX_PRICE_AGE = 5n;
const ETH_CRASH = { ETH: "2600" } as const;
const BTC_CRASH = { BTC: "52000" } as const;
const NEVER = ["executor_error", "liquidation_reverted", "liquidation_failed"];

let fx: CrossMarginFixture | undefined;
const runs: TestKeeper[] = [];
const ready = () => fx as CrossMarginFixture;
const current = () => runs.at(-1) as TestKeeper;
const idOf = (name: string) => ready().ids[ACCOUNTS.findIndex((a) => a.name === name)] as bigint;
const nameOf = (id: bigint) => ACCOUNTS[ready().ids.indexOf(id)]?.name ?? String(id);

beforeAll(async () => {
  fx = await startCrossMarginFixture({ markets: MARKETS, accounts: ACCOUNTS, global: { maxPriceAge: MAX_PRICE_AGE } });
  // 70 blocks at once (one timestamp): the chain's finalized block (64 under the head) is after the accounts, so the
  // keeper's snapshot holds them
  await fx.rpc("anvil_mine", ["0x46", "0x0"]);
}, 60_000);

afterAll(async () => {
  runs.forEach((r, i) => {
    writeLogs(`restart-${i}`, r.logs);
  });
  try {
    for (const r of runs) await stopKeeper(r.keeper);
  } finally {
    await fx?.stop();
  }
});

describe("the cross-margin keeper across a restart and a reorganisation", () => {
  it("(a) restarted mid-window on the same state directory: finishes the continuation in the first block with room, nothing sent twice", async () => {
    const f = ready();
    const stateDir = testStateDir();
    runs.push(await startCrossMarginTestKeeper(f, { stateDir }));
    const first = current();
    await atHead(f, first.keeper);
    await until("the snapshot written after the backfill", () => first.logs.events("snapshot_written").length > 0);
    const big = idOf("big");
    expect(await liquidatableAtPrices(f, f.ids, { ETH: "3000", BTC: "60000" })).toEqual([]);
    expect((await liquidatableAtPrices(f, f.ids, { ETH: ETH_CRASH.ETH, BTC: "60000" })).map(nameOf)).toEqual(["big"]);

    const moveBlock = await freshBlock(f);
    f.move(ETH_CRASH);
    await until("big flagged", async () => (await flagsSince(f, moveBlock + 1n)).some((x) => x.accountId === big));
    const [flag] = await flagsSince(f, moveBlock + 1n);
    const flagTime = await blockTime(f, flag?.blockNumber ?? 0n);
    await until("the flag confirmed to the keeper", () =>
      first.logs.events("liquidation_confirmed").some((l) => l.txHash === flag?.txHash),
    );
    await stopKeeper(first.keeper, "restart test");
    const stoppedAt = await f.head();
    const stoppedTime = await blockTime(f, stoppedAt);
    // stopped before the window has room again, with the account still holding what is beyond the cap
    expect(stoppedTime).toBeLessThan(flagTime + WINDOW - 1n);
    expect((await positionsOf(f, big)).get(f.d.markets[0]?.marketId as bigint)).toBe(22n * 10n ** 18n);

    runs.push(await startCrossMarginTestKeeper(f, { stateDir }));
    const second = current();
    await until("big closed", async () => (await positionsOf(f, big)).size === 0, 30_000);
    await settledKeeper(second.keeper);
    const closes = (await closesSince(f, moveBlock + 1n)).filter((c) => c.accountId === big);
    const last = closes.at(-1);
    const lastBlock = last?.blockNumber ?? 0n;
    const before = await blockTime(f, lastBlock - 1n);
    const late = await unusedRoom(f, [big], flag?.blockNumber ?? 0n, (flag?.blockNumber ?? 0n) + 1n, lastBlock);
    const signers = [...new Set([...first.signers, ...second.signers])];
    const txs = await keeperTxs(f, signers, moveBlock + 1n);
    const sent = [...first.logs.events("liquidation_sent"), ...second.logs.events("liquidation_sent")];
    const nonces = sent.map((l) => `${String(l.signer).toLowerCase()}:${String(l.nonce)}`);
    console.log(
      `[cross-margin restart] flag in block ${flag?.blockNumber} (t ${flagTime}), stopped at ${stoppedAt} (t ${stoppedTime}); ` +
        `closes ${show(closes.map((c) => ({ block: c.blockNumber, t: c.timestamp, amount: c.amount, left: c.left })))}; ` +
        `second keeper: ${show(second.logs.events("snapshot_loaded").map((l) => ({ block: l.blockNumber })))} snapshot, recovered ${show(second.logs.events("executor_recovered"))}; ` +
        `txs ${show(txs.map((t) => ({ block: t.blockNumber, fn: t.fn, nonce: t.nonce, status: t.status })))}`,
    );

    // the second process resumed from the snapshot and the journal
    expect(second.logs.events("snapshot_loaded").length).toBe(1);
    // the continuation: the first block whose time is a window after the flag's, and not a block later
    expect(closes.map((c) => c.blockNumber)).toEqual([flag?.blockNumber, lastBlock]);
    expect(last?.timestamp).toBeGreaterThanOrEqual(flagTime + WINDOW);
    expect(before).toBeLessThan(flagTime + WINDOW);
    expect(late).toEqual([]);
    // by the second keeper, in a transaction of its own: one flag, one continuation, nothing sent twice
    const continuation = txs.find((t) => t.hash === last?.txHash);
    expect(continuation).toBeDefined();
    expect(second.logs.events("liquidation_sent").some((l) => l.txHash === continuation?.hash)).toBe(true);
    expect(txs.map((t) => t.status)).toEqual(["success", "success"]);
    expect(new Set(nonces).size).toBe(nonces.length);
    expect(sent.length).toBe(2);
    for (const tx of txs) {
      expect.soft(tx.value).toBe(tx.feeRequired);
      expect.soft(engineEvents(f, tx.receipt).some((e) => e.eventName === "PositionLiquidated")).toBe(true);
    }
    for (const r of [first, second]) for (const event of NEVER) expect.soft(r.logs.events(event)).toEqual([]);
  });

  it("(b) a reorganisation takes a flag back: the book rolls back and the account is liquidated again on the new branch", async () => {
    const f = ready();
    const { keeper: k, logs, signers } = current();
    const btc = idOf("btc");
    await atHead(f, k);
    expect((await liquidatableAtPrices(f, [btc, idOf("safe")], { ETH: "2600", ...BTC_CRASH })).map(nameOf)).toEqual([
      "btc",
    ]);
    const priceBefore = await pythPriceOnChain(f, "BTC");
    const moveBlock = await freshBlock(f);
    f.move(BTC_CRASH);
    await until("btc flagged", async () => (await flagsSince(f, moveBlock + 1n)).some((x) => x.accountId === btc));
    const [flag] = (await flagsSince(f, moveBlock + 1n)).filter((x) => x.accountId === btc);
    await until("the flag confirmed to the keeper", () =>
      logs.events("liquidation_confirmed").some((l) => l.txHash === flag?.txHash),
    );
    await until("the keeper's book has it flagged and closed", () => {
      const a = k.book.accounts.get(btc.toString());
      return a !== undefined && a.positions.size === 0;
    });
    const reorgs = logs.events("reorg_detected").length;
    let depth = 0;
    let removed: { flagged: boolean; positions: number; price: bigint } | undefined;
    await withMiningPaused(f, async () => {
      depth = Number((await f.head()) - (flag?.blockNumber ?? 0n) + 1n);
      await f.rpc("anvil_reorg", [depth, []]);
      await resyncClock(f);
      removed = {
        flagged: await f.client.readContract({
          address: f.d.engine,
          abi: crossMarginEngineAbi,
          functionName: "isFlagged",
          args: [btc],
        }),
        positions: (await positionsOf(f, btc)).size,
        price: (await pythPriceOnChain(f, "BTC")).price,
      };
    });
    // the chain forgot the flag, the closes and the price the keeper brought
    expect(removed).toEqual({ flagged: false, positions: 1, price: priceBefore.price });
    const branch = await f.head();
    await until("the reorganisation noticed", () => logs.events("reorg_detected").length > reorgs, 20_000);
    const again = await (async () => {
      await until(
        "btc flagged again on the new branch",
        async () => (await flagsSince(f, branch - BigInt(depth) + 1n)).some((x) => x.accountId === btc),
        20_000,
      );
      return (await flagsSince(f, branch - BigInt(depth) + 1n)).find((x) => x.accountId === btc);
    })();
    await until("btc closed again", async () => (await positionsOf(f, btc)).size === 0, 20_000);
    await settledKeeper(k);
    const txs = await keeperTxs(f, signers, branch - BigInt(depth) + 1n);
    const reorg = logs.events("reorg_detected").at(-1);
    // the keeper's book equals the chain, account by account, at the block it has processed. A log answer that left
    // events out (Anvil, under load, just after anvil_reorg) is caught by the keeper's own receipts
    // (book_contradicts_receipt) and indexed again: compared until the book settles
    let book: AccountView[] = [];
    let chain: AccountView[] = [];
    let compared = false;
    await until(
      "the keeper's book equal to the chain at its processed block",
      async () => {
        const head = await f.head();
        if (k.watcher.processedBlock !== head) return false;
        book = bookViews(k);
        chain = await chainViews(f, head);
        compared = true;
        return k.watcher.processedBlock === head && show(book) === show(chain);
      },
      10_000,
    ).catch(() => {});
    console.log(
      `[cross-margin reorg] flag in block ${flag?.blockNumber}, reorganised ${depth} block(s) deep to ${branch}; reorg ${show(reorg)}; ` +
        `log answers the keeper's receipts contradicted: ${logs.events("book_contradicts_receipt").length}; ` +
        `flagged again in block ${again?.blockNumber} by ${again?.from}; txs ${show(txs.map((t) => ({ block: t.blockNumber, fn: t.fn, updates: t.updates.length, value: t.value, fee: t.feeRequired, status: t.status })))}`,
    );
    expect(reorg?.action).toBe("rollback");
    expect(again?.blockNumber).toBeGreaterThan(branch - BigInt(depth));
    expect(signers).toContain(again?.from as Address);
    const reflag = txs.find((t) => t.hash === again?.txHash);
    expect(reflag?.status).toBe("success");
    // it carried the price again, and paid for it
    expect(reflag?.updates.length).toBe(1);
    expect(reflag?.value).toBe(reflag?.feeRequired);
    for (const tx of txs) expect.soft(tx.status).toBe("success");
    expect(compared).toBe(true);
    expect(book).toEqual(chain);
    for (const event of NEVER) expect.soft(logs.events(event)).toEqual([]);
  });

  interface AccountView {
    readonly id: string;
    readonly flagged: boolean | undefined;
    readonly collateral: bigint | undefined;
    readonly sizes: readonly bigint[];
  }

  /** Every account as the keeper's book holds it. */
  function bookViews(k: TestKeeper["keeper"]): AccountView[] {
    return ready().ids.map((id) => {
      const a = k.book.accounts.get(id.toString());
      return {
        id: nameOf(id),
        flagged: a?.flagged,
        collateral: a?.collateral,
        sizes: [...(a?.positions.values() ?? [])].map((p) => p.size),
      };
    });
  }

  /** Every account as the engine holds it at `head`. */
  async function chainViews(f: CrossMarginFixture, head: bigint): Promise<AccountView[]> {
    const views: AccountView[] = [];
    for (const id of f.ids) {
      const read = <T>(functionName: "isFlagged" | "getCollateral") =>
        f.client.readContract({
          address: f.d.engine,
          abi: crossMarginEngineAbi,
          functionName,
          args: [id],
          blockNumber: head,
        }) as Promise<T>;
      views.push({
        id: nameOf(id),
        flagged: await read<boolean>("isFlagged"),
        collateral: await read<bigint>("getCollateral"),
        sizes: [...(await positionsOf(f, id, head)).values()],
      });
    }
    return views;
  }

  // A liquidation a reorganisation dropped, whose carried price is stale by then, must never be mined again: a node
  // puts the transactions of the blocks it drops back in its pool, and the next block would mine it, to revert. The
  // keeper cancels it at its nonce when it sees the reorganisation, before that block (liquidation_price_expired:
  // Monitor.reorged at once, else the new head's pass; test/executor/executor.test.ts has the first alone).
  //
  // The reorganisation is built as a real chain's would be: anvil_reorg is not used, since its replacement blocks carry
  // the ancestor's timestamp (the keeper's next-block time would be the ancestor's, and the stale price look fresh).
  // With mining paused: back to a snapshot from before the flag, a new branch one block higher mined at the wall
  // clock's time with none of the dropped transactions, then those put back in the pool as a node does. On a real chain
  // the new branch's head is seen a block time before the next block: mining resumes once the keeper has handled it.
  it("(c) a reorganisation after the carried price went stale: the liquidation on the new branch carries a fresh price, nothing reverts", async () => {
    const f = ready();
    const { keeper: k, logs, signers } = current();
    const late = idOf("late");
    await atHead(f, k);
    const crash = { BTC: "48000" };
    expect((await liquidatableAtPrices(f, [late], { ETH: "2600", ...crash })).map(nameOf)).toEqual(["late"]);
    const moveBlock = await freshBlock(f);
    const beforeFlag = (await f.rpc("evm_snapshot", [])) as Hex;
    const ancestor = await f.head();
    f.move(crash);
    await until("late flagged", async () => (await flagsSince(f, moveBlock + 1n)).some((x) => x.accountId === late));
    const [flag] = (await flagsSince(f, moveBlock + 1n)).filter((x) => x.accountId === late);
    const [carried] = (await keeperTxs(f, signers, flag?.blockNumber ?? 0n, flag?.blockNumber)).filter(
      (t) => t.hash === flag?.txHash,
    );
    const publishTime = decodeMockPythUpdate(carried?.updates[0] as Hex).publishTime;
    // the carried price goes stale for the exchange
    await until(
      "the carried price older than maxPriceAge",
      async () => (await blockTime(f, await f.head())) > BigInt(publishTime) + MAX_PRICE_AGE + 1n,
      20_000,
    );
    let depth = 0;
    let branch = 0n;
    let dropped: Hex[] = [];
    const reorgsBefore = logs.events("reorg_detected").length;
    await withMiningPaused(f, async () => {
      const head = await f.head();
      depth = Number(head - ancestor);
      dropped = await rawTransactions(f, ancestor + 1n, head);
      await f.rpc("evm_revert", [beforeFlag]);
      await f.rpc("anvil_setTime", [Math.floor(Date.now() / 1000)]);
      forgetBlockTimes();
      await f.rpc("anvil_mine", [`0x${(depth + 1).toString(16)}`, "0x0"]);
      branch = await f.head();
      for (const raw of dropped) await f.rpc("eth_sendRawTransaction", [raw]);
      await until("the keeper sees the new branch", () => logs.events("reorg_detected").length > reorgsBefore, 10_000);
      await settledKeeper(k);
    });
    // the flag's transaction was among those put back in the pool
    expect(dropped.map((raw) => keccak256(raw))).toContain(flag?.txHash);
    const fork = ancestor + 1n;
    // the premise: the next block is too late for the price the flag carried
    await until("a block on the new branch", async () => (await f.head()) > branch, 10_000);
    expect((await blockTime(f, branch + 1n)) - BigInt(publishTime)).toBeGreaterThan(MAX_PRICE_AGE);
    await until(
      "late flagged again on the new branch",
      async () => (await flagsSince(f, fork)).some((x) => x.accountId === late),
      30_000,
    );
    await settledKeeper(k);
    const again = (await flagsSince(f, fork)).find((x) => x.accountId === late);
    const txs = await keeperTxs(f, signers, fork);
    const at = await Promise.all(txs.map((t) => blockTime(f, t.blockNumber)));
    const ages = txs.map((t, i) =>
      t.updates.map((u) => (at[i] as bigint) - BigInt(decodeMockPythUpdate(u).publishTime)),
    );
    console.log(
      `[cross-margin reorg, stale bytes] flag in block ${flag?.blockNumber} carrying a price published at ${publishTime}; reorganised ${depth} deep; ` +
        `flagged again in ${again?.blockNumber}; txs ${show(txs.map((t, i) => ({ block: t.blockNumber, status: t.status, ages: ages[i] })))}`,
    );
    expect(signers).toContain(again?.from as Address);
    // nothing the keeper sent on the new branch reverted, and every price it carried was one the exchange takes
    expect(txs.map((t) => t.status)).not.toContain("reverted");
    for (const age of ages.flat()) expect(age <= MAX_PRICE_AGE && -age <= MAX_PRICE_AGE).toBe(true);
    expect(logs.events("liquidation_reverted")).toEqual([]);
  });
});

/** The raw transactions of blocks [from, to], in order. */
async function rawTransactions(f: CrossMarginFixture, from: bigint, to: bigint): Promise<Hex[]> {
  const raws: Hex[] = [];
  for (let n = from; n <= to; n++) {
    const block = await f.client.getBlock({ blockNumber: n });
    for (const hash of block.transactions) raws.push((await f.rpc("eth_getRawTransactionByHash", [hash])) as Hex);
  }
  return raws;
}

/**
 * After anvil_reorg: the replacement blocks carry the ancestor's timestamp and Anvil's clock goes back with them (the
 * next blocks would follow the ancestor's time, behind the wall clock and Hermes' publish times); set back to the
 * wall clock, as a real chain's time would be.
 */
async function resyncClock(f: CrossMarginFixture): Promise<void> {
  await f.rpc("anvil_setTime", [Math.floor(Date.now() / 1000)]);
  forgetBlockTimes();
}

/**
 * The cross-margin core loop on its own: events through a record book, accounts through the cross-margin engine,
 * findings to an executor that records them. The model is the reference linear one (src/risk/cross/linearModel.ts).
 */
import pino from "pino";
import type { PublicClient } from "viem";
import { describe, expect, it } from "vitest";
import { AccountKeeper } from "../src/accountKeeper.ts";
import type { Finding } from "../src/protocol/adapter.ts";
import type { Evaluation, PriceView } from "../src/protocol/types.ts";
import { CrossRiskEngine } from "../src/risk/cross/engine.ts";
import { type LinearAccount, LinearModel, linearAccount, WAD } from "../src/risk/cross/linearModel.ts";
import type { LogRef } from "../src/state/events.ts";
import { RecordBook, type RecordChange, type StateRules } from "../src/state/recordBook.ts";
import type { Tick } from "../src/watcher/types.ts";

type Event = { readonly ref: LogRef; readonly account: LinearAccount | { readonly key: string; readonly gone: true } };
type Change = RecordChange<LinearAccount, { id: number }, null>;

const rules: StateRules<LinearAccount, { id: number }, null, Event> = {
  initialGlobal: null,
  reduce(book, e): Change[] {
    const before = book.accounts.get(e.account.key);
    return [{ type: "account", key: e.account.key, before, after: "gone" in e.account ? undefined : e.account }];
  },
};

let logIndex = 0;
const ref = (blockNumber: bigint): LogRef => ({
  blockNumber,
  logIndex: logIndex++,
  blockHash: `0x${"0".repeat(64)}`,
  transactionHash: `0x${"0".repeat(64)}`,
});

/** A long of `size` base in market 0 and a short of `size` in market 1, entered at 100 and 50, with `collateral`. */
const hedged = (key: string, collateral: bigint, size = 10n * WAD) =>
  linearAccount(key, collateral, [
    { price: 0, size, openNotional: -100n * size, fundingIndex: 0n },
    { price: 1, size: -size, openNotional: 50n * size, fundingIndex: 0n },
  ]);

function setup() {
  const model = new LinearModel({ markets: 2, fundingRateBound: 0n });
  const book = new RecordBook(rules);
  const risk = new CrossRiskEngine(model);
  const submitted: Finding[][] = [];
  const changed: string[] = [];
  const keeper = new AccountKeeper({
    book,
    risk,
    adapter: {
      model,
      findings: (account: LinearAccount, evaluation: Evaluation, _view: PriceView) =>
        account.prices.map((id) => ({
          target: {
            key: `${account.key}/${id}`,
            account: account.key,
            trader: account.key as `0x${string}`,
            marketId: id,
          },
          state: account,
          shortfall: evaluation.kind === "exact" ? evaluation.requirement - evaluation.balance : 0n,
          expectedReward: 1n,
        })),
      targetKeys: (a: LinearAccount) => a.prices.map((id) => `${a.key}/${id}`),
      pricesOf: (m: { id: number }) => [m.id],
      accountOf: (target: string) => target.split("/")[0] as string,
    },
    executor: {
      submit: (f: readonly Finding[]) => submitted.push([...f]),
      onHead: () => {},
      onTargetChanged: (key: string) => changed.push(key),
    },
    client: {} as PublicClient,
    log: pino({ level: "silent" }),
  });
  let block = 1n;
  const tick = (p0: bigint, p1: bigint): Tick => ({
    blockNumber: block++,
    timestamp: 1000n + block,
    baseFeePerGas: 1n,
    prices: new Map([
      [0, p0 * WAD],
      [1, p1 * WAD],
    ]),
  });
  return { keeper, book, submitted, changed, tick, next: () => block };
}

describe("AccountKeeper", () => {
  it("finds an account whose two markets move against it together, and hands each of its targets on", () => {
    const k = setup();
    // value at (100, 50): 100; requirement 6.25% of (1000 + 500) = 93.75: healthy
    k.keeper.handleEvent({ ref: ref(1n), account: hedged("0xa", 100n * WAD) });
    k.keeper.handleEvent({ ref: ref(1n), account: hedged("0xb", 1000n * WAD) });
    k.keeper.handleTick(k.tick(100n, 50n));
    expect(k.submitted).toEqual([]);
    // the long falls 1 and the short rises 1: a is 20 down, b is not
    k.keeper.handleTick(k.tick(99n, 51n));
    expect(k.submitted.flat().map((f) => f.target.key)).toEqual(["0xa/0", "0xa/1"]);
    expect(k.keeper.stillLiquidatable("0xa/1")).toBe(true);
    expect(k.keeper.stillLiquidatable("0xb/0")).toBe(false);
    expect([...k.keeper.liquidatableKeys()].map((x) => x.key)).toEqual(["0xa"]);
  });

  it("gives no verdict on an account one of whose prices is missing at the head (its pending liquidation is kept)", () => {
    const k = setup();
    k.keeper.handleEvent({ ref: ref(1n), account: hedged("0xa", 100n * WAD) });
    k.keeper.handleEvent({ ref: ref(1n), account: hedged("0xb", 1000n * WAD) });
    k.keeper.handleTick(k.tick(99n, 51n));
    expect(k.keeper.stillLiquidatable("0xa/0")).toBe(true);
    // market 1's view reverted at this head: its accounts are unpriced, neither liquidatable nor healthy
    k.keeper.handleTick({ ...k.tick(99n, 51n), prices: new Map([[0, 99n * WAD]]) });
    expect(k.keeper.stillLiquidatable("0xa/0")).toBeUndefined();
    // priced again: the verdicts come back
    k.keeper.handleTick(k.tick(99n, 51n));
    expect(k.keeper.stillLiquidatable("0xa/0")).toBe(true);
    expect(k.keeper.stillLiquidatable("0xb/0")).toBe(false);
  });

  it("a rollback gives the engine back the account as it was, and the executor hears the targets changed", () => {
    const k = setup();
    k.keeper.handleEvent({ ref: ref(1n), account: hedged("0xa", 1000n * WAD) });
    k.keeper.handleTick(k.tick(100n, 50n));
    const applied = k.keeper.handleEvent({ ref: ref(2n), account: hedged("0xa", 100n * WAD) });
    expect(applied).toBeDefined();
    k.changed.length = 0;
    k.keeper.rollback([applied as NonNullable<typeof applied>], undefined);
    expect(k.changed.sort()).toEqual(["0xa/0", "0xa/1"]);
    expect(k.book.accounts.get("0xa")?.collateral).toBe(1000n * WAD);
    k.keeper.handleTick(k.tick(99n, 51n));
    expect(k.submitted).toEqual([]); // with its old collateral it is healthy at these prices
  });

  it("replayed history reaches the engine once, rebuilt from the book before the first tick", () => {
    const k = setup();
    for (let i = 0; i < 50; i++)
      k.keeper.handleEvent({ ref: ref(1n), account: hedged(`0x${i}`, BigInt(95 + i) * WAD) }, false);
    k.keeper.handleTick(k.tick(99n, 51n));
    // value at (99, 51) = collateral - 20, requirement = 6.25% of 1500 = 93.75: collateral < 113.75 is liquidatable
    const found = new Set(k.submitted.flat().map((f) => f.target.account));
    expect(found.size).toBe(19); // 95 .. 113
  });

  it("looks ahead: an account the next block's expected prices make liquidatable is sent at this head, and kept until then", () => {
    const k = setup();
    k.keeper.handleEvent({ ref: ref(1n), account: hedged("0xa", 100n * WAD) });
    k.keeper.handleEvent({ ref: ref(1n), account: hedged("0xb", 1000n * WAD) });
    k.keeper.handleTick(k.tick(100n, 50n));
    // at this head both are safe; the forecast for the next block has a at 20 down
    const now = k.tick(100n, 50n);
    const ahead = {
      prices: new Map([
        [0, 99n * WAD],
        [1, 51n * WAD],
      ]),
      blockNumber: now.blockNumber + 1n,
      timestamp: now.timestamp + 1n,
    };
    k.keeper.handleTick({ ...now, ahead });
    expect(k.submitted.flat().map((f) => f.target.key)).toEqual(["0xa/0", "0xa/1"]);
    expect(k.keeper.stillLiquidatable("0xa/0")).toBe(true); // pending for the next block: not cancelled
    expect(k.keeper.stillLiquidatable("0xb/0")).toBe(false);
    expect(k.keeper.busy()).toBe(true);
    expect([...k.keeper.liquidatableKeys()]).toEqual([]); // not liquidatable yet: nothing is left behind
    // the next block did not bring the forecast: a's pending liquidation is no longer wanted
    k.keeper.handleTick(k.tick(100n, 50n));
    expect(k.keeper.stillLiquidatable("0xa/0")).toBe(false);
    expect(k.keeper.busy()).toBe(false);
    // a forecast no later than the head is not one
    k.submitted.length = 0;
    const stale = k.tick(100n, 50n);
    k.keeper.handleTick({ ...stale, ahead: { ...ahead, timestamp: stale.timestamp } });
    expect(k.submitted).toEqual([]);
  });
});

import { describe, expect, it } from "vitest";
import { crossMarginRules } from "../../../src/protocol/crossMargin/book.ts";
import type {
  CrossMarginEvent,
  CrossMarginEventBody,
  CrossMarginEvent as E,
} from "../../../src/protocol/crossMargin/events.ts";
import { evaluateAccount } from "../../../src/protocol/crossMargin/margin.ts";
import { accountHealth, type CrossMarginMarketConfig } from "../../../src/protocol/crossMargin/math.ts";
import type {
  CrossMarginAccount,
  CrossMarginGlobal,
  CrossMarginMarket,
} from "../../../src/protocol/crossMargin/records.ts";
import { RecordBook } from "../../../src/state/recordBook.ts";

const WAD = 10n ** 18n;
const ID = 170141183460469231731687303715884105729n; // above 2^53: exact as a string key
const CONFIG: CrossMarginMarketConfig = {
  feedId: `0x${"aa".repeat(32)}`,
  skewScale: 1_000_000n * WAD,
  makerFeeRatio: 2n * 10n ** 14n,
  takerFeeRatio: 5n * 10n ** 14n,
  initialMarginRatio: 2n * WAD,
  minimumInitialMarginRatio: 2n * 10n ** 16n,
  maintenanceMarginScalar: WAD / 2n,
  flagRewardRatio: 3n * 10n ** 14n,
  minimumPositionMargin: 50n * WAD,
  maxLiquidationLimitAccumulationMultiplier: WAD / 100n,
  maxSecondsInLiquidationWindow: 5n,
};

let index = 0;
function at(block: bigint, timestamp: bigint, body: CrossMarginEventBody): E {
  return {
    ref: {
      blockNumber: block,
      logIndex: index++,
      blockHash: `0x${"11".repeat(32)}`,
      transactionHash: `0x${"22".repeat(32)}`,
    },
    timestamp,
    ...body,
  } as CrossMarginEvent;
}

function bookWith(...events: E[]) {
  const book = new RecordBook<CrossMarginAccount, CrossMarginMarket, CrossMarginGlobal, E>(crossMarginRules);
  for (const e of events) book.apply(e);
  return book;
}

const setup = (): E[] => [
  at(1n, 100n, {
    kind: "globalConfigured",
    minKeeperReward: WAD,
    maxKeeperReward: 500n * WAD,
    stepReward: WAD,
    maxPriceAge: 60n,
  }),
  at(1n, 100n, { kind: "marketCreated", marketId: 100n, name: "ETH" }),
  at(1n, 100n, { kind: "marketConfigured", marketId: 100n, config: CONFIG }),
  at(2n, 101n, { kind: "accountCreated", accountId: ID, owner: "0x00000000000000000000000000000000000000aa" }),
  at(2n, 101n, { kind: "collateralModified", accountId: ID, amountDelta: 1_000n * WAD }),
  at(3n, 102n, {
    kind: "orderSettled",
    marketId: 100n,
    accountId: ID,
    fillPrice: 3_000n * WAD,
    pnl: 0n,
    sizeDelta: 10n * WAD,
    newSize: 10n * WAD,
    totalFees: 15n * WAD,
  }),
];

describe("cross-margin book", () => {
  it("keys accounts by their uint128 id exactly and follows collateral, fills and fees", () => {
    const book = bookWith(...setup());
    const a = book.accounts.get(ID.toString()) as CrossMarginAccount;
    expect(a.id).toBe(ID);
    expect(a.collateral).toBe(985n * WAD);
    expect(a.prices).toEqual([0]);
    expect(a.positions.get(0)).toEqual({ size: 10n * WAD, entryPrice: 3_000n * WAD });
  });

  it("evaluates with the exchange's arithmetic: liquidatable exactly when available margin is below maintenance + reward", () => {
    const book = bookWith(...setup());
    const a = book.accounts.get(ID.toString()) as CrossMarginAccount;
    for (const price of [2_950n, 2_930n, 2_900n, 2_800n]) {
      const p = price * WAD;
      const health = accountHealth(book.global.config as never, a.collateral, [
        { config: CONFIG, size: 10n * WAD, entryPrice: 3_000n * WAD, price: p },
      ]);
      const e = evaluateAccount(a, book, { prices: new Map([[0, p]]) }).evaluation;
      if (e.kind !== "exact") throw new Error("not exact");
      expect(e.balance - e.requirement < 0n).toBe(health.liquidatable);
      expect(e.balance).toBe(health.availableMargin);
    }
    expect(evaluateAccount(a, book, { prices: new Map() }).evaluation).toEqual({ kind: "unpriced", missing: [0] });
  });

  it("seizes collateral on a flag, closes by window, records the window, and clears the flag when fully closed", () => {
    const book = bookWith(
      ...setup(),
      at(4n, 110n, { kind: "accountFlagged", accountId: ID, flagReward: 8n * WAD }),
      at(4n, 110n, {
        kind: "positionLiquidated",
        accountId: ID,
        marketId: 100n,
        amountLiquidated: 4n * WAD,
        currentPositionSize: 6n * WAD,
      }),
      at(4n, 110n, { kind: "liquidationAttempt", accountId: ID, reward: 8n * WAD, fullLiquidation: false }),
    );
    let a = book.accounts.get(ID.toString()) as CrossMarginAccount;
    expect(a.flagged).toBe(true);
    expect(a.collateral).toBe(0n);
    expect(a.positions.get(0)?.size).toBe(6n * WAD);
    expect(book.markets.get(0)?.window).toEqual([{ timestamp: 110n, amount: 4n * WAD }]);
    // flagged: liquidatable whatever the prices, until no position is left
    expect(evaluateAccount(a, book, { prices: new Map() }).evaluation.kind).toBe("exact");
    book.apply(
      at(5n, 116n, {
        kind: "positionLiquidated",
        accountId: ID,
        marketId: 100n,
        amountLiquidated: 6n * WAD,
        currentPositionSize: 0n,
      }),
    );
    book.apply(at(5n, 116n, { kind: "liquidationAttempt", accountId: ID, reward: WAD, fullLiquidation: true }));
    a = book.accounts.get(ID.toString()) as CrossMarginAccount;
    expect(a.flagged).toBe(false);
    expect(a.prices).toEqual([]);
    // the first entry left the 5 s window by the second's time
    expect(book.markets.get(0)?.window).toEqual([{ timestamp: 116n, amount: 6n * WAD }]);
  });

  it("refuses events that cannot follow from the book, and leaves it untouched", () => {
    const book = bookWith(...setup());
    const before = book.accounts.get(ID.toString());
    expect(() =>
      book.apply(
        at(6n, 120n, {
          kind: "orderSettled",
          marketId: 100n,
          accountId: ID,
          fillPrice: 3_000n * WAD,
          pnl: 0n,
          sizeDelta: WAD,
          newSize: 5n * WAD, // 10 + 1 is not 5
          totalFees: 0n,
        }),
      ),
    ).toThrow(/not the new size/);
    expect(() =>
      book.apply(
        at(6n, 120n, {
          kind: "positionLiquidated",
          accountId: ID,
          marketId: 100n,
          amountLiquidated: WAD,
          currentPositionSize: 9n * WAD,
        }),
      ),
    ).toThrow(/not flagged/);
    expect(() => book.apply(at(6n, 120n, { kind: "collateralModified", accountId: 7n, amountDelta: 1n }))).toThrow(
      /never created/,
    );
    expect(book.accounts.get(ID.toString())).toBe(before);
  });
});

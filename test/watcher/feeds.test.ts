import { type Address, encodeAbiParameters, type Log, numberToHex, pad } from "viem";
import { describe, expect, it } from "vitest";
import { ANSWER_UPDATED, answerOf, CHECK_EVERY, OracleFeeds } from "../../src/prices/chainlink/feeds.ts";
import type { OracleReading } from "../../src/prices/chainlink/oracle.ts";

const ORACLE = "0x00000000000000000000000000000000000000a1" as Address;
const AGG = "0x00000000000000000000000000000000000000b2" as Address;
const market = { id: 0, oracle: ORACLE };

function answerLog(source: Address, answer: bigint, round: bigint, updatedAt: bigint): Log {
  return {
    address: source,
    topics: [
      ANSWER_UPDATED,
      pad(numberToHex(BigInt.asUintN(256, answer)), { size: 32 }),
      pad(numberToHex(round), { size: 32 }),
    ],
    data: encodeAbiParameters([{ type: "uint256" }], [updatedAt]),
  } as unknown as Log;
}
const read = (r: OracleReading) => new Map([[0, { status: "fulfilled" as const, value: r }]]);
const r = (answer: bigint, updatedAt = 100n): OracleReading => ({ answer, roundId: 1n, updatedAt });

describe("oracle feeds", () => {
  it("decodes AnswerUpdated, negative answers included, and nothing else", () => {
    expect(answerOf(answerLog(AGG, -5n, 7n, 99n))).toEqual({ answer: -5n, roundId: 7n, updatedAt: 99n });
    const other = { ...answerLog(AGG, 1n, 1n, 1n), topics: [`0x${"00".repeat(32)}`] } as unknown as Log;
    expect(answerOf(other)).toBeUndefined();
  });

  it("reads a market until a log of its source agrees with a read, then takes answers from logs", () => {
    const feeds = new OracleFeeds();
    feeds.resolved(0, ORACLE, AGG);
    expect(feeds.addresses().sort()).toEqual([AGG, ORACLE].sort());
    expect(feeds.toRead([market], false)).toEqual([market]);
    // block 1: an update, logged and read: they agree
    const logs1 = OracleFeeds.split([answerLog(AGG, 2000n, 2n, 100n)]);
    feeds.merge([market], read(r(2000n)), logs1, 1n, true, "head");
    expect(feeds.toRead([market], false)).toEqual([]);
    // block 2: no log, no read: the answer is carried
    const carried = feeds.merge([market], new Map(), OracleFeeds.split([]), 2n, false, "head");
    expect(carried.readings[0]).toEqual({ status: "fulfilled", value: r(2000n) });
    // block 3: a new answer from the log alone
    const moved = feeds.merge(
      [market],
      new Map(),
      OracleFeeds.split([answerLog(AGG, 1900n, 3n, 130n)]),
      3n,
      false,
      "head",
    );
    expect(moved.readings[0]).toMatchObject({ status: "fulfilled", value: { answer: 1900n, updatedAt: 130n } });
  });

  it("a check that disagrees with the carried answer puts the market back to reading every head", () => {
    const feeds = new OracleFeeds();
    feeds.resolved(0, ORACLE, AGG);
    feeds.merge([market], read(r(2000n)), OracleFeeds.split([answerLog(AGG, 2000n, 2n, 100n)]), 1n, true, "head");
    expect(feeds.checkDue(1n + CHECK_EVERY - 1n)).toBe(false);
    expect(feeds.checkDue(1n + CHECK_EVERY)).toBe(true);
    const checked = feeds.merge([market], read(r(2100n, 150n)), OracleFeeds.split([]), 1n + CHECK_EVERY, true, "head");
    expect(checked.mismatched).toEqual([0]);
    expect(feeds.toRead([market], false)).toEqual([market]);
    // a resync's reads judge nothing (the logs of the gap were not asked)
    const again = new OracleFeeds();
    again.resolved(0, ORACLE, AGG);
    again.merge([market], read(r(1n)), OracleFeeds.split([answerLog(AGG, 1n, 1n, 100n)]), 1n, true, "head");
    expect(again.merge([market], read(r(5n, 200n)), OracleFeeds.split([]), 9n, true, "resync").mismatched).toEqual([]);
  });

  it("a log of the proxy marks its market for a new resolution; a new source must show it emits", () => {
    const feeds = new OracleFeeds();
    feeds.resolved(0, ORACLE, AGG);
    feeds.merge([market], read(r(2000n)), OracleFeeds.split([answerLog(AGG, 2000n, 2n, 100n)]), 1n, true, "head");
    const proxyLog = { address: ORACLE, topics: [`0x${"11".repeat(32)}`], data: "0x" } as unknown as Log;
    expect(feeds.proxiesTouched([market], OracleFeeds.split([proxyLog]))).toEqual([0]);
    feeds.resolved(0, ORACLE, "0x00000000000000000000000000000000000000c3");
    expect(feeds.toRead([market], false)).toEqual([market]);
  });
});

/**
 * The watcher's reorganisation handling under RPC faults Anvil cannot produce, on a scripted chain: a getLogs that fails
 * part way through an index or a backfill, a load-balanced RPC whose head lags, logs answered from another fork than
 * the head. After each, the book equals one rebuilt from the canonical chain, and nothing crashes.
 */

import pino from "pino";
import { BlockNotFoundError, type PublicClient } from "viem";
import { expect, it } from "vitest";
import type { Executor } from "../../src/executor/executor.ts";
import { Keeper } from "../../src/keeper.ts";
import type { Logger } from "../../src/ops/logger.ts";
import { ChainlinkPrices } from "../../src/prices/chainlink/chainlinkPrices.ts";
import { Book, type BookChange, type BookState } from "../../src/protocol/perpEngine/book.ts";
import type { ExchangeEvent } from "../../src/protocol/perpEngine/events.ts";
import { RiskEngine } from "../../src/protocol/perpEngine/riskEngine.ts";
import type { LogRef } from "../../src/state/events.ts";
import { Watcher } from "../../src/watcher/watcher.ts";
import { listedEvent } from "../helpers/events.ts";

type Blk = { number: bigint; hash: `0x${string}`; timestamp: bigint; events: ExchangeEvent[] };
let salt = 0;
const trader = (i: number) => `0x${i.toString(16).padStart(40, "0")}` as `0x${string}`;

function mkBlock(n: bigint, fork: string, evs: ((ref: LogRef) => ExchangeEvent)[]): Blk {
  const hash = `0x${fork}${n.toString(16).padStart(8, "0")}${(salt++).toString(16)}` as `0x${string}`;
  const events = evs.map((f, i) => f({ blockNumber: n, logIndex: i, blockHash: hash, transactionHash: "0x02" }));
  return { number: n, hash, timestamp: 1000n + n, events };
}
const listed = (ref: LogRef): ExchangeEvent => listedEvent(ref, { name: "ETH" });
const pos =
  (t: number, size: bigint) =>
  (ref: LogRef): ExchangeEvent => ({
    kind: "positionChanged",
    ref,
    marketId: 0,
    trader: trader(t),
    size,
    openNotional: size * 1000n,
    margin: 100n,
    fundingIndex: 0n,
    price: 1n,
    sizeDelta: size,
  });
const fund =
  (idx: bigint) =>
  (ref: LogRef): ExchangeEvent => ({
    kind: "fundingUpdated",
    ref,
    marketId: 0,
    cumulativeFundingIndex: idx,
    fundingRatePerSecond: 1n,
    timestamp: ref.blockNumber,
  });

class FakeChain {
  blocks: Blk[] = [];
  /** Every block ever mined, by hash: like a node, it still answers logs by hash for a block reorganised away. */
  byHash = new Map<string, Blk>();
  failLogsAt: number | undefined; // fail the nth getLogs call from now
  logCalls = 0;
  /** getLogs calls by block hash (the one-round-trip path for a head that extends the last). */
  hashLogCalls = 0;
  lagHead: bigint | undefined;
  constructor() {
    this.mine();
  }
  mine(evs: ((ref: LogRef) => ExchangeEvent)[] = [], fork = "a") {
    const b = mkBlock(BigInt(this.blocks.length), fork, evs);
    this.blocks.push(b);
    this.byHash.set(b.hash, b);
  }
  reorg(fromHeight: bigint, newBlocks: ((ref: LogRef) => ExchangeEvent)[][]) {
    this.blocks = this.blocks.slice(0, Number(fromHeight));
    for (const evs of newBlocks) this.mine(evs, "b");
  }
  client = {
    getBlock: async (a: { blockTag?: string; blockNumber?: bigint }) => {
      const n = a.blockTag === "latest" ? (this.lagHead ?? BigInt(this.blocks.length - 1)) : a.blockNumber;
      const b = this.blocks[Number(n)];
      if (!b) throw new BlockNotFoundError({ blockNumber: n });
      const parentHash = this.blocks[Number(b.number) - 1]?.hash ?? `0x${"0".repeat(64)}`;
      return {
        number: b.number,
        hash: b.hash,
        parentHash,
        timestamp: b.timestamp,
        baseFeePerGas: 1n,
        gasLimit: 30_000_000n,
      };
    },
    getLogs: async (a: { fromBlock?: bigint; toBlock?: bigint; blockHash?: string }) => {
      this.logCalls++;
      if (this.failLogsAt !== undefined && --this.failLogsAt === 0) {
        this.failLogsAt = undefined;
        throw new Error("network down");
      }
      if (a.blockHash !== undefined) {
        this.hashLogCalls++;
        const b = this.byHash.get(a.blockHash);
        if (!b) throw new Error("unknown block");
        return b.events.map((e) => ({ ...e, address: trader(1), blockHash: b.hash, blockNumber: b.number }));
      }
      const [from, to] = [a.fromBlock ?? 0n, a.toBlock ?? 0n];
      return this.blocks.filter((b) => b.number >= from && b.number <= to).flatMap((b) => b.events);
    },
    // eth_getLogs over a range (the backfill's raw path) goes through getLogs above, each event wrapped as a raw
    // log; every other call (oracle reads) answers "0x": no oracle code, so the market is left unpriced
    request: async (a: { method: string; params: [{ fromBlock: string; toBlock: string }] }) => {
      if (a.method !== "eth_getLogs") return "0x";
      const [range] = a.params;
      const events = (await this.client.getLogs({
        fromBlock: BigInt(range.fromBlock),
        toBlock: BigInt(range.toBlock),
      })) as ExchangeEvent[];
      return events.map((event) => ({
        event,
        address: trader(1),
        topics: [],
        data: "0x",
        blockNumber: `0x${event.ref.blockNumber.toString(16)}`,
        logIndex: `0x${event.ref.logIndex.toString(16)}`,
        blockHash: event.ref.blockHash,
        transactionHash: event.ref.transactionHash,
      }));
    },
  };
}

function setup(chain: FakeChain, maxLogRange = 2n, reorgDepth = 64n) {
  const book = new Book();
  const risk = new RiskEngine(book);
  const exec = {
    onTargetChanged() {},
    isOurs() {
      return false;
    },
    submit() {},
    onHead() {},
    onReorg() {
      exec.reorgs++;
    },
    reorgs: 0,
  };
  const log = pino({ level: "silent" });
  // the executor's part in a reorganisation is tested on Anvil (test/e2e/executor.test.ts); here it only counts them
  const keeper = new Keeper({ book, risk, executor: exec as unknown as Executor, log });
  const actions: string[] = [];
  const w = new Watcher<ExchangeEvent, BookChange, BookState>({
    client: chain.client as unknown as PublicClient,
    addresses: [trader(1)],
    fromBlock: 1n,
    book,
    prices: new ChainlinkPrices({ markets: () => book.markets.values(), log }),
    removesListing: (change) => change.type === "market",
    log: {
      ...log,
      warn: (o: { action?: string; event?: string }) => actions.push(o.action ?? o.event ?? ""),
      info() {},
    } as unknown as Logger,
    decode: (logs) => logs.map((l) => ((l as { event?: ExchangeEvent }).event ?? l) as ExchangeEvent),
    onEvent: (e, live) => keeper.handleEvent(e, live),
    onTick: (t) => keeper.handleTick(t),
    onRestore: (state) => keeper.restore(state),
    onRollback: (c, cur) => {
      keeper.rollback(c, cur);
      exec.onReorg();
    },
    onReorg: () => {
      keeper.reset();
      exec.onReorg();
    },
    maxLogRange,
    pollIntervalMs: 10,
    reorgDepth,
  });
  return { book, risk, w, actions, exec };
}
function fresh(chain: FakeChain) {
  const b = new Book();
  for (const blk of chain.blocks) for (const e of blk.events) b.apply(e);
  return b;
}
const snap = (b: Book) => ({
  pos: [...b.positions.entries()].sort(),
  funding: [...b.markets.values()].map((m) => m.funding),
});

it("A: an index that fails part way, then a reorganisation to a shorter chain: no crash, the canonical book", async () => {
  const c = new FakeChain();
  c.mine([listed]);
  c.mine([pos(1, 1n)]);
  const s = setup(c);
  await s.w.backfill();
  await s.w.poll(); // head 2
  for (let i = 0; i < 6; i++) c.mine([pos(2, BigInt(i + 1))]); // blocks 3..8
  c.failLogsAt = 3; // ranges [3,4],[5,6] ok, [7,8] fails
  await expect(s.w.poll()).rejects.toThrow(/network/);
  expect(s.w.processedBlock).toBe(2n); // the partial index was undone
  c.reorg(4n, [[pos(3, 5n)]]); // block 4 replaced; the new head 4 is below what had been applied
  await s.w.poll();
  await s.w.poll();
  expect(snap(s.book)).toEqual(snap(fresh(c)));
});

it("B: an index that fails part way, then a reorganisation inside what it had applied: the canonical book", async () => {
  const c = new FakeChain();
  c.mine([listed]);
  c.mine([pos(1, 1n)]);
  const s = setup(c);
  await s.w.backfill();
  await s.w.poll();
  for (let i = 0; i < 6; i++) c.mine([pos(2, BigInt(i + 1))]);
  c.failLogsAt = 3;
  await expect(s.w.poll()).rejects.toThrow(/network/);
  c.reorg(4n, [[pos(3, 5n)], [], [], [], [], [], []]); // new head 10
  await s.w.poll();
  expect(snap(s.book)).toEqual(snap(fresh(c)));
});

it("C: a backfill retried after a reorganisation between attempts starts over: the canonical book", async () => {
  const c = new FakeChain();
  c.mine([listed]);
  for (let i = 0; i < 6; i++) c.mine([pos(2, BigInt(i + 1))]); // blocks 2..7
  const s = setup(c);
  c.failLogsAt = 3; // [1,2],[3,4] ok
  await expect(s.w.backfill()).rejects.toThrow(/network/);
  c.reorg(3n, [[pos(4, 9n)], [], [], [], [], []]);
  await s.w.backfill();
  await s.w.poll();
  c.mine();
  await s.w.poll();
  expect(snap(s.book)).toEqual(snap(fresh(c)));
});

it("D: funding changes are rolled back with the positions", async () => {
  const c = new FakeChain();
  c.mine([listed]);
  c.mine([fund(5n)]);
  const s = setup(c);
  await s.w.backfill();
  await s.w.poll();
  c.mine([fund(7n), pos(1, 2n)]);
  await s.w.poll();
  c.mine([fund(9n)]);
  c.mine([]);
  c.mine([]); // poll skips some
  await s.w.poll();
  c.reorg(4n, [[pos(5, 1n)], [fund(11n)]]);
  await s.w.poll();
  expect(snap(s.book)).toEqual(snap(fresh(c)));
  expect(s.risk.index.size).toBe(s.book.positions.size);
});

it("E: a lagging node after a partial index: no crash, and the canonical book once it catches up", async () => {
  const c = new FakeChain();
  c.mine([listed]);
  c.mine([pos(1, 1n)]);
  const s = setup(c);
  await s.w.backfill();
  await s.w.poll();
  for (let i = 0; i < 6; i++) c.mine([pos(2, BigInt(i + 1))]);
  c.failLogsAt = 3;
  await expect(s.w.poll()).rejects.toThrow(/network/);
  c.lagHead = 5n; // a node behind the one that served the logs
  await s.w.poll();
  c.lagHead = undefined;
  await s.w.poll();
  expect(snap(s.book)).toEqual(snap(fresh(c)));
});

it("F: a lagging head below the checkpoint, at a height the window did not record, is waited out, not rolled back", async () => {
  const c = new FakeChain();
  c.mine([listed]);
  c.mine([pos(1, 1n)]);
  const s = setup(c);
  await s.w.backfill();
  await s.w.poll();
  c.mine([pos(2, 1n)]); // block 3: recorded (it has events)
  c.mine(); // blocks 4 and 5: no events, and no head was ticked at them: never recorded
  c.mine();
  c.mine([pos(2, 2n)]); // block 6: recorded, the checkpoint
  await s.w.poll();
  expect(s.w.latestTick?.blockNumber).toBe(6n);
  const changes = s.book.positions.get(`0:${trader(2)}`);
  const reorgsBefore = s.exec.reorgs;
  c.lagHead = 4n; // a node two blocks behind the one followed: block 4 is canonical, only not recorded
  await s.w.poll();
  expect.soft(s.actions, "a node behind is waited for, not taken for a reorganisation").not.toContain("rollback");
  expect.soft(s.actions).not.toContain("rebuild");
  expect.soft(s.exec.reorgs, "executor.onReorg called for a head that is only behind").toBe(reorgsBefore);
  expect.soft(s.w.latestTick?.blockNumber, "the tick moved backwards").toBe(6n);
  expect.soft(s.w.processedBlock, "processed blocks given back").toBe(6n);
  expect.soft(s.book.positions.get(`0:${trader(2)}`), "block 6's change undone").toEqual(changes);
  c.lagHead = undefined;
  c.mine();
  await s.w.poll();
  expect.soft(s.actions).not.toContain("rollback");
  expect.soft(s.exec.reorgs).toBe(reorgsBefore);
  expect.soft(s.w.latestTick?.blockNumber).toBe(7n);
  expect(snap(s.book)).toEqual(snap(fresh(c)));
});

it("H: a range of logs answered from an older fork than the head is caught, undone and asked again", async () => {
  const c = new FakeChain();
  c.mine([listed]);
  c.mine([pos(1, 1n)]);
  const s = setup(c);
  await s.w.backfill();
  await s.w.poll();
  c.mine([pos(2, 7n)]); // block 3 fork a
  c.mine(); // two new blocks: a range query, which (unlike one by block hash) can answer from another fork
  const old = c.blocks.slice();
  c.reorg(3n, [[pos(3, 9n)], []]); // blocks 3 and 4 of fork b are canonical
  const realLogs = c.client.getLogs;
  c.client.getLogs = async (a: { fromBlock?: bigint; toBlock?: bigint; blockHash?: string }) =>
    a.blockHash !== undefined
      ? realLogs(a)
      : old.filter((b) => b.number >= (a.fromBlock ?? 0n) && b.number <= (a.toBlock ?? 0n)).flatMap((b) => b.events);
  await expect(s.w.poll()).rejects.toThrow(/no longer on the chain|logs_of_another_block/); // checked, undone, to be asked again
  expect(s.w.processedBlock).toBe(2n);
  c.client.getLogs = realLogs;
  c.mine();
  await s.w.poll();
  c.mine();
  await s.w.poll();
  expect(snap(s.book)).toEqual(snap(fresh(c)));
});

it("I: heads that extend the last one take one round trip each; a reorganisation of them is rolled back", async () => {
  const c = new FakeChain();
  c.mine([listed]);
  c.mine([pos(1, 1n)]);
  const s = setup(c);
  await s.w.backfill();
  await s.w.poll();
  const ranged = c.logCalls - c.hashLogCalls;
  for (let i = 0; i < 4; i++) {
    c.mine([pos(2, BigInt(i + 1)), fund(BigInt(i + 10))]);
    await s.w.poll();
  }
  expect(c.hashLogCalls).toBe(4); // one getLogs by hash per head, no range query
  expect(c.logCalls - c.hashLogCalls).toBe(ranged);
  expect(snap(s.book)).toEqual(snap(fresh(c)));
  c.reorg(5n, [[pos(2, 9n)], [pos(3, 1n)]]); // blocks 5 and 6 replaced: same height as before, then one more
  await s.w.poll();
  expect(s.actions).toContain("rollback");
  c.mine([pos(3, 2n)]);
  await s.w.poll();
  expect(snap(s.book)).toEqual(snap(fresh(c)));
  expect(s.risk.index.size).toBe(s.book.positions.size);
});

it("J: a snapshot built from an incomplete answer (no markets) is set aside, never an exit: the canonical book", async () => {
  const c = new FakeChain();
  c.mine([listed]); // block 1
  c.mine([pos(1, 1n)]); // block 2
  c.mine([fund(3n)]); // block 3: funding of market 0, which the bad snapshot never saw listed
  const s = setup(c);
  const at = c.blocks[2] as Blk;
  s.w.resume({ blockNumber: at.number, blockHash: at.hash, state: { markets: [], positions: [], cursor: undefined } });
  // the events after the snapshot do not add up to it: retried (an I/O-class error), not a BookError that stops
  await expect(s.w.backfill()).rejects.toThrow(/events_do_not_add_up/);
  expect(s.actions).toContain("snapshot_set_aside");
  await s.w.backfill(); // from the deployment block this time
  expect(snap(s.book)).toEqual(snap(fresh(c)));
  expect(s.book.markets.size).toBe(1);
});

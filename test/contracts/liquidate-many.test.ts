/**
 * PerpEngine.liquidateMany on Anvil, against the local risk model and against single liquidate() calls.
 *
 * The model is the keeper's own pipeline: a Book rebuilt from the engine's logs, and confirm() (src/protocol/perpEngine/scan.ts)
 * at the oracle's mark price and the funding index the batch's block will see. The reference for the on-chain
 * outcome is the same list sent as single liquidate() calls, mined in one block at the same timestamp from the
 * same evm_snapshot: same positions deleted, same totalBadDebt, same keeper collateral, same funding state, same
 * PositionLiquidated events, and each skip where the single call reverts (NoPosition / NotLiquidatable).
 *
 * Every test runs from a snapshot of the freshly deployed exchange and reverts to it afterwards. After each
 * revert the DevExchange is rebuilt: its nonce manager would otherwise remember nonces the revert undid.
 */
import {
  type Address,
  createTestClient,
  createWalletClient,
  decodeErrorResult,
  decodeFunctionResult,
  encodeFunctionData,
  getAddress,
  type Hex,
  http,
  parseEventLogs,
  type TransactionReceipt,
} from "viem";
import { mnemonicToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { testUSDCAbi } from "../../abi/TestUSDC.ts";
import { ANVIL_MNEMONIC, DevExchange } from "../../src/devnet/exchange.ts";
import { BTC, ETH, openPositions, type PositionSpec } from "../../src/devnet/positions.ts";
import { Book, positionKey } from "../../src/protocol/perpEngine/book.ts";
import {
  ceilDiv,
  ceilMul,
  fundingIndexAt,
  health,
  initialRequirement,
  liquidationPriceUnits,
  type PositionState,
} from "../../src/protocol/perpEngine/math.ts";
import { decodePerpEngineLogs } from "../../src/protocol/perpEngine/protocol.ts";
import { confirm } from "../../src/protocol/perpEngine/scan.ts";
import { fetchLogRanges } from "../../src/watcher/logs.ts";
import { type DevnetFixture, startDevnet } from "../helpers/devnet.ts";

const ACCOUNTS = 56;
/** Gas limit of one single liquidate() when many share a block (100 of them stay inside Anvil's 30M block). */
const SINGLE_GAS = 200_000n;
const BATCH_GAS = 15_000_000n;
const REASON_NO_POSITION = 1;
const REASON_NOT_LIQUIDATABLE = 2;

let net: DevnetFixture;
let ex: DevExchange;
let initialAnswers: readonly bigint[];
let testSnapshot: Hex;
let collateralScale: bigint;

const keeperAccount = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 1 });
const keeper = keeperAccount.address;
const testClient = () => createTestClient({ chain: anvil, mode: "anvil", transport: http(net.anvil.rpcUrl) });
/** The keeper signs with explicit nonces (no nonce manager), so that it survives evm_revert. */
const keeperWallet = () =>
  createWalletClient({ chain: anvil, account: keeperAccount, transport: http(net.anvil.rpcUrl) });

beforeAll(async () => {
  net = await startDevnet({ accounts: ACCOUNTS });
  ex = net.ex;
  initialAnswers = [await ex.price(BTC), await ex.price(ETH)];
  collateralScale = await ex.publicClient.readContract({
    address: ex.d.engine,
    abi: perpEngineAbi,
    functionName: "collateralScale",
  });
}, 60_000);

afterAll(async () => {
  await net?.stop();
});

beforeEach(async () => {
  testSnapshot = await testClient().snapshot();
  await freshPrices();
});

afterEach(async () => {
  await testClient().setAutomine(true);
  await revertTo(testSnapshot);
});

// ------------------------------------------------------------------ chain helpers

async function revertTo(id: Hex): Promise<void> {
  expect(await rpc<boolean>("evm_revert", [id])).toBe(true);
  ex = new DevExchange(net.anvil.rpcUrl, net.ex.d);
}

/** Both oracles answered again now (a revert can leave the clock past maxOracleAge of the last answer). */
async function freshPrices(answers: readonly bigint[] = initialAnswers): Promise<void> {
  for (const [id, answer] of answers.entries()) await ex.setPrice(id, answer);
}

const moveTime = (seconds: number) => testClient().increaseTime({ seconds });
const addr = (i: number): Address => ex.trader(i).account.address;

async function setFundingRate(marketId: number, rate: bigint): Promise<void> {
  await ex.send(ex.owner, {
    address: ex.d.engine,
    abi: perpEngineAbi,
    functionName: "setFundingRate",
    args: [BigInt(marketId), rate],
  });
}

async function rpc<T>(method: string, params: readonly unknown[]): Promise<T> {
  const res = await fetch(net.anvil.rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = (await res.json()) as { result?: T; error?: { message: string; data?: Hex } };
  if (body.error) throw Object.assign(new Error(`${method}: ${body.error.message}`), { data: body.error.data });
  return body.result as T;
}

interface Entry {
  readonly trader: Address;
  readonly marketId: number;
}

const liquidateData = (e: Entry) =>
  encodeFunctionData({ abi: perpEngineAbi, functionName: "liquidate", args: [e.trader, BigInt(e.marketId)] });
const liquidateManyData = (traders: readonly Address[], marketIds: readonly bigint[]) =>
  encodeFunctionData({ abi: perpEngineAbi, functionName: "liquidateMany", args: [traders, marketIds] });
const batchData = (entries: readonly Entry[]) =>
  liquidateManyData(
    entries.map((e) => e.trader),
    entries.map((e) => BigInt(e.marketId)),
  );

interface Revert {
  readonly errorName: string;
  readonly args: readonly unknown[];
}
type CallOutcome = { readonly ok: true; readonly data: Hex } | { readonly ok: false; readonly revert: Revert };

function decodeRevert(data: Hex | undefined): Revert {
  if (!data || data === "0x") return { errorName: "<no data>", args: [] };
  const decoded = decodeErrorResult({ abi: perpEngineAbi, data });
  return { errorName: decoded.errorName, args: decoded.args ?? [] };
}

/** eth_call from the keeper on the latest state; `time` overrides the block timestamp (the block it will land in). */
async function simulate(data: Hex, time?: bigint): Promise<CallOutcome> {
  const params: unknown[] = [{ from: keeper, to: ex.d.engine, data, gas: `0x${BATCH_GAS.toString(16)}` }, "latest"];
  if (time !== undefined) params.push({}, { time: `0x${time.toString(16)}` });
  try {
    return { ok: true, data: await rpc<Hex>("eth_call", params) };
  } catch (error) {
    return { ok: false, revert: decodeRevert((error as { data?: Hex }).data) };
  }
}

async function simulateBatch(entries: readonly Entry[], time?: bigint): Promise<readonly bigint[]> {
  const out = await simulate(batchData(entries), time);
  if (!out.ok) throw new Error(`liquidateMany simulation reverted: ${out.revert.errorName}`);
  return decodeFunctionResult({ abi: perpEngineAbi, functionName: "liquidateMany", data: out.data });
}

/**
 * Sends the keeper's calls to the engine in one block mined at `timestamp`, in this order, and returns their
 * receipts (reverted ones included).
 */
async function mineAt(timestamp: bigint, datas: readonly Hex[], gas: bigint): Promise<TransactionReceipt[]> {
  const t = testClient();
  const wallet = keeperWallet();
  await t.setAutomine(false);
  const hashes: Hex[] = [];
  try {
    let nonce = await ex.publicClient.getTransactionCount({ address: keeper, blockTag: "pending" });
    for (const data of datas) hashes.push(await wallet.sendTransaction({ to: ex.d.engine, data, gas, nonce: nonce++ }));
    await t.setNextBlockTimestamp({ timestamp });
    await t.mine({ blocks: 1 });
  } finally {
    await t.setAutomine(true);
  }
  const receipts = await Promise.all(hashes.map((hash) => ex.publicClient.getTransactionReceipt({ hash })));
  const block = await ex.publicClient.getBlock({ blockNumber: receipts[0]?.blockNumber ?? 0n });
  expect(block.timestamp).toBe(timestamp);
  expect(new Set(receipts.map((r) => r.blockNumber)).size).toBe(1);
  return receipts;
}

/** The revert of a mined transaction, from Anvil's call tracer. */
async function minedRevert(hash: Hex): Promise<Revert> {
  const trace = await rpc<{ output?: Hex }>("debug_traceTransaction", [hash, { tracer: "callTracer" }]);
  return decodeRevert(trace.output);
}

/** What a mined transaction returned, from Anvil's call tracer. */
async function minedOutput(hash: Hex): Promise<Hex> {
  const trace = await rpc<{ output?: Hex }>("debug_traceTransaction", [hash, { tracer: "callTracer" }]);
  return trace.output ?? "0x";
}

async function keeperBalance(): Promise<bigint> {
  return ex.publicClient.readContract({
    address: ex.d.collateral,
    abi: testUSDCAbi,
    functionName: "balanceOf",
    args: [keeper],
  });
}

interface ChainState {
  readonly positions: Record<string, PositionState>;
  readonly totalBadDebt: bigint;
  readonly keeperBalance: bigint;
  readonly funding: readonly { cumulativeFundingIndex: bigint; lastFundingTime: bigint }[];
}

async function chainState(entries: readonly Entry[]): Promise<ChainState> {
  const positions: Record<string, PositionState> = {};
  for (const e of entries) positions[positionKey(e.marketId, e.trader)] = await ex.position(e.trader, e.marketId);
  const funding = [];
  for (const id of [BTC, ETH]) {
    const m = await ex.publicClient.readContract({
      address: ex.d.engine,
      abi: perpEngineAbi,
      functionName: "market",
      args: [BigInt(id)],
    });
    funding.push({ cumulativeFundingIndex: m.cumulativeFundingIndex, lastFundingTime: BigInt(m.lastFundingTime) });
  }
  const totalBadDebt = await ex.publicClient.readContract({
    address: ex.d.engine,
    abi: perpEngineAbi,
    functionName: "totalBadDebt",
  });
  return { positions, totalBadDebt, keeperBalance: await keeperBalance(), funding };
}

/** The keeper's view: every market and position rebuilt from the engine's logs alone. */
async function bookFromLogs(): Promise<Book> {
  const book = new Book();
  await fetchLogRanges(ex.publicClient, {
    addresses: [ex.d.engine],
    fromBlock: ex.d.deployBlock,
    toBlock: await ex.publicClient.getBlockNumber({ cacheTime: 0 }),
    maxRange: 2000n,
    onRange: (logs) => {
      for (const e of decodePerpEngineLogs(logs)) book.apply(e);
    },
  });
  return book;
}

async function nextTimestamp(afterSeconds = 10n): Promise<bigint> {
  return (await ex.publicClient.getBlock({ blockTag: "latest" })).timestamp + afterSeconds;
}

// ------------------------------------------------------------------ the model's prediction

type Predicted =
  | {
      readonly kind: "liquidated";
      readonly entry: Entry;
      readonly size: bigint;
      readonly openNotional: bigint;
      readonly price: bigint;
      readonly marginBalance: bigint;
      readonly keeperReward: bigint;
      readonly badDebt: bigint;
    }
  | {
      readonly kind: "skipped";
      readonly entry: Entry;
      readonly reason: number;
      /** For reason 2: the health liquidate() reverts with. */
      readonly marginBalance?: bigint;
      readonly maintenanceRequirement?: bigint;
    };

/**
 * What the keeper's model says a batch does, entry by entry, in a block at `timestamp`: the book's position (none:
 * reason 1, also once an earlier entry liquidated it), confirm() at the oracle's mark price and the funding index
 * of that block (not liquidatable: reason 2), else the reward and bad debt of liquidate().
 */
async function predict(book: Book, entries: readonly Entry[], timestamp: bigint): Promise<Predicted[]> {
  const prices = new Map<number, bigint>();
  for (const [id, market] of book.markets) prices.set(id, (await ex.price(id)) * market.priceScale);
  const gone = new Set<string>();
  return entries.map((entry): Predicted => {
    const key = positionKey(entry.marketId, entry.trader);
    const position = book.positions.get(key);
    if (!position || gone.has(key)) return { kind: "skipped", entry, reason: REASON_NO_POSITION };
    const market = book.markets.get(entry.marketId);
    const price = prices.get(entry.marketId);
    if (!market || price === undefined) throw new Error(`market ${entry.marketId} not in the book`);
    // the first liquidation of the block settles the index at this value; later ones in the block see it unchanged
    const index = fundingIndexAt(market.funding, price, timestamp);
    const candidate = confirm(position, market, price, index);
    if (!candidate) {
      const h = health(position, market.maintenanceMarginRatio, price, index);
      return {
        kind: "skipped",
        entry,
        reason: REASON_NOT_LIQUIDATABLE,
        marginBalance: h.marginBalance,
        maintenanceRequirement: h.maintenanceRequirement,
      };
    }
    gone.add(key);
    const remaining = candidate.health.marginBalance - candidate.keeperReward;
    return {
      kind: "liquidated",
      entry,
      size: position.size,
      openNotional: position.openNotional,
      price,
      marginBalance: candidate.health.marginBalance,
      keeperReward: candidate.keeperReward,
      badDebt: remaining < 0n ? -remaining : 0n,
    };
  });
}

const rewardOf = (p: Predicted) => (p.kind === "liquidated" ? p.keeperReward : 0n);
/** What the keeper is paid: the per-position floors, summed. */
const payoutOf = (predicted: readonly Predicted[]) =>
  predicted.reduce((sum, p) => sum + rewardOf(p) / collateralScale, 0n);

function liquidatedFields(logs: TransactionReceipt["logs"]) {
  return parseEventLogs({ abi: perpEngineAbi, logs, eventName: "PositionLiquidated" }).map((l) => l.args);
}

function expectedLiquidatedFields(predicted: readonly Predicted[]) {
  return predicted.flatMap((p) =>
    p.kind === "liquidated"
      ? [
          {
            trader: p.entry.trader,
            marketId: BigInt(p.entry.marketId),
            keeper,
            size: p.size,
            openNotional: p.openNotional,
            price: p.price,
            marginBalance: p.marginBalance,
            keeperReward: p.keeperReward,
            badDebt: p.badDebt,
          },
        ]
      : [],
  );
}

function collateralTransfers(receipt: TransactionReceipt) {
  const logs = receipt.logs.filter((l) => l.address.toLowerCase() === ex.d.collateral.toLowerCase());
  return parseEventLogs({ abi: testUSDCAbi, logs, eventName: "Transfer" }).map((l) => l.args);
}

interface Comparison {
  readonly predicted: Predicted[];
  readonly batchReceipt: TransactionReceipt;
  readonly singleReceipts: TransactionReceipt[];
}

/**
 * The heart of the differential: from one snapshot, liquidateMany(entries) (simulated for its rewards, then sent)
 * and, after a revert, the same entries as single liquidate() calls, both in a block at the same timestamp. Both
 * must do what the model predicts, and leave the same chain state. Leaves the chain as it found it.
 */
async function compareBatchWithSingles(entries: readonly Entry[]): Promise<Comparison> {
  const book = await bookFromLogs();
  const timestamp = await nextTimestamp();
  const predicted = await predict(book, entries, timestamp);
  const before = await chainState(entries);

  // 1. the batch: simulate for the rewards, then send
  const batchSnapshot = await testClient().snapshot();
  const rewards = await simulateBatch(entries, timestamp);
  expect(rewards, "simulated rewards vs the model").toEqual(predicted.map(rewardOf));
  const [batchReceipt] = await mineAt(timestamp, [batchData(entries)], BATCH_GAS);
  if (!batchReceipt) throw new Error("no batch receipt");
  expect(batchReceipt.status).toBe("success");
  // what the mined call returned is what the simulation said
  const mined = decodeFunctionResult({
    abi: perpEngineAbi,
    functionName: "liquidateMany",
    data: await minedOutput(batchReceipt.transactionHash),
  });
  expect(mined).toEqual(rewards);

  const engineLogs = parseEventLogs({
    abi: perpEngineAbi,
    logs: batchReceipt.logs.filter((l) => l.address.toLowerCase() === ex.d.engine.toLowerCase()),
  });
  // the outcomes in entry order: a PositionLiquidated or a LiquidationSkipped per entry
  const outcomes = engineLogs.flatMap((l) => {
    if (l.eventName === "PositionLiquidated")
      return [{ kind: "liquidated", trader: l.args.trader, marketId: l.args.marketId, keeper: l.args.keeper }];
    if (l.eventName === "LiquidationSkipped") {
      return [
        {
          kind: `skipped:${l.args.reason}`,
          trader: l.args.trader,
          marketId: l.args.marketId,
          keeper: l.args.keeper,
        },
      ];
    }
    return [];
  });
  expect(outcomes).toEqual(
    predicted.map((p) => ({
      kind: p.kind === "liquidated" ? "liquidated" : `skipped:${p.reason}`,
      trader: p.entry.trader,
      marketId: BigInt(p.entry.marketId),
      keeper,
    })),
  );
  const batchLiquidated = liquidatedFields(batchReceipt.logs);
  expect(batchLiquidated).toEqual(expectedLiquidatedFields(predicted));
  const payout = payoutOf(predicted);
  expect(collateralTransfers(batchReceipt)).toEqual(
    payout === 0n ? [] : [{ from: getAddress(ex.d.engine), to: keeper, value: payout }],
  );
  const afterBatch = await chainState(entries);
  await revertTo(batchSnapshot);

  // 2. the same entries as single liquidate() calls, in one block at the same timestamp
  const singlesSnapshot = await testClient().snapshot();
  expect(await chainState(entries)).toEqual(before);
  const singleReceipts = await mineAt(timestamp, entries.map(liquidateData), SINGLE_GAS);
  const singleLiquidated = [];
  for (const [i, p] of predicted.entries()) {
    const receipt = singleReceipts[i];
    if (!receipt) throw new Error(`no receipt for entry ${i}`);
    const where = `entry ${i} (${p.entry.trader} market ${p.entry.marketId})`;
    if (p.kind === "liquidated") {
      expect(receipt.status, where).toBe("success");
      singleLiquidated.push(...liquidatedFields(receipt.logs));
      expect(collateralTransfers(receipt), where).toEqual([
        { from: getAddress(ex.d.engine), to: keeper, value: p.keeperReward / collateralScale },
      ]);
    } else {
      expect(receipt.status, where).toBe("reverted");
      const revert = await minedRevert(receipt.transactionHash);
      if (p.reason === REASON_NO_POSITION) expect(revert, where).toEqual({ errorName: "NoPosition", args: [] });
      else {
        expect(revert, where).toEqual({
          errorName: "NotLiquidatable",
          args: [p.marginBalance, p.maintenanceRequirement],
        });
      }
    }
  }
  expect(singleLiquidated).toEqual(batchLiquidated);
  const afterSingles = await chainState(entries);
  await revertTo(singlesSnapshot);

  // 3. the same end state, and the one the model predicts
  expect(afterBatch).toEqual(afterSingles);
  expect(afterBatch.keeperBalance - before.keeperBalance).toBe(payout);
  const badDebt = predicted.reduce((sum, p) => sum + (p.kind === "liquidated" ? p.badDebt : 0n), 0n);
  expect(afterBatch.totalBadDebt - before.totalBadDebt).toBe(badDebt);
  const liquidatedKeys = new Set(
    predicted.flatMap((p) => (p.kind === "liquidated" ? [positionKey(p.entry.marketId, p.entry.trader)] : [])),
  );
  for (const [key, position] of Object.entries(afterBatch.positions)) {
    if (liquidatedKeys.has(key)) expect(position.size, key).toBe(0n);
    else expect(position, key).toEqual(before.positions[key]);
  }
  return { predicted, batchReceipt, singleReceipts };
}

/** A deterministic shuffle (mulberry32), so that a failure replays. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** ETH longs of `sizes` (wei of base) for traders 2, 3, ..., each with the smallest whole deposit that opens it. */
async function openTinyLongs(sizes: readonly bigint[]): Promise<Entry[]> {
  const market = await ex.publicClient.readContract({
    address: ex.d.engine,
    abi: perpEngineAbi,
    functionName: "market",
    args: [BigInt(ETH)],
  });
  const price = (await ex.price(ETH)) * market.priceScale;
  const entries: Entry[] = [];
  for (const [i, size] of sizes.entries()) {
    const trader = ex.trader(2 + i);
    const fee = ceilMul(ceilMul(size, price), BigInt(market.tradingFeeRatio));
    const required = initialRequirement(size, price, BigInt(market.initialMarginRatio)) + fee + 1n;
    const deposit = ceilDiv(required, collateralScale) + 1n;
    await ex.fund(trader, deposit);
    await ex.trade(trader, ETH, size, deposit);
    entries.push({ trader: trader.account.address, marketId: ETH });
  }
  return entries;
}

const count = (predicted: readonly Predicted[], where: (p: Predicted) => boolean) => predicted.filter(where).length;

// ------------------------------------------------------------------ the tests

describe("liquidateMany against the risk model and single liquidate() calls", () => {
  it("after a crash, a mixed batch (liquidatable, healthy, missing, duplicates) matches the model and single calls, position by position", async () => {
    // funding large enough to move verdicts: 1e-6 of the price per second, longs pay on BTC, shorts on ETH
    await setFundingRate(BTC, 10n ** 12n);
    await setFundingRate(ETH, -(10n ** 12n));
    const leverages = [2, 3, 5, 8, 10, 12, 15, 18, 20];
    const specs: PositionSpec[] = [];
    for (let t = 2; t < 18; t++) {
      const leverage = leverages[t % leverages.length] ?? 10;
      const long = t % 2 === 0;
      specs.push({ trader: t, marketId: BTC, side: long ? "long" : "short", margin: String(300 + 97 * t), leverage });
      specs.push({
        trader: t,
        marketId: ETH,
        side: long ? "short" : "long",
        margin: String(200 + 53 * t),
        leverage: leverages[(t + 4) % leverages.length] ?? 10,
      });
    }
    specs.push({ trader: 18, marketId: BTC, side: "long", margin: "800", leverage: 20 }); // 18 has no ETH position
    specs.push({ trader: 19, marketId: ETH, side: "long", margin: "500", leverage: 10 }); // closed below
    specs.push({ trader: 21, marketId: BTC, side: "long", margin: "900", leverage: 20 }); // a competitor's, below
    await openPositions(ex, specs);
    const closing = await ex.position(addr(19), ETH);
    await ex.trade(ex.trader(19), ETH, -closing.size, 0n);

    // time passes, then the crash: BTC -8%, ETH squeezed +7%
    await moveTime(1800);
    await freshPrices([
      ((initialAnswers[BTC] as bigint) * 92n) / 100n,
      ((initialAnswers[ETH] as bigint) * 107n) / 100n,
    ]);
    // a competitor liquidates one position first
    await ex.send(ex.trader(22), {
      address: ex.d.engine,
      abi: perpEngineAbi,
      functionName: "liquidate",
      args: [addr(21), BigInt(BTC)],
    });

    const open: Entry[] = specs
      .filter((s) => s.trader !== 19 && s.trader !== 21)
      .map((s) => ({
        trader: addr(s.trader),
        marketId: s.marketId,
      }));
    const book = await bookFromLogs();
    const verdicts = await predict(book, open, await nextTimestamp());
    const firstLiquidatable = verdicts.find((p) => p.kind === "liquidated")?.entry;
    const firstHealthy = verdicts.find((p) => p.kind === "skipped")?.entry;
    if (!firstLiquidatable || !firstHealthy) throw new Error("the crash must leave both verdicts");
    const missing: Entry[] = [
      { trader: addr(18), marketId: ETH }, // never opened in that market
      { trader: addr(19), marketId: ETH }, // closed
      { trader: addr(20), marketId: BTC }, // never traded
      { trader: addr(21), marketId: BTC }, // liquidated by the competitor
    ];
    const entries = shuffled([...open, ...missing, firstLiquidatable, firstHealthy], 0x11d);
    // the duplicate of a liquidatable entry also right after itself
    entries.push(firstLiquidatable, firstLiquidatable);

    const { predicted } = await compareBatchWithSingles(entries);

    // the scenario must exercise every branch
    const liquidated = predicted.filter((p) => p.kind === "liquidated");
    expect(liquidated.length).toBeGreaterThanOrEqual(8);
    expect(count(liquidated, (p) => p.kind === "liquidated" && p.badDebt > 0n)).toBeGreaterThanOrEqual(2);
    expect(count(liquidated, (p) => p.kind === "liquidated" && p.badDebt === 0n)).toBeGreaterThanOrEqual(2);
    for (const id of [BTC, ETH]) expect(count(liquidated, (p) => p.entry.marketId === id)).toBeGreaterThan(0);
    expect(count(predicted, (p) => p.kind === "skipped" && p.reason === REASON_NOT_LIQUIDATABLE)).toBeGreaterThan(8);
    // the four missing ones, and the repeats of the liquidatable entry (the first of its four is liquidated)
    expect(count(predicted, (p) => p.kind === "skipped" && p.reason === REASON_NO_POSITION)).toBe(7);
    const dupKey = positionKey(firstLiquidatable.marketId, firstLiquidatable.trader);
    expect(
      predicted.filter((p) => positionKey(p.entry.marketId, p.entry.trader) === dupKey).map((p) => p.kind),
    ).toEqual(["liquidated", "skipped", "skipped", "skipped"]);
    // and the keeper was paid: the sum of the single calls' transfers (compared above)
    expect(payoutOf(predicted)).toBeGreaterThan(0n);
    console.info(
      `liquidateMany differential: ${entries.length} entries, ${liquidated.length} liquidated ` +
        `(${count(liquidated, (p) => p.kind === "liquidated" && p.badDebt > 0n)} with bad debt), ` +
        `${count(predicted, (p) => p.kind === "skipped" && p.reason === REASON_NOT_LIQUIDATABLE)} not liquidatable, ` +
        `${count(predicted, (p) => p.kind === "skipped" && p.reason === REASON_NO_POSITION)} without a position`,
    );
  });

  it("at the liquidation boundary (L, one oracle unit beyond, B = MR) a batch liquidates and skips as liquidate() does", async () => {
    // funding frozen: the boundary does not move with the block's timestamp
    await setFundingRate(BTC, 0n);
    await setFundingRate(ETH, 0n);
    await openPositions(ex, [
      { trader: 2, marketId: BTC, side: "long", margin: "1000", leverage: 20 },
      { trader: 3, marketId: ETH, side: "short", margin: "500", leverage: 20 },
    ]);
    // 4 ETH long at 2,500 with a margin of exactly 688 (deposit 693, fee 5): at 2,400 its margin balance
    // 688 + 9,600 - 10,000 = 288 equals its maintenance requirement 3% x 9,600 = 288, so its L is one unit below
    await ex.fund(ex.trader(4), 693_000_000n);
    await ex.trade(ex.trader(4), ETH, 4n * 10n ** 18n, 693_000_000n);
    const long: Entry = { trader: addr(2), marketId: BTC };
    const short: Entry = { trader: addr(3), marketId: ETH };
    const equal: Entry = { trader: addr(4), marketId: ETH };
    const book = await bookFromLogs();
    const boundary = async (e: Entry) => {
      const l = await ex.publicClient.readContract({
        address: ex.d.engine,
        abi: perpEngineAbi,
        functionName: "liquidationPrice",
        args: [e.trader, BigInt(e.marketId)],
      });
      const market = book.markets.get(e.marketId);
      const position = book.positions.get(positionKey(e.marketId, e.trader));
      if (!market || !position) throw new Error("not in the book");
      expect(liquidationPriceUnits(position, market, market.funding.cumulativeFundingIndex)).toBe(l);
      return l;
    };
    const lLong = await boundary(long);
    const lShort = await boundary(short);
    const lEqual = await boundary(equal);
    expect(lLong).toBeGreaterThan(1n);
    expect(lShort).toBeGreaterThan(1n);
    expect(lEqual).toBe(240_000_000_000n - 1n);

    // a long is liquidatable at L and not at L+1; a short at L and not at L-1; B == MR is not liquidatable
    const probes = [
      { answers: [lLong, lShort - 1n], kinds: ["liquidated", "skipped:2", "skipped:1", "skipped:2", "skipped:2"] },
      { answers: [lLong + 1n, lShort], kinds: ["skipped:2", "liquidated", "skipped:2", "skipped:1", "skipped:2"] },
      { answers: [lLong + 1n, lEqual + 1n], kinds: ["skipped:2", "skipped:2", "skipped:2", "skipped:2", "skipped:2"] },
      { answers: [lLong + 1n, lEqual], kinds: ["skipped:2", "skipped:2", "skipped:2", "skipped:2", "liquidated"] },
    ];
    for (const probe of probes) {
      await freshPrices(probe.answers);
      const { predicted } = await compareBatchWithSingles([long, short, long, short, equal]);
      expect(
        predicted.map((p) => (p.kind === "liquidated" ? p.kind : `skipped:${p.reason}`)),
        `prices ${probe.answers}`,
      ).toEqual(probe.kinds);
      const last = predicted[4];
      if (probe.answers[1] === lEqual + 1n) {
        // the single call reverted NotLiquidatable(288, 288), and the batch skipped it
        expect(last).toMatchObject({ marginBalance: 288n * 10n ** 18n, maintenanceRequirement: 288n * 10n ** 18n });
      }
    }
  });

  it("pays the sum of per-position floors, not the floor of the sum, to the collateral unit", async () => {
    await setFundingRate(ETH, 0n);
    // tiny ETH longs whose rewards after an 8% fall are fractions of a collateral unit (1e-6 USDC = 1e12 WAD)
    const sizes = [140_000_000_000n, 150_000_000_000n, 70_000_000_000n, 75_000_000_000n];
    const entries = await openTinyLongs(sizes);
    await freshPrices([initialAnswers[BTC] as bigint, ((initialAnswers[ETH] as bigint) * 92n) / 100n]);

    const { predicted, batchReceipt } = await compareBatchWithSingles(entries);
    const rewards = predicted.map(rewardOf);
    expect(predicted.every((p) => p.kind === "liquidated")).toBe(true);
    // the case that tells the two roundings apart
    const sum = rewards.reduce((a, b) => a + b, 0n);
    expect(payoutOf(predicted)).toBeLessThan(sum / collateralScale);
    expect(collateralTransfers(batchReceipt).map((t) => t.value)).toEqual([payoutOf(predicted)]);
  });

  it("transfers nothing when every liquidated reward is below one collateral unit, yet reports each reward", async () => {
    await setFundingRate(ETH, 0n);
    const entries = await openTinyLongs([70_000_000_000n, 75_000_000_000n]);
    await freshPrices([initialAnswers[BTC] as bigint, ((initialAnswers[ETH] as bigint) * 92n) / 100n]);
    const { predicted, batchReceipt } = await compareBatchWithSingles(entries);
    expect(predicted.map((p) => p.kind)).toEqual(["liquidated", "liquidated"]);
    for (const p of predicted) {
      expect(rewardOf(p)).toBeGreaterThan(0n);
      expect(rewardOf(p)).toBeLessThan(collateralScale);
    }
    expect(liquidatedFields(batchReceipt.logs)).toHaveLength(2);
    expect(collateralTransfers(batchReceipt)).toEqual([]);
  });
});

describe("liquidateMany input and failure rules", () => {
  it("reverts LengthMismatch when the arrays differ in length", async () => {
    await openPositions(ex, [{ trader: 2, marketId: BTC, side: "long", margin: "1000", leverage: 20 }]);
    await freshPrices([((initialAnswers[BTC] as bigint) * 90n) / 100n, initialAnswers[ETH] as bigint]);
    const a = addr(2);
    expect(await simulate(liquidateManyData([a, a], [BigInt(BTC)]))).toEqual({
      ok: false,
      revert: { errorName: "LengthMismatch", args: [] },
    });
    expect(await simulate(liquidateManyData([], [BigInt(BTC)]))).toMatchObject({
      revert: { errorName: "LengthMismatch" },
    });
    expect(await simulate(liquidateManyData([a], []))).toMatchObject({ revert: { errorName: "LengthMismatch" } });
    // the same position in matching arrays is liquidatable: only the length was wrong
    expect((await simulateBatch([{ trader: a, marketId: BTC }]))[0]).toBeGreaterThan(0n);
  });

  it("an empty batch succeeds: no rewards, no logs, no transfer", async () => {
    expect(await simulateBatch([])).toEqual([]);
    const before = await keeperBalance();
    const [receipt] = await mineAt(await nextTimestamp(), [batchData([])], BATCH_GAS);
    expect(receipt?.status).toBe("success");
    expect(receipt?.logs).toEqual([]);
    expect(await keeperBalance()).toBe(before);
  });

  it("skipped entries emit LiquidationSkipped with their reason, pay nothing and leave no trace in storage", async () => {
    await openPositions(ex, [{ trader: 2, marketId: BTC, side: "long", margin: "1000", leverage: 5 }]);
    await moveTime(600);
    await freshPrices(); // the funding index is due for a settlement: a skip must not do it
    const entries: Entry[] = [
      { trader: addr(2), marketId: BTC }, // healthy
      { trader: addr(3), marketId: BTC }, // never traded
      { trader: addr(2), marketId: ETH }, // no position in that market
      { trader: addr(2), marketId: BTC }, // healthy again
    ];
    const before = await chainState(entries);
    expect(await simulateBatch(entries)).toEqual([0n, 0n, 0n, 0n]);
    const [receipt] = await mineAt(await nextTimestamp(), [batchData(entries)], BATCH_GAS);
    if (!receipt) throw new Error("no receipt");
    const logs = parseEventLogs({ abi: perpEngineAbi, logs: receipt.logs });
    expect(logs.map((l) => l.eventName)).toEqual(Array(4).fill("LiquidationSkipped"));
    expect(logs.map((l) => l.args)).toEqual([
      { trader: addr(2), marketId: BigInt(BTC), keeper, reason: REASON_NOT_LIQUIDATABLE },
      { trader: addr(3), marketId: BigInt(BTC), keeper, reason: REASON_NO_POSITION },
      { trader: addr(2), marketId: BigInt(ETH), keeper, reason: REASON_NO_POSITION },
      { trader: addr(2), marketId: BigInt(BTC), keeper, reason: REASON_NOT_LIQUIDATABLE },
    ]);
    expect(receipt.logs).toHaveLength(4); // no Transfer, no FundingUpdated
    expect(await chainState(entries)).toEqual(before);
  });

  it("an unknown market or an unusable oracle price reverts the whole batch, in liquidate()'s order of checks", async () => {
    await openPositions(ex, [{ trader: 2, marketId: BTC, side: "long", margin: "1000", leverage: 20 }]);
    await freshPrices([((initialAnswers[BTC] as bigint) * 90n) / 100n, initialAnswers[ETH] as bigint]);
    const live: Entry = { trader: addr(2), marketId: BTC };
    const none: Entry = { trader: addr(3), marketId: BTC };
    const single = async (e: Entry) => {
      const out = await simulate(liquidateData(e));
      return out.ok ? "ok" : out.revert.errorName;
    };
    const batch = async (entries: Entry[]) => {
      const out = await simulate(batchData(entries));
      return out.ok
        ? decodeFunctionResult({ abi: perpEngineAbi, functionName: "liquidateMany", data: out.data })
        : out.revert.errorName;
    };
    expect(await single(live)).toBe("ok");
    expect((await batch([none, live]))[1]).toBeGreaterThan(0n);
    expect(await single({ trader: addr(2), marketId: 7 })).toBe("UnknownMarket");
    expect(await batch([live, { trader: addr(2), marketId: 7 }])).toBe("UnknownMarket");

    // a stale answer (older than maxOracleAge): liquidate() reverts StalePrice for a live position and NoPosition
    // for an empty one, before it reads the oracle; the batch reverts as a whole, or skips the empty one
    await moveTime(3601);
    await ex.setPrice(ETH, initialAnswers[ETH] as bigint); // mines a block past BTC's age
    expect(await single(live)).toBe("StalePrice");
    expect(await single(none)).toBe("NoPosition");
    expect(await batch([live])).toBe("StalePrice");
    expect(await batch([none, live])).toBe("StalePrice");
    expect(await batch([none])).toEqual([0n]);

    // a non-positive answer
    await ex.setPrice(BTC, 0n);
    expect(await single(live)).toBe("InvalidPrice");
    expect(await batch([none, live])).toBe("InvalidPrice");
  });
});

describe("liquidateMany gas", () => {
  it("per position, a batch of 1, 10 and 100 against single liquidate() calls in one block", async () => {
    // 100 positions, all liquidatable without bad debt after the move: BTC 10x longs at -9%, ETH 10x shorts at +9%
    const specs: PositionSpec[] = [];
    for (let t = 2; t < 52; t++) {
      specs.push({ trader: t, marketId: BTC, side: "long", margin: String(500 + 10 * t), leverage: 10 });
      specs.push({ trader: t, marketId: ETH, side: "short", margin: String(400 + 10 * t), leverage: 10 });
    }
    await openPositions(ex, specs);
    await freshPrices([
      ((initialAnswers[BTC] as bigint) * 91n) / 100n,
      ((initialAnswers[ETH] as bigint) * 109n) / 100n,
    ]);
    const all: Entry[] = specs.map((s) => ({ trader: addr(s.trader), marketId: s.marketId }));

    const rows = [];
    for (const n of [1, 10, 100]) {
      const { predicted, batchReceipt, singleReceipts } = await compareBatchWithSingles(all.slice(0, n));
      expect(predicted.every((p) => p.kind === "liquidated" && p.badDebt === 0n)).toBe(true);
      const singles = singleReceipts.map((r) => r.gasUsed);
      const singleTotal = singles.reduce((a, b) => a + b, 0n);
      rows.push({
        n,
        singleFirst: singles[0] ?? 0n,
        singleMean: singleTotal / BigInt(n),
        batchTotal: batchReceipt.gasUsed,
        batchPerPosition: batchReceipt.gasUsed / BigInt(n),
        savedPercent: Number(((singleTotal - batchReceipt.gasUsed) * 10_000n) / singleTotal) / 100,
      });
    }
    console.info(
      "liquidateMany gas (receipt gasUsed, Anvil, one block per run at the same timestamp, no bad debt):\n" +
        rows
          .map(
            (r) =>
              `  n=${r.n}: single liquidate first ${r.singleFirst} mean ${r.singleMean} | liquidateMany total ${r.batchTotal} ` +
              `per position ${r.batchPerPosition} | saved ${r.savedPercent}%`,
          )
          .join("\n"),
    );
    const [one, ten, hundred] = rows;
    if (!one || !ten || !hundred) throw new Error("missing rows");
    // amortising the 21,000 base cost, the transfer and the cold reads: cheaper per position as the batch grows
    expect(ten.batchPerPosition).toBeLessThan(ten.singleMean);
    expect(hundred.batchPerPosition).toBeLessThan(ten.batchPerPosition);
    expect(ten.batchPerPosition).toBeLessThan(one.batchPerPosition);
  }, 180_000);
});

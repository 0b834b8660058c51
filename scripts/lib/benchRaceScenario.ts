/**
 * The race benchmark's chain (scripts/bench-race.ts): Anvil with 2-second blocks and a pool ordered by fees, the
 * PerpEngine devnet (three markets on Chainlink mocks), a population of traders and the oracle moves, every one sent
 * to the pool as a pending transaction and mined by the interval miner in the next block.
 *
 * Population: `positions` positions (default three a trader) over `traders` traders, at most one a market each.
 * Position s is, by s % 5: 0 and 1, a long at 12x-18x that the first crash (every market -7%) puts below maintenance;
 * 2, a long at 7x-8x that only the second crash (another -7%, -13.5% in all) does; 3, a healthy long at 2x-5x; 4, a
 * healthy short. Margins 500 to 1400 collateral. Setup runs under automine and then in the pool with evm_mine, fast;
 * interval mining at 2 s is restored (evm_setIntervalMining 2) before any racer starts.
 */
import { type Address, encodeFunctionData, type Hex, parseUnits, toHex } from "viem";
import { mockV3AggregatorAbi } from "../../abi/MockV3Aggregator.ts";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { testUSDCAbi } from "../../abi/TestUSDC.ts";
import { COLLATERAL_DECIMALS, DevExchange, type MarketSpec } from "../../src/devnet/exchange.ts";
import { positionKey } from "../../src/protocol/perpEngine/book.ts";
import { ceilMul, WAD } from "../../src/protocol/perpEngine/math.ts";
import { checkAnswers, rpc, rpcBatch } from "./rpc.ts";
import { now, untilEvery } from "./tools.ts";

/** Anvil accounts: 0 owns the exchange, 1 and 2 are the racers (ANVIL_KEYS[1], [2]), traders from 3 on. */
export const FIRST_TRADER = 3;
export const BLOCK_SECONDS = 2;
/** Every market's drop at each crash, percent of its price then. */
export const CRASH_PERCENT = 7n;
/** The calm move before each crash (per mille, up): an oracle update that liquidates nothing. */
const CALM_PER_MILLE = 3n;
/** The tip of the bench's own oracle updates: what the keepers' fee history sees in the crash block. */
export const ORACLE_TIP = parseUnits("1", 9);
const ORACLE_MAX_FEE = parseUnits("100", 9);

const until = untilEvery(20);

export const MARKETS: readonly MarketSpec[] = [
  ["BTC-USD", "60000", "0.025", "0.00000001"],
  ["ETH-USD", "2500", "0.03", "-0.000000005"],
  ["SOL-USD", "150", "0.025", "0.00000002"],
].map(([name, price, mmr, funding]) => ({
  name: name as string,
  price: price as string,
  initialMarginRatio: "0.05",
  maintenanceMarginRatio: mmr as string,
  liquidationFeeRatio: "0.005",
  tradingFeeRatio: "0.0005",
  maxOracleAge: 86_400,
  fundingRatePerSecond: funding as string,
}));

export type SlotKind = "crash1" | "crash2" | "healthy";

export interface Slot {
  readonly trader: Address;
  readonly marketId: number;
  readonly long: boolean;
  readonly leverage: number;
  readonly kind: SlotKind;
  readonly key: string;
}

export interface Scenario {
  readonly url: string;
  readonly ex: DevExchange;
  readonly engine: Address;
  readonly owner: Address;
  readonly slots: readonly Slot[];
  readonly setupSeconds: number;
}

/**
 * `positions` positions over `traders` traders, dealt in turn (trader t's j-th position in market (t + j) % 3, so at
 * most one a market): at most three a trader.
 */
export function population(accounts: readonly Address[], traders: number, positions: number): Slot[] {
  if (positions > traders * MARKETS.length) {
    throw new Error(`${positions} positions need at least ${Math.ceil(positions / MARKETS.length)} traders`);
  }
  return Array.from({ length: positions }, (_, s) => {
    const t = s % traders;
    const trader = accounts[FIRST_TRADER + t] as Address;
    const marketId = (t + Math.floor(s / traders)) % MARKETS.length;
    const kind: SlotKind = s % 5 < 2 ? "crash1" : s % 5 === 2 ? "crash2" : "healthy";
    const long = s % 5 !== 4;
    const leverage = kind === "crash1" ? 12 + (s % 7) : kind === "crash2" ? 7 + (s % 2) : 2 + (s % 4);
    return { trader, marketId, long, leverage, kind, key: positionKey(marketId, trader) };
  });
}

interface TxRequest {
  readonly from: Address;
  readonly to: Address;
  readonly data: Hex;
  readonly gas: bigint;
  readonly nonce: number;
}

/** Sends transactions from unlocked accounts in JSON-RPC batches (explicit nonces); returns their hashes. */
async function sendAll(url: string, txs: readonly TxRequest[]): Promise<Hex[]> {
  const answers = await rpcBatch(
    url,
    txs.map((t) => ({
      method: "eth_sendTransaction",
      params: [
        {
          from: t.from,
          to: t.to,
          data: t.data,
          gas: toHex(t.gas),
          nonce: toHex(t.nonce),
          maxFeePerGas: toHex(ORACLE_MAX_FEE),
          maxPriorityFeePerGas: toHex(ORACLE_TIP),
        },
      ],
    })),
  );
  return checkAnswers(answers, "sending") as Hex[];
}

/** Mines (evm_mine) until the pool is empty. */
async function mineAll(url: string): Promise<void> {
  for (let blocks = 0; ; blocks++) {
    const status = await rpc<{ pending: Hex }>(url, "txpool_status");
    if (BigInt(status.pending) === 0n) return;
    if (blocks > 1000) throw new Error("the pool never emptied during the setup");
    await rpc(url, "evm_mine");
  }
}

interface Receipt {
  readonly status: Hex;
  readonly blockNumber: Hex;
}

/** Waits until every hash has a receipt; throws when one reverted or none came within `timeoutMs`. */
export async function receiptsOf(url: string, hashes: readonly Hex[], what: string, timeoutMs = 60_000) {
  const found = new Map<Hex, Receipt>();
  await until(
    `${what} to be mined`,
    async () => {
      const missing = hashes.filter((h) => !found.has(h));
      const answers = await rpcBatch(
        url,
        missing.map((h) => ({ method: "eth_getTransactionReceipt", params: [h] })),
      );
      answers.forEach((a, i) => {
        if (a.result) found.set(missing[i] as Hex, a.result as Receipt);
      });
      return found.size === hashes.length;
    },
    timeoutMs,
    50,
  );
  const receipts = hashes.map((h) => found.get(h) as Receipt);
  const failed = receipts.filter((r) => r.status !== "0x1").length;
  if (failed > 0) throw new Error(`${what}: ${failed} of ${hashes.length} transactions reverted`);
  return receipts.map((r) => BigInt(r.blockNumber));
}

/** Deploys the exchange, funds the traders and opens every position; interval mining at 2 s afterwards. */
export async function setupScenario(url: string, traders: number, positions: number): Promise<Scenario> {
  const started = now();
  await rpc(url, "evm_setAutomine", [true]);
  const ex = await DevExchange.deploy(url, MARKETS);
  const engine = ex.d.engine;
  await rpc(url, "evm_setAutomine", [false]);
  const accounts = await rpc<Address[]>(url, "eth_accounts");
  if (accounts.length < FIRST_TRADER + traders) throw new Error(`anvil has ${accounts.length} accounts, too few`);
  const owner = accounts[0] as Address;
  const slots = population(accounts, traders, positions);

  // sizes and deposits as src/devnet/positions.ts openPosition computes them: the margin survives the trading fee
  const scale = 10n ** BigInt(18 - COLLATERAL_DECIMALS);
  const byTrader = new Map<
    Address,
    { deposit: bigint; trades: { marketId: number; size: bigint; deposit: bigint }[] }
  >();
  for (const [s, slot] of slots.entries()) {
    const spec = MARKETS[slot.marketId] as MarketSpec;
    const price = parseUnits(spec.price, 18);
    const marginWad = parseUnits(String(500 + 100 * (s % 10)), 18);
    const size = (marginWad * BigInt(slot.leverage) * WAD) / price;
    const fee = ceilMul(ceilMul(size, price), parseUnits(spec.tradingFeeRatio, 18));
    const deposit = (marginWad + fee + scale - 1n) / scale;
    const entry = byTrader.get(slot.trader) ?? { deposit: 0n, trades: [] };
    entry.deposit += deposit;
    entry.trades.push({ marketId: slot.marketId, size: slot.long ? size : -size, deposit });
    byTrader.set(slot.trader, entry);
  }

  let ownerNonce = Number(BigInt(await rpc<Hex>(url, "eth_getTransactionCount", [owner, "pending"])));
  const approve = encodeFunctionData({ abi: testUSDCAbi, functionName: "approve", args: [engine, 2n ** 256n - 1n] });
  const phase1 = [...byTrader.entries()].flatMap(([trader, { deposit }]) => [
    {
      from: owner,
      to: ex.d.collateral,
      data: encodeFunctionData({ abi: testUSDCAbi, functionName: "mint", args: [trader, deposit] }),
      gas: 100_000n,
      nonce: ownerNonce++,
    },
    { from: trader, to: ex.d.collateral, data: approve, gas: 100_000n, nonce: 0 },
  ]);
  const funded = await sendAll(url, phase1);
  await mineAll(url);
  await receiptsOf(url, funded, "funding");
  const phase2 = [...byTrader.entries()].flatMap(([trader, entry]) =>
    entry.trades.map((t, i) => ({
      from: trader,
      to: engine,
      data: encodeFunctionData({
        abi: perpEngineAbi,
        functionName: "trade",
        args: [BigInt(t.marketId), t.size, t.deposit],
      }),
      gas: 400_000n,
      nonce: 1 + i,
    })),
  );
  const opened = await sendAll(url, phase2);
  await mineAll(url);
  await receiptsOf(url, opened, "opening positions");
  await rpc(url, "evm_setIntervalMining", [BLOCK_SECONDS]);
  const open = await openKeys(url, engine, slots);
  if (open.size !== slots.length) throw new Error(`${slots.length - open.size} positions did not open`);
  const early = await liquidatableAt(url, engine, slots, "latest");
  if (early.length > 0) throw new Error(`${early.length} positions are liquidatable before any crash`);
  return { url, ex, engine, owner, slots, setupSeconds: (now() - started) / 1000 };
}

/** One engine view per slot, in one JSON-RPC batch at `block`; the raw results, in slot order. */
async function viewEach(
  url: string,
  engine: Address,
  slots: readonly Slot[],
  functionName: "getPosition" | "isLiquidatable",
  block: Hex | "latest",
): Promise<unknown[]> {
  const answers = await rpcBatch(
    url,
    slots.map((s) => ({
      method: "eth_call",
      params: [
        {
          to: engine,
          data: encodeFunctionData({ abi: perpEngineAbi, functionName, args: [s.trader, BigInt(s.marketId)] }),
        },
        block,
      ],
    })),
  );
  return checkAnswers(answers, functionName);
}

/** The keys of the slots whose position is open at `block`. */
export async function openKeys(url: string, engine: Address, slots: readonly Slot[], block: Hex | "latest" = "latest") {
  const results = await viewEach(url, engine, slots, "getPosition", block);
  // getPosition returns (int256 size, ...): the first word is the size
  return new Set(slots.filter((_, i) => !/^0x0{64}/.test(String(results[i] ?? "0x"))).map((s) => s.key));
}

/** The slots the engine's own view says are liquidatable at `block` (isLiquidatable). */
export async function liquidatableAt(
  url: string,
  engine: Address,
  slots: readonly Slot[],
  block: bigint | "latest",
): Promise<Slot[]> {
  const results = await viewEach(url, engine, slots, "isLiquidatable", block === "latest" ? block : toHex(block));
  return slots.filter((_, i) => BigInt(String(results[i] ?? "0x0")) === 1n);
}

export async function headOf(url: string): Promise<bigint> {
  return BigInt(await rpc<Hex>(url, "eth_blockNumber"));
}

/** Resolves once a block above `after` is mined; returns its number. */
export async function nextHead(url: string, after: bigint, timeoutMs = 10_000): Promise<bigint> {
  let head = after;
  await until(
    `a block after ${after}`,
    async () => {
      head = await headOf(url);
      return head > after;
    },
    timeoutMs,
  );
  return head;
}

/**
 * Moves every market's oracle by `factor` (numerator over 1000) with pending updateAnswer transactions sent right
 * after a new head, so that the interval miner takes them all in its next block; returns that block.
 */
async function moveOracles(sc: Scenario, perMille: bigint): Promise<bigint> {
  const { url, owner, ex } = sc;
  const answers = await Promise.all(ex.d.markets.map((m) => ex.price(m.id)));
  await nextHead(url, await headOf(url));
  let nonce = Number(BigInt(await rpc<Hex>(url, "eth_getTransactionCount", [owner, "pending"])));
  const hashes = await sendAll(
    url,
    ex.d.markets.map((m, i) => ({
      from: owner,
      to: m.aggregator,
      data: encodeFunctionData({
        abi: mockV3AggregatorAbi,
        functionName: "updateAnswer",
        args: [((answers[i] as bigint) * perMille) / 1000n],
      }),
      gas: 200_000n,
      nonce: nonce++,
    })),
  );
  const blocks = await receiptsOf(url, hashes, "the oracle updates", 30_000);
  return blocks.reduce((a, b) => (b > a ? b : a), 0n);
}

/** A calm oracle update (every market up a little): nothing becomes liquidatable. Returns its block. */
export async function calmMove(sc: Scenario): Promise<bigint> {
  return moveOracles(sc, 1000n + CALM_PER_MILLE);
}

/** A crash: every market down CRASH_PERCENT, pending until the next block. Returns the crash block. */
export async function crash(sc: Scenario): Promise<bigint> {
  return moveOracles(sc, 1000n - CRASH_PERCENT * 10n);
}

/** Nonces of `address`: the pool holds nothing of it when pending equals latest. */
export async function hasPending(url: string, address: Address): Promise<boolean> {
  const [latest, pending] = checkAnswers(
    await rpcBatch(url, [
      { method: "eth_getTransactionCount", params: [address, "latest"] },
      { method: "eth_getTransactionCount", params: [address, "pending"] },
    ]),
    "nonces",
  );
  return BigInt(String(pending)) > BigInt(String(latest));
}

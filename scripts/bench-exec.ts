/**
 * Benchmark of the executor: one price update makes N positions liquidatable at once, on a local Anvil with
 * 1-second blocks; how fast, how densely and at what RPC cost do they get liquidated?
 *
 *   npm run bench:exec                                   readable report
 *   npm run bench:exec -- --json                         the same, and one JSON object as the last line of stdout
 *   npm run bench:exec -- --liquidations 200             N (default 1000)
 *   npm run bench:exec -- --baseline-liquidations 40     M, the baseline's N (default N; it needs ~M/4 blocks)
 *   npm run bench:exec -- --markets 8 --healthy 200      markets (one position per trader per market), healthy positions
 *   npm run bench:exec -- --modes batched,single         a subset of batched, first, single, baseline
 *   npm run bench:exec -- --keeper-log /tmp/keeper.log   the keepers' JSON log lines, for a post-mortem
 *   npm run bench:exec -- --trace-rpc /tmp/rpc.jsonl     one line per HTTP request at the proxy while counting
 *   npm run bench:exec -- --exchange perp-v2 [--json]    Perp v2 instead: scripts/lib/benchExecPerpV2.ts
 *
 * Three modes, each on a fresh Anvil and deployment with the same scenario:
 * - batched: the keeper (startKeeper, in process) with its default config: liquidateMany batches;
 * - first: batched, with `keeper.bidding.firstSingles: 1` (issue 18's first out): the most valuable position goes
 *   first as an unsimulated single, before the first batch's simulation; its firstBroadcastMs against batched's;
 * - single: the same keeper with `batching: false`: one liquidate() per position;
 * - baseline: the previous keeper's strategy, rebuilt here from the keeper's own watcher and risk model with the old
 *   executor loop: p-queue of concurrency 4, each attempt simulateContract(liquidate), then estimateContractGas,
 *   estimateFeesPerGas and getBlock, writeContract with a local nonce, and waitForTransactionReceipt before its
 *   slot is free.
 *
 * Scenario: `--markets` markets (default 8) on Chainlink mocks, traders holding one position per market, N longs
 * at 12x-18x that an 8% drop of every market puts below maintenance, and healthy positions (shorts, and longs at
 * 2x-5x) beside them. Setup runs with automine (transactions sent in parallel, receipts checked at the end); then
 * mining is paused, the drop of every market's oracle is put in the pool, one block (the price block) is mined with
 * all of them, and Anvil switches to interval mining, one block a second (evm_setIntervalMining 1).
 *
 * The keeper talks to Anvil only through a counting JSON-RPC proxy on 127.0.0.1 (JSON-RPC batch elements counted
 * one by one). Counting starts when the price block is mined. Per mode:
 * - firstBroadcastMs / lastBroadcastMs: from the keeper's tick that first sees the price block (RunningKeeper's
 *   keeper.handleTick, wrapped from outside) to the first / last eth_sendRawTransaction reaching the proxy before
 *   everything was included;
 * - blocksToInclude: block of the last PositionLiquidated of ours - the price block;
 * - gasPerLiquidation: gasUsed of all our mined transactions after the price block / N;
 * - physicalLimitBlocks: ceil(N x gasPerLiquidation / block gas limit), the fewest blocks that gas fits in;
 * - rpcPerLiquidation: JSON-RPC calls at the proxy from the price block until the bench saw all N included, / N;
 * - txReverted: our mined transactions that reverted.
 * Progress goes to stderr. Every Anvil, proxy and keeper is stopped on the way out, also on failure.
 */
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import { join } from "node:path";
import PQueue from "p-queue";
import {
  type Account,
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  encodeFunctionData,
  getAbiItem,
  type Hex,
  http,
  type PublicClient,
  parseUnits,
  type Transport,
  toHex,
  type WalletClient,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil as anvilChain } from "viem/chains";
import { mockV3AggregatorAbi } from "../abi/MockV3Aggregator.ts";
import { perpEngineAbi } from "../abi/PerpEngine.ts";
import { testUSDCAbi } from "../abi/TestUSDC.ts";
import { type RunningKeeper, startKeeper } from "../src/app.ts";
import { connect } from "../src/chain/connect.ts";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../src/devnet/anvil.ts";
import { devnetConfig } from "../src/devnet/config.ts";
import { COLLATERAL_DECIMALS, DevExchange, type MarketSpec, ORACLE_DECIMALS } from "../src/devnet/exchange.ts";
import { createLogger, type Logger } from "../src/ops/logger.ts";
import { Book, type BookChange, positionKey, type TrackedPosition } from "../src/protocol/perpEngine/book.ts";
import { ceilMul, WAD } from "../src/protocol/perpEngine/math.ts";
import { RiskEngine } from "../src/protocol/perpEngine/riskEngine.ts";
import type { Candidate } from "../src/protocol/perpEngine/scan.ts";
import { watchExchange } from "../src/protocol/perpEngine/watch.ts";
import type { Tick } from "../src/watcher/watcher.ts";
import { benchArgs, now, round, sleep, untilEvery, within } from "./lib/tools.ts";

/**
 * The previous keeper's nonce allocator, kept here for the baseline: the chain's pending count once, then a local
 * counter, re-read after a failed send.
 */
class NonceAllocator {
  private next: number | undefined;

  constructor(
    private readonly client: PublicClient,
    private readonly address: Address,
  ) {}

  async take(): Promise<number> {
    if (this.next === undefined) {
      this.next = await this.client.getTransactionCount({ address: this.address, blockTag: "pending" });
    }
    return this.next++;
  }

  resync(): void {
    this.next = undefined;
  }
}

// ---------------------------------------------------------------------------------------------- arguments

const { json, intArg, stringArg, has } = benchArgs();
const N = intArg("--liquidations", 1000);
const M = intArg("--baseline-liquidations", N);
const MARKETS = intArg("--markets", 8);
const HEALTHY = has("--healthy") ? intArg("--healthy", 1) : Math.ceil(N / 5);
const MODES = (stringArg("--modes") ?? "batched,single,baseline").split(",").map((s) => s.trim());
for (const m of stringArg("--exchange") === "perp-v2" ? [] : MODES) {
  if (!["batched", "first", "single", "baseline"].includes(m))
    throw new Error(`unknown mode ${m} (batched, first, single, baseline)`);
}
const KEEPER_LOG = stringArg("--keeper-log");
const TRACE_RPC = stringArg("--trace-rpc");
let traceFile: WriteStream | undefined;

const log = (message: string): void => {
  process.stderr.write(`[bench:exec ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
};

// ---------------------------------------------------------------------------------------------- small tools

const until = untilEvery(50);

interface RpcAnswer {
  readonly result?: unknown;
  readonly error?: { readonly code: number; readonly message: string };
}

/** One JSON-RPC call straight to Anvil (the bench's own calls never go through the proxy). */
async function rpc<T = unknown>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const [answer] = await rpcBatch(url, [{ method, params }]);
  if (answer?.error) throw new Error(`${method}: ${answer.error.message}`);
  return answer?.result as T;
}

/** JSON-RPC batch straight to Anvil, in chunks; answers in the order of the calls. */
async function rpcBatch(
  url: string,
  calls: readonly { method: string; params: unknown[] }[],
  chunk = 250,
): Promise<RpcAnswer[]> {
  const out: RpcAnswer[] = [];
  for (let i = 0; i < calls.length; i += chunk) {
    const body = calls.slice(i, i + chunk).map((c, j) => ({ jsonrpc: "2.0", id: i + j, ...c }));
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const answers = (await res.json()) as (RpcAnswer & { id: number })[];
    answers.sort((a, b) => a.id - b.id);
    out.push(...answers);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- counting proxy

interface Counts {
  readonly httpRequests: number;
  readonly rpcCalls: number;
  readonly byMethod: Record<string, number>;
}

/** A JSON-RPC proxy on 127.0.0.1 in front of Anvil that counts, once started, requests and calls by method. */
class CountingProxy {
  private counting = false;
  private countingSince = 0;
  label = "";
  private httpRequests = 0;
  private rpcCalls = 0;
  private readonly byMethod = new Map<string, number>();
  /** performance.now() of each eth_sendRawTransaction reaching the proxy while counting. */
  readonly sendTimes: number[] = [];
  private readonly server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const at = now();
      const methods = this.counting ? this.count(body, at) : undefined;
      if (methods && traceFile) {
        res.once("finish", () => {
          const summary: Record<string, number> = {};
          for (const m of methods) summary[m] = (summary[m] ?? 0) + 1;
          const t0 = this.countingSince;
          traceFile?.write(
            `${JSON.stringify({ mode: this.label, atMs: round(at - t0), doneMs: round(now() - t0), calls: summary })}\n`,
          );
        });
      }
      fetch(this.target, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(120_000),
      })
        .then(async (upstream) => {
          const answer = Buffer.from(await upstream.arrayBuffer());
          res.writeHead(upstream.status, { "content-type": "application/json", "content-length": answer.length });
          res.end(answer);
        })
        .catch((error: unknown) => {
          res.writeHead(502, { "content-type": "text/plain" });
          res.end(String(error));
        });
    });
  });
  url = "";

  private constructor(private readonly target: string) {}

  static async start(target: string): Promise<CountingProxy> {
    const proxy = new CountingProxy(target);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once("error", reject);
      proxy.server.listen(0, "127.0.0.1", () => resolve());
    });
    proxy.url = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    return proxy;
  }

  /** Counts one HTTP request's calls; returns their methods. */
  private count(body: Buffer, at: number): string[] {
    this.httpRequests++;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      this.bump("(unparsable)");
      return ["(unparsable)"];
    }
    const methods: string[] = [];
    for (const call of Array.isArray(parsed) ? parsed : [parsed]) {
      const method = String((call as { method?: unknown })?.method ?? "(none)");
      methods.push(method);
      this.bump(method);
      if (method === "eth_sendRawTransaction") this.sendTimes.push(at);
    }
    return methods;
  }

  private bump(method: string): void {
    this.rpcCalls++;
    this.byMethod.set(method, (this.byMethod.get(method) ?? 0) + 1);
  }

  startCounting(): void {
    this.counting = true;
    this.countingSince = now();
  }

  snapshot(): Counts {
    const byMethod = Object.fromEntries([...this.byMethod.entries()].sort((a, b) => b[1] - a[1]));
    return { httpRequests: this.httpRequests, rpcCalls: this.rpcCalls, byMethod };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

// ---------------------------------------------------------------------------------------------- scenario

const TEMPLATES: readonly [name: string, price: string, mmr: string, funding: string][] = [
  ["BTC-USD", "60000", "0.025", "0.00000001"],
  ["ETH-USD", "2500", "0.03", "-0.000000005"],
  ["SOL-USD", "150", "0.025", "0.00000002"],
  ["BNB-USD", "600", "0.03", "-0.00000001"],
  ["LINK-USD", "15", "0.025", "0.000000005"],
  ["AVAX-USD", "30", "0.03", "0.00000001"],
  ["DOGE-USD", "0.15", "0.025", "-0.00000002"],
  ["ARB-USD", "0.8", "0.03", "0.000000015"],
];

function marketSpecs(count: number): MarketSpec[] {
  return Array.from({ length: count }, (_, i) => {
    const [name, price, mmr, funding] = TEMPLATES[i % TEMPLATES.length] as (typeof TEMPLATES)[number];
    return {
      name: i < TEMPLATES.length ? name : `${name.split("-")[0]}${Math.floor(i / TEMPLATES.length)}-USD`,
      price,
      initialMarginRatio: "0.05",
      maintenanceMarginRatio: mmr,
      liquidationFeeRatio: "0.005",
      tradingFeeRatio: "0.0005",
      maxOracleAge: 86_400, // setup mines a block per transaction; the clock may run ahead of the listing
      fundingRatePerSecond: funding,
    };
  });
}

/** The drop applied to every market at once: longs above ~10x fall below maintenance, 5x and below stay safe. */
const CRASH_PERCENT = 8n;

interface Slot {
  readonly trader: Address;
  readonly marketId: number;
  readonly long: boolean;
  readonly leverage: number;
  /** Margin after the trading fee, collateral units. */
  readonly margin: bigint;
  readonly liquidatable: boolean;
}

interface Scenario {
  readonly ex: DevExchange;
  readonly markets: readonly MarketSpec[];
  readonly slots: readonly Slot[];
  readonly liquidatable: ReadonlySet<string>;
  readonly healthy: number;
  readonly traders: number;
  readonly setupSeconds: number;
}

/** Deterministic shuffle (mulberry32), so that every mode gets the same scenario. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let a = seed >>> 0;
  const random = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

function tradersNeeded(liquidatable: number, healthy: number, markets: number): number {
  return Math.ceil((liquidatable + healthy) / markets);
}

const FEES = { maxFeePerGas: toHex(parseUnits("50", 9)), maxPriorityFeePerGas: toHex(parseUnits("1", 9)) };

/** Sends unsigned transactions from Anvil's unlocked dev accounts, with the nonces given; returns their hashes. */
async function sendAll(
  url: string,
  txs: readonly { from: Address; to: Address; data: Hex; gas: bigint; nonce: number }[],
): Promise<Hex[]> {
  const answers = await rpcBatch(
    url,
    txs.map((tx) => ({
      method: "eth_sendTransaction",
      params: [{ from: tx.from, to: tx.to, data: tx.data, gas: toHex(tx.gas), nonce: toHex(tx.nonce), ...FEES }],
    })),
    250,
  );
  return answers.map((a, i) => {
    if (a.error || typeof a.result !== "string") {
      throw new Error(`setup transaction ${i} refused: ${a.error?.message ?? JSON.stringify(a.result)}`);
    }
    return a.result as Hex;
  });
}

/** Mines blocks (evm_mine) until Anvil's pool is empty; returns how many. */
async function mineAll(url: string): Promise<number> {
  let blocks = 0;
  for (;;) {
    const status = await rpc<{ pending: Hex; queued: Hex }>(url, "txpool_status");
    if (BigInt(status.pending) === 0n) return blocks;
    if (blocks >= 10_000) throw new Error(`the pool still holds ${BigInt(status.pending)} transactions`);
    await rpc(url, "evm_mine");
    blocks++;
  }
}

/** Waits until every hash has a receipt and checks each succeeded. */
async function receiptsOf(url: string, hashes: readonly Hex[], what: string): Promise<{ blockNumber: string }[]> {
  const found = new Map<number, { status: string; blockNumber: string }>();
  const deadline = now() + 120_000;
  while (found.size < hashes.length) {
    const missing = hashes.map((h, i) => ({ h, i })).filter(({ i }) => !found.has(i));
    const answers = await rpcBatch(
      url,
      missing.map(({ h }) => ({ method: "eth_getTransactionReceipt", params: [h] })),
    );
    answers.forEach((a, j) => {
      const r = a.result as { status: string; blockNumber: string } | null;
      if (r) found.set((missing[j] as { i: number }).i, r);
    });
    if (found.size < hashes.length) {
      if (now() > deadline) throw new Error(`${what}: ${hashes.length - found.size} transactions never mined`);
      await sleep(50);
    }
  }
  const receipts = hashes.map((_, i) => found.get(i) as { status: string; blockNumber: string });
  const failed = receipts.filter((r) => r.status !== "0x1").length;
  if (failed > 0) throw new Error(`${what}: ${failed} of ${hashes.length} transactions reverted`);
  return receipts;
}

/**
 * Deploys the exchange with `marketCount` markets and opens `liquidatable` positions that the crash puts below
 * maintenance and `healthy` ones it does not, one per (trader, market), fast: transactions from the unlocked dev
 * accounts with explicit nonces go to the pool in JSON-RPC batches and are mined with evm_mine; receipts checked.
 */
async function setupScenario(
  anvil: Anvil,
  liquidatable: number,
  healthy: number,
  marketCount: number,
): Promise<Scenario> {
  const started = now();
  const markets = marketSpecs(marketCount);
  const ex = await DevExchange.deploy(anvil.rpcUrl, markets);
  const d = ex.d;
  const accounts = await rpc<Address[]>(anvil.rpcUrl, "eth_accounts");
  const traderCount = tradersNeeded(liquidatable, healthy, marketCount);
  if (accounts.length < traderCount + 2)
    throw new Error(`anvil has ${accounts.length} accounts, ${traderCount + 2} needed`);
  const owner = accounts[0] as Address;

  // which (trader, market) slot holds what: deterministic, liquidatable and healthy spread over all markets
  const kinds = shuffled(
    [...Array<boolean>(liquidatable).fill(true), ...Array<boolean>(healthy).fill(false)],
    0x5eed + liquidatable,
  );
  const slots: Slot[] = kinds.map((liq, s) => {
    const trader = accounts[2 + Math.floor(s / marketCount)] as Address;
    const marketId = s % marketCount;
    const margin = parseUnits(String(500 + 100 * (s % 10)), COLLATERAL_DECIMALS);
    if (liq) return { trader, marketId, long: true, leverage: 12 + (s % 7), margin, liquidatable: true };
    const long = s % 2 === 0;
    return { trader, marketId, long, leverage: long ? 2 + (s % 4) : 2 + (s % 9), margin, liquidatable: false };
  });

  // sizes and deposits as src/devnet/positions.ts openPosition computes them
  const scale = 10n ** BigInt(18 - COLLATERAL_DECIMALS);
  const trades = slots.map((slot) => {
    const spec = markets[slot.marketId] as MarketSpec;
    const price = parseUnits(spec.price, ORACLE_DECIMALS) * 10n ** BigInt(18 - ORACLE_DECIMALS);
    const marginWad = slot.margin * scale;
    const size = (marginWad * BigInt(slot.leverage) * WAD) / price;
    const fee = ceilMul(ceilMul(size, price), parseUnits(spec.tradingFeeRatio, 18));
    const deposit = (marginWad + fee + scale - 1n) / scale;
    return { slot, sizeDelta: slot.long ? size : -size, deposit };
  });
  const perTrader = new Map<Address, { deposit: bigint; trades: typeof trades }>();
  for (const t of trades) {
    const entry = perTrader.get(t.slot.trader) ?? { deposit: 0n, trades: [] };
    entry.deposit += t.deposit;
    entry.trades.push(t);
    perTrader.set(t.slot.trader, entry);
  }

  // Automine is off from here: transactions go to the pool (explicit nonces, JSON-RPC batches) and blocks are mined
  // with evm_mine until the pool is empty. Under hundreds of transactions a second Anvil 1.7.1's automine was seen
  // to fall behind, mine long runs of near-empty blocks, and once stall eth_sendTransaction for over a minute.
  await rpc(anvil.rpcUrl, "evm_setAutomine", [false]);
  // phase 1: collateral for every trader (owner, consecutive nonces) and each trader's approval
  let ownerNonce = Number(BigInt(await rpc<Hex>(anvil.rpcUrl, "eth_getTransactionCount", [owner, "pending"])));
  const approve = encodeFunctionData({
    abi: testUSDCAbi,
    functionName: "approve",
    args: [d.engine, 2n ** 256n - 1n],
  });
  const phase1 = [...perTrader.entries()].flatMap(([trader, { deposit }]) => [
    {
      from: owner,
      to: d.collateral,
      data: encodeFunctionData({ abi: testUSDCAbi, functionName: "mint", args: [trader, deposit] }),
      gas: 100_000n,
      nonce: ownerNonce++,
    },
    { from: trader, to: d.collateral, data: approve, gas: 100_000n, nonce: 0 },
  ]);
  const phase1Hashes = await sendAll(anvil.rpcUrl, phase1);
  const phase1Blocks = await mineAll(anvil.rpcUrl);
  await receiptsOf(anvil.rpcUrl, phase1Hashes, "funding");
  log(
    `  funded ${perTrader.size} traders in ${phase1Blocks} blocks (${Math.round(now() - started)} ms since deploy start)`,
  );

  // phase 2: the trades, each trader's in nonce order
  const phase2 = [...perTrader.entries()].flatMap(([trader, entry]) =>
    entry.trades.map((t, i) => ({
      from: trader,
      to: d.engine,
      data: encodeFunctionData({
        abi: perpEngineAbi,
        functionName: "trade",
        args: [BigInt(t.slot.marketId), t.sizeDelta, t.deposit],
      }),
      gas: 400_000n,
      nonce: 1 + i,
    })),
  );
  const phase2Hashes = await sendAll(anvil.rpcUrl, phase2);
  const phase2Blocks = await mineAll(anvil.rpcUrl);
  await receiptsOf(anvil.rpcUrl, phase2Hashes, "opening positions");
  const setupSeconds = (now() - started) / 1000;
  log(
    `  opened ${slots.length} positions (${liquidatable} to be liquidated) in ${phase2Blocks} blocks; setup ${setupSeconds.toFixed(1)} s`,
  );
  return {
    ex,
    markets,
    slots,
    liquidatable: new Set(slots.filter((s) => s.liquidatable).map((s) => positionKey(s.marketId, s.trader))),
    healthy,
    traders: perTrader.size,
    setupSeconds,
  };
}

// ---------------------------------------------------------------------------------------------- measuring

/** Where a mode's "keeper" reports the tick that first sees the price block. */
interface Marker {
  priceBlock: bigint | undefined;
  tickAt: number | undefined;
}

function markTick(marker: Marker, tick: Tick): void {
  if (marker.tickAt === undefined && marker.priceBlock !== undefined && tick.blockNumber >= marker.priceBlock) {
    marker.tickAt = now();
  }
}

interface ModeResult {
  liquidations: number;
  firstBroadcastMs: number;
  lastBroadcastMs: number;
  blocksToInclude: number;
  physicalLimitBlocks: number;
  gasPerLiquidation: number;
  rpcPerLiquidation: number;
  txReverted: number;
  /** eth_sendRawTransaction calls (first sends, replacements and cancels) until all were included. */
  txSent: number;
  /** Our transactions mined after the price block (up to the end of the mode). */
  txMined: number;
  /** Mined cancels (self-transfers) of ours. */
  txCancels: number;
  /** Positions a mined batch of ours skipped (LiquidationSkipped). */
  skippedInBatch: number;
  /** From the price block's evm_mine returning to the tick that saw it. */
  tickAfterPriceMs: number;
  /** From that tick to the moment the bench saw all N included. */
  allIncludedMs: number;
  rpcCalls: number;
  httpRequests: number;
  httpPerLiquidation: number;
  rpcByMethod: Record<string, number>;
  /** Liquidations of ours per block, by blocks after the price block. */
  perBlock: Record<string, number>;
  /** Gas limit given per liquidation (sum of our mined transactions' limits / N): what the block builder packs by. */
  gasLimitPerLiquidation: number;
  blockGasLimit: number;
  /** Calls from the price block until the executor had confirmed all N (its own inclusion pass). */
  rpcPerLiquidationUntilConfirmed: number | undefined;
  keeperStats: Record<string, number | string> | undefined;
  keeperEvents: Record<string, number> | undefined;
  setupSeconds: number;
}

const LIQUIDATED = getAbiItem({ abi: perpEngineAbi, name: "PositionLiquidated" });
const SKIPPED = getAbiItem({ abi: perpEngineAbi, name: "LiquidationSkipped" });

interface BlockReceipt {
  readonly from: string;
  readonly to: string | null;
  readonly status: string;
  readonly gasUsed: string;
  readonly blockNumber: string;
  readonly transactionHash: string;
}

/**
 * Puts the crash of every market in one block, resumes 1-second interval mining, and waits until the `expected`
 * positions are all liquidated by `signer`; returns the inclusion figures and the proxy's counts up to then.
 */
async function crashAndMeasure(
  anvil: Anvil,
  sc: Scenario,
  proxy: CountingProxy,
  marker: Marker,
  signer: Address,
  expected: number,
  timeoutMs: number,
  failed: () => unknown,
) {
  const url = anvil.rpcUrl;
  const client = createPublicClient({ chain: anvilChain, transport: http(url, { timeout: 60_000, retryCount: 0 }) });
  const owner = (await rpc<Address[]>(url, "eth_accounts"))[0] as Address;
  await rpc(url, "evm_setAutomine", [false]); // (off since the setup already)
  if (BigInt((await rpc<{ pending: Hex }>(url, "txpool_status")).pending) !== 0n) {
    throw new Error("the pool is not empty before the price update");
  }
  const head = BigInt(await rpc<Hex>(url, "eth_blockNumber"));
  let nonce = Number(BigInt(await rpc<Hex>(url, "eth_getTransactionCount", [owner, "pending"])));
  const answers = await Promise.all(sc.ex.d.markets.map((m) => sc.ex.price(m.id)));
  const priceTxs = await sendAll(
    url,
    sc.ex.d.markets.map((m, i) => ({
      from: owner,
      to: m.oracle,
      data: encodeFunctionData({
        abi: mockV3AggregatorAbi,
        functionName: "updateAnswer",
        args: [((answers[i] as bigint) * (100n - CRASH_PERCENT)) / 100n],
      }),
      gas: 200_000n,
      nonce: nonce++,
    })),
  );
  const priceBlock = head + 1n;
  marker.priceBlock = priceBlock;
  proxy.startCounting();
  await rpc(url, "evm_mine", []);
  const minedAt = now();
  await rpc(url, "evm_setIntervalMining", [1]);
  const priceReceipts = await receiptsOf(url, priceTxs, "price update");
  if (priceReceipts.some((r) => BigInt(r.blockNumber) !== priceBlock)) {
    throw new Error(`the price updates did not all land in block ${priceBlock}`);
  }
  const block = await client.getBlock({ blockNumber: priceBlock });
  log(`  price block ${priceBlock}: every market -${CRASH_PERCENT}%; interval mining 1 s`);

  // follow the chain straight from Anvil until every expected position is liquidated by us
  const ours = new Map<string, bigint>();
  const others: string[] = [];
  let scanned = priceBlock - 1n;
  let includedAt: number | undefined;
  let counts: Counts | undefined;
  let sendsBefore = 0;
  const deadline = now() + timeoutMs;
  let lastReport = now();
  while (includedAt === undefined) {
    const error = failed();
    if (error) throw new Error(`the keeper failed: ${String(error)}`);
    const top = await client.getBlockNumber({ cacheTime: 0 });
    if (top > scanned) {
      const logs = await client.getLogs({
        address: sc.ex.d.engine,
        event: LIQUIDATED,
        fromBlock: scanned + 1n,
        toBlock: top,
      });
      for (const l of logs) {
        const key = positionKey(Number(l.args.marketId), l.args.trader as Address);
        if ((l.args.keeper as string).toLowerCase() === signer.toLowerCase() && sc.liquidatable.has(key)) {
          ours.set(key, l.blockNumber as bigint);
        } else others.push(key);
      }
      scanned = top;
      if (ours.size >= expected) {
        includedAt = now();
        counts = proxy.snapshot();
        sendsBefore = proxy.sendTimes.length;
        break;
      }
    }
    if (now() > deadline) {
      throw new Error(`only ${ours.size} of ${expected} liquidated after ${Math.round(timeoutMs / 1000)} s`);
    }
    if (now() - lastReport > 10_000) {
      lastReport = now();
      log(`  ... ${ours.size} of ${expected} liquidated, block ${top} (+${top - priceBlock})`);
    }
    await sleep(100);
  }
  if (others.length > 0) throw new Error(`${others.length} liquidations that are not ours or not expected`);
  const lastBlock = [...ours.values()].reduce((a, b) => (b > a ? b : a), priceBlock);
  const perBlock: Record<string, number> = {};
  for (const b of ours.values()) perBlock[`+${b - priceBlock}`] = (perBlock[`+${b - priceBlock}`] ?? 0) + 1;
  return {
    priceBlock,
    minedAt,
    includedAt: includedAt as number,
    counts: counts as Counts,
    sendsBefore,
    lastBlock,
    perBlock,
    blockGasLimit: block.gasLimit,
    client,
  };
}

/** Our transactions mined in (from, to]: count, reverts, cancels, gas used and gas limits given. */
async function ourTransactions(url: string, signer: Address, engine: Address, from: bigint, to: bigint) {
  const numbers: bigint[] = [];
  for (let b = from + 1n; b <= to; b++) numbers.push(b);
  const answers = await rpcBatch(
    url,
    numbers.map((b) => ({ method: "eth_getBlockReceipts", params: [toHex(b)] })),
    20,
  );
  const mine = answers
    .flatMap((a) => (a.result as BlockReceipt[] | null) ?? [])
    .filter((r) => r.from.toLowerCase() === signer.toLowerCase());
  const txs = await rpcBatch(
    url,
    mine.map((r) => ({ method: "eth_getTransactionByHash", params: [r.transactionHash] })),
  );
  const gasLimit = txs.reduce((s, t) => s + BigInt((t.result as { gas: Hex } | null)?.gas ?? "0x0"), 0n);
  const client = createPublicClient({ chain: anvilChain, transport: http(url, { timeout: 60_000, retryCount: 0 }) });
  const skipped = await client.getLogs({
    address: engine,
    event: SKIPPED,
    args: { keeper: signer },
    fromBlock: from + 1n,
    toBlock: to,
  });
  return {
    mined: mine.length,
    reverted: mine.filter((r) => r.status !== "0x1").length,
    cancels: mine.filter((r) => r.to?.toLowerCase() === signer.toLowerCase()).length,
    gasUsed: mine.reduce((s, r) => s + BigInt(r.gasUsed), 0n),
    gasLimit,
    skippedInBatch: skipped.length,
  };
}

/** The healthy positions must all still be open. */
async function checkHealthyOpen(sc: Scenario): Promise<void> {
  const healthy = sc.slots.filter((s) => !s.liquidatable);
  const calls = healthy.map((s) => ({
    method: "eth_call",
    params: [
      {
        to: sc.ex.d.engine,
        data: encodeFunctionData({
          abi: perpEngineAbi,
          functionName: "getPosition",
          args: [s.trader, BigInt(s.marketId)],
        }),
      },
      "latest",
    ],
  }));
  const answers = await rpcBatch(sc.ex.rpcUrl, calls);
  // getPosition returns (int256 size, ...): the first word is the size
  const closed = answers.filter((a) => /^0x0{64}/.test(String(a.result ?? "0x"))).length;
  if (closed > 0) throw new Error(`${closed} healthy positions were closed`);
}

function summarise(
  liquidations: number,
  m: Awaited<ReturnType<typeof crashAndMeasure>>,
  txs: Awaited<ReturnType<typeof ourTransactions>>,
  proxy: CountingProxy,
  marker: Marker,
  extra: Pick<ModeResult, "rpcPerLiquidationUntilConfirmed" | "keeperStats" | "keeperEvents" | "setupSeconds">,
): ModeResult {
  const tickAt = marker.tickAt;
  if (tickAt === undefined) throw new Error("no tick saw the price block");
  const sends = proxy.sendTimes.slice(0, m.sendsBefore);
  const gasPerLiquidation = Number(txs.gasUsed) / liquidations;
  const blockGasLimit = Number(m.blockGasLimit);
  return {
    liquidations,
    firstBroadcastMs: round((sends[0] ?? Number.NaN) - tickAt),
    lastBroadcastMs: round((sends[sends.length - 1] ?? Number.NaN) - tickAt),
    blocksToInclude: Number(m.lastBlock - m.priceBlock),
    physicalLimitBlocks: Math.ceil((liquidations * gasPerLiquidation) / blockGasLimit),
    gasPerLiquidation: Math.round(gasPerLiquidation),
    rpcPerLiquidation: round(m.counts.rpcCalls / liquidations),
    txReverted: txs.reverted,
    txSent: sends.length,
    txMined: txs.mined,
    txCancels: txs.cancels,
    skippedInBatch: txs.skippedInBatch,
    tickAfterPriceMs: round(tickAt - m.minedAt),
    allIncludedMs: round(m.includedAt - tickAt),
    rpcCalls: m.counts.rpcCalls,
    httpRequests: m.counts.httpRequests,
    httpPerLiquidation: round(m.counts.httpRequests / liquidations),
    rpcByMethod: m.counts.byMethod,
    perBlock: m.perBlock,
    gasLimitPerLiquidation: Math.round(Number(txs.gasLimit) / liquidations),
    blockGasLimit,
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------- keeper logs

interface LogTap {
  readonly log: Logger;
  readonly events: Map<string, number>;
  /** The first warnings and errors, for the report. */
  readonly problems: string[];
}

let keeperLogFile: WriteStream | undefined;

function tapLogs(mode: string): LogTap {
  const events = new Map<string, number>();
  const problems: string[] = [];
  if (KEEPER_LOG && !keeperLogFile) keeperLogFile = createWriteStream(KEEPER_LOG, { flags: "w" });
  const log = createLogger({
    level: "info",
    destination: {
      write(line: string) {
        keeperLogFile?.write(`${line.trimEnd().replace(/^\{/, `{"benchMode":"${mode}",`)}\n`);
        const parsed = JSON.parse(line) as { event?: string; level?: number; levelName?: string; msg?: string };
        const name = parsed.event ?? "(none)";
        events.set(name, (events.get(name) ?? 0) + 1);
        if (Number(parsed.level) >= 40 && problems.length < 10) {
          problems.push(`${parsed.levelName} ${name}: ${parsed.msg ?? ""}`);
        }
      },
    },
  });
  return { log, events, problems };
}

// ---------------------------------------------------------------------------------------------- keeper modes

const KEEPER_KEY = ANVIL_KEYS[1];
const KEEPER_ADDRESS = privateKeyToAccount(KEEPER_KEY).address;

async function runKeeperMode(mode: "batched" | "first" | "single", n: number): Promise<ModeResult> {
  log(`mode ${mode}: ${n} liquidations, ${HEALTHY} healthy positions over ${MARKETS} markets`);
  const anvil = await startAnvil({ accounts: tradersNeeded(n, HEALTHY, MARKETS) + 2, startTimeoutMs: 60_000 });
  let proxy: CountingProxy | undefined;
  let keeper: RunningKeeper | undefined;
  const stateDir = mkdtempSync(join(os.tmpdir(), "perp-keeper-bench-exec-"));
  try {
    const sc = await setupScenario(anvil, n, HEALTHY, MARKETS);
    proxy = await CountingProxy.start(anvil.rpcUrl);
    proxy.label = mode;
    const tap = tapLogs(mode);
    const marker: Marker = { priceBlock: undefined, tickAt: undefined };
    keeper = await startKeeper({
      config: devnetConfig(sc.ex.d, proxy.url, {
        pollIntervalMs: 100,
        stateDir,
        ...(mode === "single" ? { batching: false } : {}),
        ...(mode === "first" ? { bidding: { firstSingles: 1 } } : {}),
      }),
      rpcUrl: proxy.url,
      privateKeys: [KEEPER_KEY],
      log: tap.log,
    });
    let failure: unknown;
    keeper.done.catch((error: unknown) => {
      failure = error;
    });
    // the tick that first sees the price block, timed from outside: the watcher calls keeper.handleTick(tick)
    const k = keeper;
    const handleTick = k.keeper.handleTick.bind(k.keeper);
    k.keeper.handleTick = (tick: Tick) => {
      markTick(marker, tick);
      handleTick(tick);
    };
    const head = BigInt(await rpc<Hex>(anvil.rpcUrl, "eth_blockNumber"));
    await until(
      "the keeper to index every position",
      () =>
        failure !== undefined ||
        (k.watcher.processedBlock >= head &&
          (k.watcher.latestTick?.blockNumber ?? 0n) >= head &&
          k.book.positions.size === sc.slots.length),
      120_000,
    );
    if (failure) throw new Error(`the keeper failed: ${String(failure)}`);
    log(`  keeper indexed ${k.book.positions.size} positions up to block ${head}`);

    const m = await crashAndMeasure(anvil, sc, proxy, marker, KEEPER_ADDRESS, n, 120_000 + n * 200, () => failure);
    log(`  all ${n} included by block +${m.lastBlock - m.priceBlock}`);
    // let the executor's own inclusion pass confirm them (its calls counted apart)
    let untilConfirmed: number | undefined;
    await until("the executor to confirm", () => k.executor.stats.confirmed >= n, 30_000, 20).then(
      () => {
        untilConfirmed = proxy?.snapshot().rpcCalls;
      },
      () => log(`  the executor confirmed ${k.executor.stats.confirmed} of ${n} within 30 s`),
    );
    await sleep(3000); // what it still sends after (cancels, replacements) shows in txMined
    const end = BigInt(await rpc<Hex>(anvil.rpcUrl, "eth_blockNumber"));
    const txs = await ourTransactions(anvil.rpcUrl, KEEPER_ADDRESS, sc.ex.d.engine, m.priceBlock, end);
    await checkHealthyOpen(sc);
    const {
      gasPaidWei,
      valuePaidWei: _value,
      lostRaceGasWei: _lost,
      rewardsWad: _rewards,
      ...stats
    } = k.executor.stats;
    const result = summarise(n, m, txs, proxy, marker, {
      rpcPerLiquidationUntilConfirmed: untilConfirmed === undefined ? undefined : round(untilConfirmed / n),
      keeperStats: { ...stats, gasPaidWei: gasPaidWei.toString() },
      keeperEvents: Object.fromEntries([...tap.events.entries()].sort((a, b) => b[1] - a[1])),
      setupSeconds: round(sc.setupSeconds, 3),
    });
    for (const p of tap.problems) log(`  keeper ${p}`);
    return result;
  } finally {
    if (keeper)
      await within(
        keeper.stop("benchmark finished").catch(() => {}),
        15_000,
      );
    await proxy?.close().catch(() => {});
    await anvil.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------- baseline

/**
 * The previous keeper's executor (before sends were decoupled from inclusion): at most `concurrency` attempts at
 * once, each simulateContract(liquidate) -> estimateContractGas + estimateFeesPerGas + getBlock -> writeContract
 * with a local nonce (one signing lane) -> waitForTransactionReceipt, and only then is its slot free.
 */
class BaselineExecutor {
  private readonly inFlight = new Set<string>();
  private readonly done = new Map<string, TrackedPosition>();
  private readonly queue: PQueue;
  private readonly sendLane = new PQueue({ concurrency: 1 });
  private closed = false;
  readonly stats = { sent: 0, confirmed: 0, reverted: 0, skipped: 0, failed: 0 };

  constructor(
    private readonly o: {
      readonly publicClient: PublicClient<Transport, Chain>;
      readonly walletClient: WalletClient<Transport, Chain, Account>;
      readonly engine: Address;
      readonly nonces: NonceAllocator;
      readonly concurrency: number;
      readonly gasLimitMultiplierPercent: bigint;
      readonly minPriorityFeeWei: bigint;
      readonly receiptTimeoutMs: number;
    },
  ) {
    this.queue = new PQueue({ concurrency: o.concurrency });
  }

  submit(candidates: readonly Candidate[]): void {
    for (const c of candidates) {
      const { position } = c;
      if (this.closed || this.inFlight.has(position.key) || this.done.get(position.key) === position) continue;
      this.inFlight.add(position.key);
      void this.queue.add(async () => {
        try {
          if (await this.liquidate(c)) this.done.set(position.key, position);
        } catch {
          this.stats.failed++;
        } finally {
          this.inFlight.delete(position.key);
        }
      });
    }
  }

  onBookChange(change: BookChange): void {
    if (change.type === "position") this.done.delete(change.key);
  }

  close(): void {
    this.closed = true;
    this.queue.clear();
  }

  async idle(): Promise<void> {
    await this.queue.onIdle();
  }

  private async liquidate(c: Candidate): Promise<boolean> {
    const { publicClient, walletClient, engine } = this.o;
    const call = {
      address: engine,
      abi: perpEngineAbi,
      functionName: "liquidate",
      args: [c.position.trader, BigInt(c.position.marketId)],
      account: walletClient.account,
    } as const;
    if (this.closed) return false;
    try {
      await publicClient.simulateContract(call);
    } catch {
      this.stats.skipped++;
      return false;
    }
    const [gasEstimate, fees, latest] = await Promise.all([
      publicClient.estimateContractGas(call),
      publicClient.estimateFeesPerGas(),
      publicClient.getBlock(),
    ]);
    // the old planFees: the node's suggestion, the tip raised to the floor, at least base fee + tip
    const tip =
      fees.maxPriorityFeePerGas > this.o.minPriorityFeeWei ? fees.maxPriorityFeePerGas : this.o.minPriorityFeeWei;
    let maxFeePerGas = fees.maxFeePerGas - fees.maxPriorityFeePerGas + tip;
    const base = latest.baseFeePerGas ?? 0n;
    if (maxFeePerGas < base + tip) maxFeePerGas = base + tip;
    const gas = (gasEstimate * this.o.gasLimitMultiplierPercent) / 100n;
    const hash = await this.sendLane.add(async () => {
      if (this.closed) return undefined;
      const nonce = await this.o.nonces.take();
      try {
        return await walletClient.writeContract({ ...call, gas, maxFeePerGas, maxPriorityFeePerGas: tip, nonce });
      } catch (error) {
        this.o.nonces.resync();
        throw error;
      }
    });
    if (!hash) return false;
    this.stats.sent++;
    const receipt = await publicClient.waitForTransactionReceipt({ hash, timeout: this.o.receiptTimeoutMs });
    if (receipt.status !== "success") {
      this.stats.reverted++;
      return false;
    }
    this.stats.confirmed++;
    return true;
  }
}

async function runBaseline(m: number): Promise<ModeResult> {
  const healthy = Math.ceil(m / 5);
  log(`mode baseline: ${m} liquidations, ${healthy} healthy positions over ${MARKETS} markets`);
  const anvil = await startAnvil({ accounts: tradersNeeded(m, healthy, MARKETS) + 2, startTimeoutMs: 60_000 });
  let proxy: CountingProxy | undefined;
  const controller = new AbortController();
  let running: Promise<void> | undefined;
  let executor: BaselineExecutor | undefined;
  const stateDir = mkdtempSync(join(os.tmpdir(), "perp-keeper-bench-exec-"));
  try {
    const sc = await setupScenario(anvil, m, healthy, MARKETS);
    proxy = await CountingProxy.start(anvil.rpcUrl);
    proxy.label = "baseline";
    const tap = tapLogs("baseline");
    const marker: Marker = { priceBlock: undefined, tickAt: undefined };
    const config = devnetConfig(sc.ex.d, proxy.url, { pollIntervalMs: 100, stateDir });
    // the old composition root: one transport and client (batching JSON-RPC), a wallet client on the same transport
    const connection = await connect(config, proxy.url);
    const walletClient = createWalletClient({
      chain: connection.chain,
      transport: connection.transport,
      account: privateKeyToAccount(KEEPER_KEY),
    });
    const ex = new BaselineExecutor({
      publicClient: connection.publicClient,
      walletClient,
      engine: connection.engine,
      nonces: new NonceAllocator(connection.publicClient, KEEPER_ADDRESS),
      concurrency: 4,
      gasLimitMultiplierPercent: 130n,
      minPriorityFeeWei: parseUnits("0.001", 9),
      receiptTimeoutMs: 120_000,
    });
    executor = ex;
    const book = new Book();
    const risk = new RiskEngine(book);
    const watcher = watchExchange(config, connection, book, tap.log, {
      onEvent: (event) => {
        const change = book.apply(event);
        if (!change) return undefined;
        risk.apply(change);
        ex.onBookChange(change);
        return change;
      },
      onRollback: () => {
        throw new Error("the baseline run saw a reorganisation");
      },
      onTick: (tick) => {
        markTick(marker, tick);
        for (const [marketId, markPrice] of tick.prices) {
          const candidates = risk.liquidatable(marketId, markPrice, tick.timestamp);
          if (candidates.length > 0) ex.submit(candidates);
        }
      },
      onReorg: () => {
        book.reset();
        risk.reset();
      },
    });
    await watcher.backfill();
    let failure: unknown;
    running = watcher.run(controller.signal).catch((error: unknown) => {
      failure = error;
    });
    const head = BigInt(await rpc<Hex>(anvil.rpcUrl, "eth_blockNumber"));
    await until(
      "the baseline to index every position",
      () =>
        failure !== undefined ||
        ((watcher.latestTick?.blockNumber ?? 0n) >= head && book.positions.size === sc.slots.length),
      120_000,
    );
    log(`  baseline indexed ${book.positions.size} positions up to block ${head}`);

    const measured = await crashAndMeasure(
      anvil,
      sc,
      proxy,
      marker,
      KEEPER_ADDRESS,
      m,
      120_000 + m * 1500,
      () => failure,
    );
    log(`  all ${m} included by block +${measured.lastBlock - measured.priceBlock}`);
    await sleep(1500);
    const end = BigInt(await rpc<Hex>(anvil.rpcUrl, "eth_blockNumber"));
    const txs = await ourTransactions(anvil.rpcUrl, KEEPER_ADDRESS, sc.ex.d.engine, measured.priceBlock, end);
    await checkHealthyOpen(sc);
    return summarise(m, measured, txs, proxy, marker, {
      rpcPerLiquidationUntilConfirmed: undefined,
      keeperStats: { ...ex.stats },
      keeperEvents: undefined,
      setupSeconds: round(sc.setupSeconds, 3),
    });
  } finally {
    controller.abort();
    executor?.close();
    if (running) await within(running, 10_000);
    if (executor) await within(executor.idle(), 5_000);
    await proxy?.close().catch(() => {});
    await anvil.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------- report

const cpus = os.cpus();
const machine = {
  cpu: cpus[0]?.model ?? "unknown",
  cores: cpus.length,
  node: process.version,
  platform: `${os.platform()} ${os.arch()}`,
};

/** "+1:200 +2:56", with runs of consecutive blocks holding the same count folded: "+1..+250: 4 each". */
function perBlockText(perBlock: Record<string, number>): string {
  const entries = Object.entries(perBlock)
    .map(([k, v]) => [Number(k.slice(1)), v] as const)
    .sort((a, b) => a[0] - b[0]);
  const runs: { from: number; to: number; count: number }[] = [];
  for (const [block, count] of entries) {
    const last = runs[runs.length - 1];
    if (last && last.to === block - 1 && last.count === count) last.to = block;
    else runs.push({ from: block, to: block, count });
  }
  return runs
    .map((r) => (r.from === r.to ? `+${r.from}:${r.count}` : `+${r.from}..+${r.to}: ${r.count} each`))
    .join(" ");
}

function table(results: Partial<Record<"batched" | "first" | "single" | "baseline", ModeResult>>): string {
  const modes = (["batched", "first", "single", "baseline"] as const).filter((m) => results[m]);
  const rows: [string, (r: ModeResult) => string][] = [
    ["liquidations", (r) => String(r.liquidations)],
    ["tick after price block, ms", (r) => r.tickAfterPriceMs.toFixed(0)],
    ["first broadcast, ms after tick", (r) => r.firstBroadcastMs.toFixed(0)],
    ["last broadcast, ms after tick", (r) => r.lastBroadcastMs.toFixed(0)],
    ["all included, ms after tick", (r) => r.allIncludedMs.toFixed(0)],
    ["blocks to include all", (r) => String(r.blocksToInclude)],
    ["physical limit, blocks", (r) => String(r.physicalLimitBlocks)],
    ["gas used per liquidation", (r) => r.gasPerLiquidation.toLocaleString("en-US")],
    ["gas limit per liquidation", (r) => r.gasLimitPerLiquidation.toLocaleString("en-US")],
    ["RPC calls per liquidation", (r) => r.rpcPerLiquidation.toFixed(2)],
    ["HTTP requests per liquidation", (r) => r.httpPerLiquidation.toFixed(2)],
    ["RPC calls, total", (r) => String(r.rpcCalls)],
    ["transactions sent (raw)", (r) => String(r.txSent)],
    ["transactions mined", (r) => String(r.txMined)],
    ["transactions reverted", (r) => String(r.txReverted)],
    ["cancels mined", (r) => String(r.txCancels)],
    ["skipped inside a batch", (r) => String(r.skippedInBatch)],
    ["setup, s", (r) => r.setupSeconds.toFixed(1)],
  ];
  const header = ["", ...modes];
  const body = rows.map(([label, f]) => [label, ...modes.map((m) => f(results[m] as ModeResult))]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] as string).length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ");
  const out = [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line), ""];
  for (const m of modes) {
    const r = results[m] as ModeResult;
    const methods = Object.entries(r.rpcByMethod)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    const blocks = perBlockText(r.perBlock);
    out.push(`${m}: RPC by method: ${methods}`);
    out.push(`${m}: liquidations per block after the price block: ${blocks}`);
    if (r.rpcPerLiquidationUntilConfirmed !== undefined) {
      out.push(
        `${m}: RPC calls per liquidation until the executor had confirmed all: ${r.rpcPerLiquidationUntilConfirmed}`,
      );
    }
    if (r.keeperStats) {
      out.push(
        `${m}: executor stats: ${Object.entries(r.keeperStats)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")}`,
      );
    }
  }
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  if (TRACE_RPC) traceFile = createWriteStream(TRACE_RPC, { flags: "w" });
  log(
    `bench:exec on ${machine.cpu} (${machine.cores} cores), node ${machine.node}: N=${N}, baseline M=${M}, ` +
      `${MARKETS} markets, modes ${MODES.join(", ")}`,
  );
  const results: Partial<Record<"batched" | "first" | "single" | "baseline", ModeResult>> = {};
  if (MODES.includes("batched")) results.batched = await runKeeperMode("batched", N);
  if (MODES.includes("first")) results.first = await runKeeperMode("first", N);
  if (MODES.includes("single")) results.single = await runKeeperMode("single", N);
  if (MODES.includes("baseline")) results.baseline = await runBaseline(M);

  const text = [
    `machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, ${machine.platform}`,
    `scenario: ${N} positions liquidatable by one price block (every market -${CRASH_PERCENT}%), ${HEALTHY} healthy, ` +
      `${MARKETS} markets, Anvil 1-second blocks, block gas limit ${
        (results.batched ?? results.single ?? results.baseline)?.blockGasLimit.toLocaleString("en-US") ?? "?"
      }; baseline on ${M} liquidations`,
    "",
    table(results),
    "",
    "times from the keeper's tick that first saw the price block; broadcasts = eth_sendRawTransaction at the proxy",
    "until all were included; RPC counted at the proxy (batch elements one by one) from the price block until all",
    "were included; gas = all our mined transactions after the price block; physical limit = ceil(N x gas per",
    "liquidation / block gas limit).",
  ].join("\n");
  process.stdout.write(`${text}\n`);

  if (json) {
    const pick = (r: ModeResult) => ({
      liquidations: r.liquidations,
      firstBroadcastMs: r.firstBroadcastMs,
      lastBroadcastMs: r.lastBroadcastMs,
      blocksToInclude: r.blocksToInclude,
      physicalLimitBlocks: r.physicalLimitBlocks,
      gasPerLiquidation: r.gasPerLiquidation,
      rpcPerLiquidation: r.rpcPerLiquidation,
      txReverted: r.txReverted,
      txSent: r.txSent,
      txMined: r.txMined,
      allIncludedMs: r.allIncludedMs,
      rpcByMethod: r.rpcByMethod,
    });
    const best = results.batched ?? results.single;
    const out = {
      bench: "exec",
      ...(best ? pick(best) : { liquidations: N }),
      first: results.first ? pick(results.first) : undefined,
      single: results.single ? pick(results.single) : undefined,
      baseline: results.baseline
        ? {
            liquidations: results.baseline.liquidations,
            lastBroadcastMs: results.baseline.lastBroadcastMs,
            blocksToInclude: results.baseline.blocksToInclude,
            rpcPerLiquidation: results.baseline.rpcPerLiquidation,
            firstBroadcastMs: results.baseline.firstBroadcastMs,
            gasPerLiquidation: results.baseline.gasPerLiquidation,
            physicalLimitBlocks: results.baseline.physicalLimitBlocks,
            txReverted: results.baseline.txReverted,
          }
        : undefined,
      markets: MARKETS,
      healthyPositions: HEALTHY,
      blockGasLimit: best?.blockGasLimit ?? results.baseline?.blockGasLimit,
      machine,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  }
}

(stringArg("--exchange") === "perp-v2"
  ? import("./lib/benchExecPerpV2.ts").then((m) => m.runPerpV2ExecBench())
  : main()
)
  .catch((error: unknown) => {
    process.stderr.write(
      `bench:exec failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  })
  .finally(() => {
    keeperLogFile?.end();
    traceFile?.end();
    // leftover sockets or timers of a stopped keeper must not keep the process alive
    setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
  });

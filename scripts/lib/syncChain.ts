/**
 * Builds, fast, a PerpEngine chain holding a given number of position events (PositionChanged + MarginChanged) on a
 * local Anvil, for bench:sync.
 *
 * The exchange is deployed as the devnet deploys it (DevExchange.deploy: collateral, Chainlink mocks, Multicall3);
 * then Anvil's automine is switched off and every trader is impersonated (anvil_autoImpersonateAccount): their
 * transactions go to the pool as eth_sendTransaction with explicit nonces, in JSON-RPC batches, unsigned (Anvil
 * skips the signature of an impersonated sender, so nothing is signed in JS), and blocks are mined on demand.
 *
 * - funding: each trader gets gas money (anvil_setBalance), collateral (the owner's mint) and the engine's approval;
 * - events: op i belongs to trader i % T, as that trader's op k = floor(i / T), in market (trader + k) % M: the first
 *   M ops of a trader open one position per market (2x-5x, long or short), the next ones cycle through addMargin,
 *   an increase (+10% of the opening size, with its margin) and a decrease (-5%); each op emits exactly one
 *   PositionChanged or MarginChanged (plus the engine's FundingUpdated, once per market and block);
 * - layout: `eventsPerBlock` ops per block; with `blocks` above the blocks that takes, empty blocks after each
 *   (anvil_mine) spread the events over about `blocks` blocks (costly on Anvil 1.7.1 once the state is large).
 * At the end the pool must be empty and the position events on chain (counted with eth_getLogs) exactly `events`:
 * a transaction that reverted would show as a missing event.
 *
 * A few traders (the reorganisation's) have private keys: the bench signs their replacement transactions itself.
 */
import {
  type Address,
  encodeEventTopics,
  encodeFunctionData,
  getAddress,
  type Hex,
  keccak256,
  type PrivateKeyAccount,
  parseUnits,
  stringToHex,
  toHex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { testUSDCAbi } from "../../abi/TestUSDC.ts";
import { COLLATERAL_DECIMALS, DevExchange, type MarketSpec, ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ceilMul, WAD } from "../../src/protocol/perpEngine/math.ts";
import { checkAnswers, type RpcCall, rawGetLogs, rpc, rpcBatch } from "./rpc.ts";

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

export function marketSpecs(count: number): MarketSpec[] {
  return Array.from({ length: count }, (_, i) => {
    const [name, price, mmr, funding] = TEMPLATES[i % TEMPLATES.length] as (typeof TEMPLATES)[number];
    return {
      name: i < TEMPLATES.length ? name : `${name.split("-")[0]}${Math.floor(i / TEMPLATES.length)}-USD`,
      price,
      initialMarginRatio: "0.05",
      maintenanceMarginRatio: mmr,
      liquidationFeeRatio: "0.005",
      tradingFeeRatio: "0.0005",
      // mined blocks run ahead of the wall clock (a second each): the oracles are never refreshed during the bench
      maxOracleAge: 30 * 86_400,
      fundingRatePerSecond: funding,
    };
  });
}

export const FEES = { maxFeePerGas: parseUnits("50", 9), maxPriorityFeePerGas: parseUnits("1", 9) } as const;
const RPC_FEES = { maxFeePerGas: toHex(FEES.maxFeePerGas), maxPriorityFeePerGas: toHex(FEES.maxPriorityFeePerGas) };
/** Gas limits given (measured: open 146k, increase 95k, decrease 78k, addMargin 82k). */
export const OPEN_GAS = 250_000n;
const MODIFY_GAS = 160_000n;

export const POSITION_EVENT_TOPICS: readonly Hex[] = [
  (encodeEventTopics({ abi: perpEngineAbi, eventName: "PositionChanged" }) as Hex[])[0] as Hex,
  (encodeEventTopics({ abi: perpEngineAbi, eventName: "MarginChanged" }) as Hex[])[0] as Hex,
];

export interface SyncChainOptions {
  readonly url: string;
  readonly events: number;
  readonly markets: number;
  readonly traders: number;
  /** Blocks the events should span, about. */
  readonly blocks: number;
  readonly eventsPerBlock: number;
  /** Traders with private keys, funded but without positions (for the reorganisation). */
  readonly keyedTraders: number;
  readonly log: (message: string) => void;
}

export interface SyncChain {
  readonly ex: DevExchange;
  readonly specs: readonly MarketSpec[];
  readonly owner: Address;
  /** The impersonated traders, with their next nonce. */
  readonly traders: readonly Address[];
  readonly nextNonce: number[];
  readonly keyed: readonly PrivateKeyAccount[];
  /** PositionChanged + MarginChanged on chain, counted. */
  readonly positionEvents: number;
  /** Open positions the ops leave (one per trader and market opened). */
  readonly positions: number;
  readonly head: bigint;
  readonly txBlocks: number;
  readonly blocksPerTxBlock: number;
  readonly setupMs: number;
}

/** A trader's opening size in a market and side: margin 1,000-1,900 at 2x-5x, long when trader + market is even. */
export interface Opening {
  readonly size: bigint;
  readonly margin: bigint;
}

export function opening(specs: readonly MarketSpec[], trader: number, marketId: number): Opening {
  const spec = specs[marketId] as MarketSpec;
  const price = parseUnits(spec.price, ORACLE_DECIMALS) * 10n ** BigInt(18 - ORACLE_DECIMALS);
  const margin = parseUnits(String(1000 + 100 * (trader % 10)), 18);
  const size = (margin * BigInt(2 + (trader % 4)) * WAD) / price;
  return { size: (trader + marketId) % 2 === 0 ? size : -size, margin };
}

const SCALE = 10n ** BigInt(18 - COLLATERAL_DECIMALS);

/** The deposit (collateral units) that leaves `marginWad` after the trading fee of `sizeDelta`. */
export function depositFor(spec: MarketSpec, sizeDelta: bigint, marginWad: bigint): bigint {
  const price = parseUnits(spec.price, ORACLE_DECIMALS) * 10n ** BigInt(18 - ORACLE_DECIMALS);
  const abs = sizeDelta < 0n ? -sizeDelta : sizeDelta;
  const fee = ceilMul(ceilMul(abs, price), parseUnits(spec.tradingFeeRatio, 18));
  return (marginWad + fee + SCALE - 1n) / SCALE;
}

const ADD_MARGIN = parseUnits("10", COLLATERAL_DECIMALS);

interface Op {
  readonly trader: number;
  readonly nonce: number;
  readonly marketId: number;
  readonly kind: "open" | "addMargin" | "increase" | "decrease";
}

function opAt(i: number, traders: number, markets: number): Op {
  const trader = i % traders;
  const k = Math.floor(i / traders);
  const marketId = (trader + k) % markets;
  const kinds = ["addMargin", "increase", "decrease"] as const;
  const kind = k < markets ? "open" : kinds[Math.floor((k - markets) / markets) % 3];
  return { trader, nonce: 1 + k, marketId, kind: kind as Op["kind"] };
}

/** What an op sends: calldata, gas limit, and the collateral it spends. */
function callOf(specs: readonly MarketSpec[], op: Op): { data: Hex; gas: bigint; spends: bigint } {
  const spec = specs[op.marketId] as MarketSpec;
  const o = opening(specs, op.trader, op.marketId);
  const trade = (sizeDelta: bigint, deposit: bigint) =>
    encodeFunctionData({ abi: perpEngineAbi, functionName: "trade", args: [BigInt(op.marketId), sizeDelta, deposit] });
  switch (op.kind) {
    case "open": {
      const deposit = depositFor(spec, o.size, o.margin);
      return { data: trade(o.size, deposit), gas: OPEN_GAS, spends: deposit };
    }
    case "increase": {
      const deposit = depositFor(spec, o.size / 10n, o.margin / 10n);
      return { data: trade(o.size / 10n, deposit), gas: MODIFY_GAS, spends: deposit };
    }
    case "decrease":
      return { data: trade(-o.size / 20n, 0n), gas: MODIFY_GAS, spends: 0n };
    case "addMargin":
      return {
        data: encodeFunctionData({
          abi: perpEngineAbi,
          functionName: "addMargin",
          args: [BigInt(op.marketId), ADD_MARGIN],
        }),
        gas: MODIFY_GAS,
        spends: ADD_MARGIN,
      };
  }
}

function sendCall(from: Address, to: Address, data: Hex, gas: bigint, nonce: number): RpcCall {
  return {
    method: "eth_sendTransaction",
    params: [{ from, to, data, gas: toHex(gas), nonce: toHex(nonce), ...RPC_FEES }],
  };
}

/** Mines blocks (evm_mine) until Anvil's pool is empty; returns how many. */
export async function mineAll(url: string): Promise<number> {
  let blocks = 0;
  for (;;) {
    const status = await rpc<{ pending: Hex; queued: Hex }>(url, "txpool_status");
    if (BigInt(status.pending) === 0n) {
      if (BigInt(status.queued) !== 0n) throw new Error(`${BigInt(status.queued)} transactions queued (nonce gaps)`);
      return blocks;
    }
    if (blocks >= 10_000) throw new Error(`the pool still holds ${BigInt(status.pending)} transactions`);
    await rpc(url, "evm_mine");
    blocks++;
  }
}

/** A deterministic address that nobody holds a key of (impersonated). */
function traderAddress(i: number): Address {
  return getAddress(`0x${keccak256(stringToHex(`perp-keeper bench:sync trader ${i}`)).slice(26)}`);
}

export function keyedAccount(i: number): PrivateKeyAccount {
  return privateKeyToAccount(keccak256(stringToHex(`perp-keeper bench:sync keyed trader ${i}`)));
}

export async function buildSyncChain(o: SyncChainOptions): Promise<SyncChain> {
  const started = performance.now();
  const { url, log } = o;
  if (o.traders < 1 || o.markets < 1 || o.events < 1) throw new Error("events, traders and markets must be positive");
  const specs = marketSpecs(o.markets);
  const ex = await DevExchange.deploy(url, specs);
  const d = ex.d;
  const owner = (await rpc<Address[]>(url, "eth_accounts"))[0] as Address;
  log(`  deployed the exchange (${o.markets} markets) at ${d.engine}, block ${d.deployBlock}`);

  await rpc(url, "evm_setAutomine", [false]);
  await rpc(url, "anvil_autoImpersonateAccount", [true]);

  const traders = Array.from({ length: o.traders }, (_, i) => traderAddress(i));
  const keyed = Array.from({ length: o.keyedTraders }, (_, i) => keyedAccount(i));
  // collateral each trader spends over its ops, plus slack (and a fixed amount for the keyed traders)
  const spends = new Array<bigint>(o.traders).fill(0n);
  const opsPerTrader = new Array<number>(o.traders).fill(0);
  for (let i = 0; i < o.events; i++) {
    const op = opAt(i, o.traders, o.markets);
    spends[op.trader] = (spends[op.trader] as bigint) + callOf(specs, op).spends;
    opsPerTrader[op.trader] = (opsPerTrader[op.trader] as number) + 1;
  }
  const everyone = [...traders, ...keyed.map((a) => a.address)];
  const mints = [
    ...spends.map((s) => s + parseUnits("1000", COLLATERAL_DECIMALS)),
    ...keyed.map(() => parseUnits("1000000", COLLATERAL_DECIMALS)),
  ];
  checkAnswers(
    await rpcBatch(
      url,
      everyone.map((a) => ({ method: "anvil_setBalance", params: [a, toHex(parseUnits("1000", 18))] })),
    ),
    "anvil_setBalance",
  );
  let ownerNonce = Number(BigInt(await rpc<Hex>(url, "eth_getTransactionCount", [owner, "pending"])));
  const approve = encodeFunctionData({ abi: testUSDCAbi, functionName: "approve", args: [d.engine, 2n ** 256n - 1n] });
  const funding = everyone.flatMap((trader, i) => [
    sendCall(
      owner,
      d.collateral,
      encodeFunctionData({ abi: testUSDCAbi, functionName: "mint", args: [trader, mints[i] as bigint] }),
      100_000n,
      ownerNonce++,
    ),
    sendCall(trader, d.collateral, approve, 100_000n, 0),
  ]);
  checkAnswers(await rpcBatch(url, funding), "funding");
  const fundingBlocks = await mineAll(url);
  log(`  funded ${everyone.length} traders in ${fundingBlocks} blocks (${Math.round(performance.now() - started)} ms)`);

  // the events: eventsPerBlock ops in a block, then empty blocks to spread them over about `blocks` blocks
  const perBlock = Math.max(1, o.eventsPerBlock);
  const txBlocks = Math.ceil(o.events / perBlock);
  const spacing = Math.max(1, Math.floor(o.blocks / txBlocks));
  const eventsStarted = performance.now();
  let reported = eventsStarted;
  for (let b = 0; b < txBlocks; b++) {
    const calls: RpcCall[] = [];
    for (let i = b * perBlock; i < Math.min(o.events, (b + 1) * perBlock); i++) {
      const op = opAt(i, o.traders, o.markets);
      const call = callOf(specs, op);
      calls.push(sendCall(traders[op.trader] as Address, d.engine, call.data, call.gas, op.nonce));
    }
    checkAnswers(await rpcBatch(url, calls), `events block ${b}`);
    await rpc(url, "anvil_mine", [toHex(spacing)]);
    if (performance.now() - reported > 10_000) {
      reported = performance.now();
      const done = Math.min(o.events, (b + 1) * perBlock);
      const rate = done / ((reported - eventsStarted) / 1000);
      log(`  ... ${done} of ${o.events} events sent and mined (${Math.round(rate)}/s)`);
    }
  }
  const extra = await mineAll(url);
  const head = BigInt(await rpc<Hex>(url, "eth_blockNumber"));
  log(
    `  ${o.events} ops in ${txBlocks} blocks (${spacing} blocks apart${extra ? `, ${extra} more to empty the pool` : ""}), ` +
      `head ${head}, ${Math.round(performance.now() - eventsStarted)} ms`,
  );

  const counted = await rawGetLogs(url, {
    address: d.engine,
    fromBlock: d.deployBlock,
    toBlock: head,
    maxRange: 2000n,
    concurrency: 4,
    topics: [POSITION_EVENT_TOPICS],
  });
  if (counted.logs !== o.events) {
    throw new Error(
      `the chain holds ${counted.logs} position events, ${o.events} intended: some transactions reverted or were lost`,
    );
  }
  const positions = opsPerTrader.reduce((s, n) => s + Math.min(n, o.markets), 0);
  return {
    ex,
    specs,
    owner,
    traders,
    nextNonce: opsPerTrader.map((n) => 1 + n),
    keyed,
    positionEvents: counted.logs,
    positions,
    head,
    txBlocks,
    blocksPerTxBlock: spacing,
    setupMs: performance.now() - started,
  };
}

/** Calldata and collateral of an addMargin (for activity in blocks a reorganisation removes). */
export function addMarginCall(marketId: number): { data: Hex; gas: bigint } {
  return {
    data: encodeFunctionData({ abi: perpEngineAbi, functionName: "addMargin", args: [BigInt(marketId), ADD_MARGIN] }),
    gas: MODIFY_GAS,
  };
}

/** Calldata of a keyed trader's opening trade in a market. */
export function openCall(specs: readonly MarketSpec[], trader: number, marketId: number): { data: Hex; gas: bigint } {
  const o = opening(specs, trader, marketId);
  const deposit = depositFor(specs[marketId] as MarketSpec, o.size, o.margin);
  return {
    data: encodeFunctionData({ abi: perpEngineAbi, functionName: "trade", args: [BigInt(marketId), o.size, deposit] }),
    gas: OPEN_GAS,
  };
}

export { sendCall };

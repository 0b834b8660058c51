/**
 * The adapter for the reference PerpEngine: which logs to index and how to decode them into exchange events.
 * Another protocol plugs in beside it with its own decoder and margin rules.
 */
import {
  type Address,
  decodeErrorResult,
  encodeFunctionData,
  getAddress,
  type Hex,
  hexToString,
  isAddressEqual,
  type Log,
  type PublicClient,
  parseEventLogs,
  toEventSelector,
} from "viem";
import { perpEngineAbi } from "../../../abi/PerpEngine.ts";
import { KeeperError } from "../../errors.ts";
import type { LogRef } from "../../state/events.ts";
import type { ChainLog, LiquidationProtocol, LiquidationTarget, TargetOutcome } from "../adapter.ts";
import { eventDecoder } from "../eventDecoder.ts";
import { positionKey } from "./book.ts";
import { perpEngineCompetitors } from "./competitors.ts";
import type { ExchangeEvent } from "./events.ts";

export { perpEngineAbi };

/** The events the keeper rebuilds its state from. */
export const PERP_ENGINE_EVENTS = perpEngineAbi.filter((item) => item.type === "event");

/** A log the keeper cannot decode (most likely exchange.address names another contract): exit 2, never retried. */
export class LogDecodeError extends KeeperError {
  override name = "LogDecodeError";
  readonly retryable = false;
  readonly exitCode = 2;
}

/** The last raw block number parsed: the logs of one block come together, so it is parsed once per block. */
let lastBlockHex: string | undefined;
let lastBlock = 0n;

function refOf(log: ChainLog): LogRef {
  const { blockNumber, logIndex, blockHash, transactionHash } = log;
  if (blockNumber === null || logIndex === null || blockHash === null || transactionHash === null) {
    throw new LogDecodeError("log without block position (pending logs are not indexed)");
  }
  let block: bigint;
  if (typeof blockNumber === "bigint") block = blockNumber;
  else if (blockNumber === lastBlockHex) block = lastBlock;
  else {
    block = BigInt(blockNumber);
    lastBlockHex = blockNumber;
    lastBlock = block;
  }
  return {
    blockNumber: block,
    logIndex: typeof logIndex === "number" ? logIndex : Number(logIndex),
    blockHash,
    transactionHash,
  };
}

function marketIdOf(id: bigint): number {
  if (id > BigInt(Number.MAX_SAFE_INTEGER)) throw new LogDecodeError(`market id ${id} out of range`);
  return Number(id);
}

/** Every field of the PerpEngine events the keeper reads, typed as the decoder gives them (by the ABI). */
interface PerpEngineArgs {
  readonly trader: Address;
  readonly keeper: Address;
  readonly oracle: Address;
  readonly name: Hex;
  readonly marketId: bigint;
  readonly sizeDelta: bigint;
  readonly marginDelta: bigint;
  readonly price: bigint;
  readonly size: bigint;
  readonly openNotional: bigint;
  readonly margin: bigint;
  readonly fundingIndex: bigint;
  readonly cumulativeFundingIndex: bigint;
  readonly fundingRatePerSecond: bigint;
  readonly timestamp: bigint;
  readonly marginBalance: bigint;
  readonly keeperReward: bigint;
  readonly badDebt: bigint;
  readonly priceScale: bigint;
  readonly initialMarginRatio: bigint;
  readonly maintenanceMarginRatio: bigint;
  readonly liquidationFeeRatio: bigint;
  readonly tradingFeeRatio: bigint;
  readonly maxOracleAge: bigint;
}

/** Selectors and field layouts computed once (src/protocol/eventDecoder.ts), not per log. */
const decodeEvent = eventDecoder(PERP_ENGINE_EVENTS);

const TWO_255 = 1n << 255n;
const TWO_256 = 1n << 256n;

/** Where each field of an event sits: its topic (indexed) or its data word, from the ABI, computed once. */
function fieldsOf(name: string): { selector: Hex; topic: Record<string, number>; word: Record<string, number> } {
  const event = PERP_ENGINE_EVENTS.find((e) => e.name === name);
  if (!event) throw new Error(`PerpEngine ABI has no event ${name}`);
  const topic: Record<string, number> = {};
  const word: Record<string, number> = {};
  let t = 1;
  let w = 0;
  for (const input of event.inputs) {
    if ("indexed" in input && input.indexed) topic[input.name] = t++;
    else word[input.name] = w++;
  }
  return { selector: toEventSelector(event), topic, word };
}

/**
 * The hot events (every position change of a backfill) read straight from their words: one BigInt per field the
 * book needs, objects of one shape. Any other event goes through the generic decoder.
 */
function fastDecoder(): (log: ChainLog) => ExchangeEvent | undefined | null {
  const checksums = new Map<string, Address>();
  const address = (topic: Hex): Address => {
    let a = checksums.get(topic);
    if (a === undefined) {
      a = getAddress(`0x${topic.slice(26)}`);
      checksums.set(topic, a);
    }
    return a;
  };
  const pc = fieldsOf("PositionChanged");
  const mc = fieldsOf("MarginChanged");
  const pl = fieldsOf("PositionLiquidated");
  const fu = fieldsOf("FundingUpdated");
  const sizes = new Map<string, number>([
    [pc.selector, Object.keys(pc.word).length],
    [mc.selector, Object.keys(mc.word).length],
    [pl.selector, Object.keys(pl.word).length],
    [fu.selector, Object.keys(fu.word).length],
  ]);
  // market ids come as topics: parsed once each
  const marketIds = new Map<string, number>();
  const market = (topic: Hex): number => {
    let id = marketIds.get(topic);
    if (id === undefined) {
      id = marketIdOf(BigInt(topic));
      marketIds.set(topic, id);
    }
    return id;
  };
  const u = (data: string, i: number | undefined): bigint =>
    BigInt(`0x${data.slice(2 + 64 * (i ?? 0), 66 + 64 * (i ?? 0))}`);
  const i256 = (data: string, i: number | undefined): bigint => {
    const v = u(data, i);
    return v >= TWO_255 ? v - TWO_256 : v;
  };
  return (log) => {
    const t = log.topics;
    const selector = t[0];
    const words = selector === undefined ? undefined : sizes.get(selector);
    if (words === undefined) return undefined; // not a hot event: the generic decoder
    const d = log.data;
    // malformed: the generic decoder says so
    if (d.length < 2 + 64 * words) return null;
    if (selector === pc.selector && t.length === 3) {
      return {
        kind: "positionChanged",
        ref: refOf(log),
        trader: address(t[1] as Hex),
        marketId: market(t[2] as Hex),
        sizeDelta: i256(d, pc.word.sizeDelta),
        price: u(d, pc.word.price),
        size: i256(d, pc.word.size),
        openNotional: u(d, pc.word.openNotional),
        margin: i256(d, pc.word.margin),
        fundingIndex: i256(d, pc.word.fundingIndex),
      };
    }
    if (selector === mc.selector && t.length === 3) {
      return {
        kind: "marginChanged",
        ref: refOf(log),
        trader: address(t[1] as Hex),
        marketId: market(t[2] as Hex),
        marginDelta: i256(d, mc.word.marginDelta),
        size: i256(d, mc.word.size),
        openNotional: u(d, mc.word.openNotional),
        margin: i256(d, mc.word.margin),
        fundingIndex: i256(d, mc.word.fundingIndex),
      };
    }
    if (selector === pl.selector && t.length === 4) {
      return {
        kind: "positionLiquidated",
        ref: refOf(log),
        trader: address(t[1] as Hex),
        marketId: market(t[2] as Hex),
        keeper: address(t[3] as Hex),
        size: i256(d, pl.word.size),
        price: u(d, pl.word.price),
        marginBalance: i256(d, pl.word.marginBalance),
        keeperReward: u(d, pl.word.keeperReward),
        badDebt: u(d, pl.word.badDebt),
      };
    }
    if (selector === fu.selector && t.length === 2) {
      return {
        kind: "fundingUpdated",
        ref: refOf(log),
        marketId: market(t[1] as Hex),
        cumulativeFundingIndex: i256(d, fu.word.cumulativeFundingIndex),
        fundingRatePerSecond: i256(d, fu.word.fundingRatePerSecond),
        timestamp: u(d, fu.word.timestamp),
      };
    }
    return null;
  };
}

const decodeHot = fastDecoder();

/** The selectors (first topics) of the events PerpEngine's ABI declares. */
const KNOWN_SELECTORS = new Set(PERP_ENGINE_EVENTS.map((e) => toEventSelector(e).toLowerCase()));

/**
 * Decodes PerpEngine logs (from one address) into exchange events, in the order given, in one pass. A log of an
 * event the ABI does not declare (an upgrade that added one) is handed to `onUnknown` and skipped: it changes nothing
 * the keeper models. Without `onUnknown`, and for a declared event that does not decode, it is a LogDecodeError.
 */
export function decodePerpEngineLogs(logs: readonly ChainLog[], onUnknown?: (log: ChainLog) => void): ExchangeEvent[] {
  const events: ExchangeEvent[] = [];
  for (const log of logs) {
    const hot = decodeHot(log);
    if (hot) {
      events.push(hot);
      continue;
    }
    if (hot === null) throw new LogDecodeError("a malformed PerpEngine log: check exchange.address");
    if (onUnknown && !KNOWN_SELECTORS.has(String(log.topics[0]).toLowerCase())) {
      onUnknown(log);
      continue;
    }
    const decoded = decodeEvent(log);
    if (!decoded) throw new LogDecodeError("a log of an unknown or malformed event: check exchange.address");
    const a = decoded.args as unknown as PerpEngineArgs;
    const ref = refOf(log);
    switch (decoded.eventName) {
      case "PositionChanged":
        events.push({
          kind: "positionChanged",
          ref,
          trader: a.trader,
          marketId: marketIdOf(a.marketId),
          sizeDelta: a.sizeDelta,
          price: a.price,
          size: a.size,
          openNotional: a.openNotional,
          margin: a.margin,
          fundingIndex: a.fundingIndex,
        });
        break;
      case "MarginChanged":
        events.push({
          kind: "marginChanged",
          ref,
          trader: a.trader,
          marketId: marketIdOf(a.marketId),
          marginDelta: a.marginDelta,
          size: a.size,
          openNotional: a.openNotional,
          margin: a.margin,
          fundingIndex: a.fundingIndex,
        });
        break;
      case "FundingUpdated":
        events.push({
          kind: "fundingUpdated",
          ref,
          marketId: marketIdOf(a.marketId),
          cumulativeFundingIndex: a.cumulativeFundingIndex,
          fundingRatePerSecond: a.fundingRatePerSecond,
          timestamp: a.timestamp,
        });
        break;
      case "PositionLiquidated":
        events.push({
          kind: "positionLiquidated",
          ref,
          trader: a.trader,
          marketId: marketIdOf(a.marketId),
          keeper: a.keeper,
          size: a.size,
          price: a.price,
          marginBalance: a.marginBalance,
          keeperReward: a.keeperReward,
          badDebt: a.badDebt,
        });
        break;
      case "MarketListed":
        events.push({
          kind: "marketListed",
          ref,
          marketId: marketIdOf(a.marketId),
          name: hexToString(a.name, { size: 32 }).replace(/\0+$/, ""),
          oracle: a.oracle,
          priceScale: a.priceScale,
          initialMarginRatio: a.initialMarginRatio,
          maintenanceMarginRatio: a.maintenanceMarginRatio,
          liquidationFeeRatio: a.liquidationFeeRatio,
          tradingFeeRatio: a.tradingFeeRatio,
          maxOracleAge: a.maxOracleAge,
        });
        break;
      default:
        break; // governance events the risk model does not need (OwnershipTransferred)
    }
  }
  return events;
}

/** Whether the contract at `address` answers as a PerpEngine (its marketCount view), so a wrong address fails early. */
export async function isPerpEngine(client: PublicClient, address: Address): Promise<boolean> {
  try {
    await client.readContract({ address, abi: perpEngineAbi, functionName: "marketCount" });
    await client.readContract({ address, abi: perpEngineAbi, functionName: "collateralScale" });
    return true;
  } catch {
    return false;
  }
}

/** LiquidationSkipped reasons, as the contract numbers them. */
const SKIP_REASONS = { 1: "no_position", 2: "not_liquidatable" } as const;

/**
 * The most gas PerpEngine's liquidate(trader, marketId) takes, any path (bad debt, a fresh funding index, cold
 * storage): about twice the 140k it measures (test/e2e/race.test.ts checks receipts against it).
 */
export const PERP_ENGINE_SINGLE_GAS_BOUND = 300_000n;

/** The executor's view of PerpEngine: liquidate, liquidateMany, and what their logs say. */
export function perpEngineProtocol(address: Address): LiquidationProtocol {
  return {
    address,
    firstOutGas: () => PERP_ENGINE_SINGLE_GAS_BOUND,
    encodeSingle: (t: LiquidationTarget) =>
      encodeFunctionData({ abi: perpEngineAbi, functionName: "liquidate", args: [t.trader, BigInt(t.marketId)] }),
    encodeBatch: (targets: readonly LiquidationTarget[]) =>
      encodeFunctionData({
        abi: perpEngineAbi,
        functionName: "liquidateMany",
        args: [targets.map((t) => t.trader), targets.map((t) => BigInt(t.marketId))],
      }),
    outcomes(logs: readonly Log[]): Map<string, TargetOutcome> {
      const mine = logs.filter((l) => isAddressEqual(l.address, address));
      const found = new Map<string, TargetOutcome>();
      for (const log of parseEventLogs({ abi: perpEngineAbi, logs: mine as Log[] })) {
        if (log.eventName === "PositionLiquidated") {
          const key = positionKey(marketIdOf(log.args.marketId), log.args.trader);
          const { keeper, keeperReward: reward, badDebt } = log.args;
          found.set(key, { kind: "liquidated", keeper, reward, badDebt });
        } else if (log.eventName === "LiquidationSkipped") {
          const key = positionKey(marketIdOf(log.args.marketId), log.args.trader);
          const reason = SKIP_REASONS[log.args.reason as 1 | 2] ?? "not_liquidatable";
          if (!found.has(key)) found.set(key, { kind: "skipped", reason });
        }
      }
      return found;
    },
    revertName(data: Hex | undefined): string | undefined {
      if (!data || data.length < 10) return undefined;
      try {
        return decodeErrorResult({ abi: perpEngineAbi, data }).errorName;
      } catch {
        return undefined;
      }
    },
    competitorTargets: perpEngineCompetitors(address),
  };
}

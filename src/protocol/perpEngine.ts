/**
 * The adapter for the reference PerpEngine: which logs to index and how to decode them into exchange events.
 * Another protocol plugs in beside it with its own decoder and margin rules.
 */
import {
  type Address,
  decodeErrorResult,
  encodeFunctionData,
  type Hex,
  hexToString,
  isAddressEqual,
  type Log,
  type PublicClient,
  parseEventLogs,
} from "viem";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { positionKey } from "../state/book.ts";
import type { ExchangeEvent, LogRef } from "../state/events.ts";
import type { ChainLog, LiquidationProtocol, LiquidationTarget, TargetOutcome } from "./adapter.ts";
import { eventDecoder } from "./eventDecoder.ts";

export { perpEngineAbi };

/** The events the keeper rebuilds its state from. */
export const PERP_ENGINE_EVENTS = perpEngineAbi.filter((item) => item.type === "event");

export class LogDecodeError extends Error {
  override name = "LogDecodeError";
}

function refOf(log: ChainLog): LogRef {
  const { blockNumber, logIndex, blockHash, transactionHash } = log;
  if (blockNumber === null || logIndex === null || blockHash === null || transactionHash === null) {
    throw new LogDecodeError("log without block position (pending logs are not indexed)");
  }
  return {
    blockNumber: typeof blockNumber === "bigint" ? blockNumber : BigInt(blockNumber),
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

/**
 * Decodes PerpEngine logs (from one address) into exchange events, in the order given, in one pass. A log of an
 * unknown or malformed event is an error: the address or the ABI is wrong.
 */
export function decodePerpEngineLogs(logs: readonly ChainLog[]): ExchangeEvent[] {
  const events: ExchangeEvent[] = [];
  for (const log of logs) {
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

/** The executor's view of PerpEngine: liquidate, liquidateMany, and what their logs say. */
export function perpEngineProtocol(address: Address): LiquidationProtocol {
  return {
    address,
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
  };
}

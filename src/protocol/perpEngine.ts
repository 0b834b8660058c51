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
import type { LiquidationProtocol, LiquidationTarget, TargetOutcome } from "./adapter.ts";
import { eventDecoder } from "./eventDecoder.ts";

export { perpEngineAbi };

/** The events the keeper rebuilds its state from. */
export const PERP_ENGINE_EVENTS = perpEngineAbi.filter((item) => item.type === "event");

export class LogDecodeError extends Error {
  override name = "LogDecodeError";
}

function refOf(log: Log): LogRef {
  if (log.blockNumber === null || log.logIndex === null || log.blockHash === null || log.transactionHash === null) {
    throw new LogDecodeError("log without block position (pending logs are not indexed)");
  }
  return {
    blockNumber: log.blockNumber,
    logIndex: log.logIndex,
    blockHash: log.blockHash,
    transactionHash: log.transactionHash,
  };
}

function marketIdOf(id: bigint): number {
  if (id > BigInt(Number.MAX_SAFE_INTEGER)) throw new LogDecodeError(`market id ${id} out of range`);
  return Number(id);
}

/** A PerpEngine log with its event name and typed arguments, as viem's parseEventLogs would give it. */
type ParsedPerpEngineLog = ReturnType<typeof parseEventLogs<typeof perpEngineAbi>>[number];

/** Selectors and field layouts computed once (src/protocol/eventDecoder.ts), not per log. */
const decodeEvent = eventDecoder(PERP_ENGINE_EVENTS);

/** Decodes PerpEngine logs (from one address) into exchange events, in the order given. */
export function decodePerpEngineLogs(logs: readonly Log[]): ExchangeEvent[] {
  const parsed: ParsedPerpEngineLog[] = [];
  for (const log of logs) {
    const decoded = decodeEvent(log);
    if (decoded)
      parsed.push({ ...log, eventName: decoded.eventName, args: decoded.args } as unknown as ParsedPerpEngineLog);
  }
  if (parsed.length !== logs.length) {
    throw new LogDecodeError(`decoded ${parsed.length} of ${logs.length} logs: unknown or malformed events`);
  }
  return parsed.flatMap((log): ExchangeEvent[] => {
    const ref = refOf(log);
    switch (log.eventName) {
      case "MarketListed":
        return [
          {
            kind: "marketListed",
            ref,
            marketId: marketIdOf(log.args.marketId),
            name: hexToString(log.args.name, { size: 32 }).replace(/\0+$/, ""),
            oracle: log.args.oracle,
            priceScale: log.args.priceScale,
            initialMarginRatio: log.args.initialMarginRatio,
            maintenanceMarginRatio: log.args.maintenanceMarginRatio,
            liquidationFeeRatio: log.args.liquidationFeeRatio,
            tradingFeeRatio: log.args.tradingFeeRatio,
            maxOracleAge: log.args.maxOracleAge,
          },
        ];
      case "FundingUpdated":
        return [
          {
            kind: "fundingUpdated",
            ref,
            marketId: marketIdOf(log.args.marketId),
            cumulativeFundingIndex: log.args.cumulativeFundingIndex,
            fundingRatePerSecond: log.args.fundingRatePerSecond,
            timestamp: log.args.timestamp,
          },
        ];
      case "PositionChanged":
        return [
          {
            kind: "positionChanged",
            ref,
            trader: log.args.trader,
            marketId: marketIdOf(log.args.marketId),
            sizeDelta: log.args.sizeDelta,
            price: log.args.price,
            size: log.args.size,
            openNotional: log.args.openNotional,
            margin: log.args.margin,
            fundingIndex: log.args.fundingIndex,
          },
        ];
      case "MarginChanged":
        return [
          {
            kind: "marginChanged",
            ref,
            trader: log.args.trader,
            marketId: marketIdOf(log.args.marketId),
            marginDelta: log.args.marginDelta,
            size: log.args.size,
            openNotional: log.args.openNotional,
            margin: log.args.margin,
            fundingIndex: log.args.fundingIndex,
          },
        ];
      case "PositionLiquidated":
        return [
          {
            kind: "positionLiquidated",
            ref,
            trader: log.args.trader,
            marketId: marketIdOf(log.args.marketId),
            keeper: log.args.keeper,
            size: log.args.size,
            price: log.args.price,
            marginBalance: log.args.marginBalance,
            keeperReward: log.args.keeperReward,
            badDebt: log.args.badDebt,
          },
        ];
      default:
        return []; // governance events the risk model does not need (OwnershipTransferred)
    }
  });
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

/**
 * The cross-margin exchange's logs to typed events. A log of another address is not ours (skipped); an event the
 * keeper does not use (LiquidationSkipped, OwnershipTransferred...) is skipped; a log that carries a used event's
 * selector but does not decode strictly (wrong topic count, short data, a value out of its type) throws
 * CrossMarginDecodeError: the address or the ABI is wrong, and the book must not guess. Every event carries its
 * block's time: a market's liquidation window rolls by it.
 */
import { type Address, decodeEventLog, type Hex, toEventSelector } from "viem";
import { iCrossMarginEngineAbi } from "../../../abi/ICrossMarginEngine.ts";
import { KeeperError } from "../../errors.ts";
import type { LogRef } from "../../state/events.ts";
import { logRef, type TimedChainLog } from "../adapter.ts";

export type { TimedChainLog } from "../adapter.ts";

import type { CrossMarginMarketConfig } from "./math.ts";

/** A log that carries a used event's selector but does not decode: exit 2, never retried. */
export class CrossMarginDecodeError extends KeeperError {
  override name = "CrossMarginDecodeError";
  readonly retryable = false;
  readonly exitCode = 2 as const;
}

interface Envelope {
  readonly ref: LogRef;
  /** The block's timestamp (unix seconds). */
  readonly timestamp: bigint;
}

export type CrossMarginEventBody =
  | {
      readonly kind: "globalConfigured";
      readonly minKeeperReward: bigint;
      readonly maxKeeperReward: bigint;
      readonly stepReward: bigint;
      readonly maxPriceAge: bigint;
    }
  | { readonly kind: "marketCreated"; readonly marketId: bigint; readonly name: string }
  | { readonly kind: "marketConfigured"; readonly marketId: bigint; readonly config: CrossMarginMarketConfig }
  | { readonly kind: "accountCreated"; readonly accountId: bigint; readonly owner: Address }
  | { readonly kind: "collateralModified"; readonly accountId: bigint; readonly amountDelta: bigint }
  | {
      readonly kind: "orderSettled";
      readonly marketId: bigint;
      readonly accountId: bigint;
      readonly fillPrice: bigint;
      readonly pnl: bigint;
      readonly sizeDelta: bigint;
      readonly newSize: bigint;
      readonly totalFees: bigint;
    }
  | { readonly kind: "accountFlagged"; readonly accountId: bigint; readonly flagReward: bigint }
  | {
      readonly kind: "positionLiquidated";
      readonly accountId: bigint;
      readonly marketId: bigint;
      readonly amountLiquidated: bigint;
      readonly currentPositionSize: bigint;
    }
  | {
      readonly kind: "liquidationAttempt";
      readonly accountId: bigint;
      readonly reward: bigint;
      readonly fullLiquidation: boolean;
    };

export type CrossMarginEvent = Envelope & CrossMarginEventBody;

const USED = [
  "GlobalConfigured",
  "MarketCreated",
  "MarketConfigured",
  "AccountCreated",
  "CollateralModified",
  "OrderSettled",
  "AccountFlaggedForLiquidation",
  "PositionLiquidated",
  "AccountLiquidationAttempt",
] as const;
type UsedName = (typeof USED)[number];

const SELECTORS = new Map<string, UsedName>(
  iCrossMarginEngineAbi
    .filter((item) => item.type === "event" && (USED as readonly string[]).includes(item.name))
    .map((item) => [toEventSelector(item as Parameters<typeof toEventSelector>[0]), item.name as UsedName]),
);

export interface DecodeOptions {
  /** A block's timestamp when a log carries none (an endpoint without `blockTimestamp` in its logs). */
  readonly timestampOf?: (blockNumber: bigint) => bigint | undefined;
}

function bodyOf(name: UsedName, a: Record<string, unknown>): CrossMarginEventBody {
  const big = (k: string) => a[k] as bigint;
  switch (name) {
    case "GlobalConfigured":
      return {
        kind: "globalConfigured",
        minKeeperReward: big("minKeeperRewardUsd"),
        maxKeeperReward: big("maxKeeperRewardUsd"),
        stepReward: big("stepRewardUsd"),
        maxPriceAge: big("maxPriceAge"),
      };
    case "MarketCreated":
      return { kind: "marketCreated", marketId: big("marketId"), name: a.name as string };
    case "MarketConfigured": {
      const c = a.config as Record<string, unknown>;
      const config = {
        feedId: (c.feedId as Hex).toLowerCase() as Hex,
        skewScale: c.skewScale as bigint,
        makerFeeRatio: c.makerFeeRatio as bigint,
        takerFeeRatio: c.takerFeeRatio as bigint,
        initialMarginRatio: c.initialMarginRatio as bigint,
        minimumInitialMarginRatio: c.minimumInitialMarginRatio as bigint,
        maintenanceMarginScalar: c.maintenanceMarginScalar as bigint,
        flagRewardRatio: c.flagRewardRatio as bigint,
        minimumPositionMargin: c.minimumPositionMargin as bigint,
        maxLiquidationLimitAccumulationMultiplier: c.maxLiquidationLimitAccumulationMultiplier as bigint,
        maxSecondsInLiquidationWindow: c.maxSecondsInLiquidationWindow as bigint,
      };
      return { kind: "marketConfigured", marketId: big("marketId"), config };
    }
    case "AccountCreated":
      return {
        kind: "accountCreated",
        accountId: big("accountId"),
        owner: (a.owner as Address).toLowerCase() as Address,
      };
    case "CollateralModified":
      if (big("collateralId") !== 0n) throw new CrossMarginDecodeError(`collateral id ${a.collateralId} is not 0`);
      return { kind: "collateralModified", accountId: big("accountId"), amountDelta: big("amountDelta") };
    case "OrderSettled":
      return {
        kind: "orderSettled",
        marketId: big("marketId"),
        accountId: big("accountId"),
        fillPrice: big("fillPrice"),
        pnl: big("pnl"),
        sizeDelta: big("sizeDelta"),
        newSize: big("newSize"),
        totalFees: big("totalFees"),
      };
    case "AccountFlaggedForLiquidation":
      return { kind: "accountFlagged", accountId: big("accountId"), flagReward: big("flagReward") };
    case "PositionLiquidated":
      return {
        kind: "positionLiquidated",
        accountId: big("accountId"),
        marketId: big("marketId"),
        amountLiquidated: big("amountLiquidated"),
        currentPositionSize: big("currentPositionSize"),
      };
    case "AccountLiquidationAttempt":
      return {
        kind: "liquidationAttempt",
        accountId: big("accountId"),
        reward: big("reward"),
        fullLiquidation: a.fullLiquidation as boolean,
      };
  }
}

export interface CrossMarginDecoder {
  /** The exchange, lower case: the only address whose logs are its events. */
  readonly addresses: readonly Address[];
  /** One log: its event, or undefined when it is not one the keeper uses. Throws CrossMarginDecodeError when malformed. */
  decodeLog(log: TimedChainLog, options?: DecodeOptions): CrossMarginEvent | undefined;
  /** Logs in chain order to events (skipping what is not used), in the same order. */
  decode(logs: readonly TimedChainLog[], options?: DecodeOptions): CrossMarginEvent[];
}

export function crossMarginDecoder(engine: Address): CrossMarginDecoder {
  const address = engine.toLowerCase();
  const decodeLog = (log: TimedChainLog, options?: DecodeOptions): CrossMarginEvent | undefined => {
    if (String(log.address).toLowerCase() !== address) return undefined;
    const topic0 = log.topics[0];
    const name = topic0 === undefined ? undefined : SELECTORS.get(topic0.toLowerCase());
    if (!name) return undefined;
    const ref = logRef(log, (m) => new CrossMarginDecodeError(m));
    let args: Record<string, unknown>;
    try {
      const decoded = decodeEventLog({
        abi: iCrossMarginEngineAbi,
        topics: log.topics as [Hex, ...Hex[]],
        data: log.data,
        strict: true,
      });
      args = decoded.args as Record<string, unknown>;
    } catch (error) {
      throw new CrossMarginDecodeError(
        `${name} log at block ${ref.blockNumber} index ${ref.logIndex} does not decode: ${(error as Error).message.split("\n")[0]}`,
      );
    }
    const stamped = log.blockTimestamp;
    const timestamp =
      stamped === undefined || stamped === null
        ? options?.timestampOf?.(ref.blockNumber)
        : typeof stamped === "bigint"
          ? stamped
          : BigInt(stamped);
    if (timestamp === undefined) {
      throw new CrossMarginDecodeError(`${name} log at block ${ref.blockNumber} carries no block timestamp`);
    }
    return { ref, timestamp, ...bodyOf(name, args) };
  };
  return {
    addresses: [address as Address],
    decodeLog,
    decode(logs, options) {
      const out: CrossMarginEvent[] = [];
      for (const log of logs) {
        const e = decodeLog(log, options);
        if (e) out.push(e);
      }
      return out;
    },
  };
}

import type { Address } from "viem";
import type { LogRef } from "../../state/events.ts";

/** The full state a position event leaves behind (PerpEngine events carry it, so logs alone rebuild a position). */
export interface PositionSnapshot {
  readonly trader: Address;
  readonly marketId: number;
  readonly size: bigint;
  readonly openNotional: bigint;
  readonly margin: bigint;
  readonly fundingIndex: bigint;
}

export type ExchangeEvent =
  | {
      readonly kind: "marketListed";
      readonly ref: LogRef;
      readonly marketId: number;
      readonly name: string;
      readonly oracle: Address;
      readonly priceScale: bigint;
      readonly initialMarginRatio: bigint;
      readonly maintenanceMarginRatio: bigint;
      readonly liquidationFeeRatio: bigint;
      readonly tradingFeeRatio: bigint;
      readonly maxOracleAge: bigint;
    }
  | {
      readonly kind: "fundingUpdated";
      readonly ref: LogRef;
      readonly marketId: number;
      readonly cumulativeFundingIndex: bigint;
      readonly fundingRatePerSecond: bigint;
      readonly timestamp: bigint;
    }
  | ({
      readonly kind: "positionChanged";
      readonly ref: LogRef;
      readonly price: bigint;
      readonly sizeDelta: bigint;
    } & PositionSnapshot)
  | ({ readonly kind: "marginChanged"; readonly ref: LogRef; readonly marginDelta: bigint } & PositionSnapshot)
  | {
      readonly kind: "positionLiquidated";
      readonly ref: LogRef;
      readonly trader: Address;
      readonly marketId: number;
      readonly keeper: Address;
      readonly size: bigint;
      readonly price: bigint;
      readonly marginBalance: bigint;
      readonly keeperReward: bigint;
      readonly badDebt: bigint;
    };

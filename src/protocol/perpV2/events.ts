/**
 * Perp v2 logs to typed events. A log is decoded by the contract that emitted it (its address) and its first topic:
 * a log of another address is not ours (skipped), an event a known contract declares but the keeper does not use
 * (OwnershipTransferred, Paused, FeeRatioChanged...) is skipped, and a log that carries a used event's selector but does
 * not decode (wrong topic count, short or oversized data, a value out of its type's range) throws PerpV2DecodeError:
 * the address or the ABI is wrong, and the book must not guess.
 *
 * Every event Perp v2 emits that the keeper uses is static (addresses and integers), so fields are read straight from
 * their 32-byte words, with layouts computed once from the fragments in abi.ts. Addresses come out lower case (the
 * book's keys). Every event carries its block's timestamp: funding accrues by time, and Perp v2 emits no time
 * (`blockTimestamp` of eth_getLogs, served by Anvil, geth >= 1.16 and reth, or a `timestampOf` lookup).
 */
import type { AbiEvent, Address, Hex } from "viem";
import { toEventSelector } from "viem";
import { KeeperError } from "../../errors.ts";
import type { LogRef } from "../../state/events.ts";
import { logRef, type TimedChainLog } from "../adapter.ts";

export type { TimedChainLog } from "../adapter.ts";

import {
  accountBalanceAbi,
  baseTokenAbi,
  clearingHouseAbi,
  clearingHouseConfigAbi,
  exchangeAbi,
  marketRegistryAbi,
  vaultAbi,
} from "./abi.ts";

/** A log that carries a Perp v2 event's selector but does not decode: exit 2, never retried. */
export class PerpV2DecodeError extends KeeperError {
  override name = "PerpV2DecodeError";
  readonly retryable = false;
  readonly exitCode = 2 as const;
}

/** The exchange's contracts whose logs the book is built from (ClearingHouse.get* discovers them). */
export interface PerpV2Contracts {
  readonly clearingHouse: Address;
  readonly accountBalance: Address;
  readonly vault: Address;
  readonly exchange: Address;
  readonly marketRegistry: Address;
  readonly clearingHouseConfig: Address;
  /** Markets' base tokens known at start: their StatusUpdated (pause, close) is followed. */
  readonly baseTokens?: readonly Address[];
}

interface Envelope {
  readonly ref: LogRef;
  /** The block's timestamp (unix seconds). */
  readonly timestamp: bigint;
}

export type PerpV2EventBody =
  | {
      readonly kind: "positionChanged";
      readonly trader: Address;
      readonly baseToken: Address;
      readonly exchangedPositionSize: bigint;
      readonly exchangedPositionNotional: bigint;
      readonly fee: bigint;
      /** The taker open notional after the trade (ClearingHouse reads it back after settling: 0 if deregistered). */
      readonly openNotional: bigint;
      readonly realizedPnl: bigint;
      readonly sqrtPriceAfterX96: bigint;
    }
  | {
      readonly kind: "positionLiquidated";
      readonly trader: Address;
      readonly baseToken: Address;
      readonly positionNotional: bigint;
      readonly positionSize: bigint;
      /** The whole penalty; the liquidator's share is half of it, or all of it when account value was < 0. */
      readonly liquidationFee: bigint;
      readonly liquidator: Address;
    }
  | {
      readonly kind: "positionClosed";
      readonly trader: Address;
      readonly baseToken: Address;
      readonly closedPositionSize: bigint;
      readonly closedPositionNotional: bigint;
      readonly openNotional: bigint;
      readonly realizedPnl: bigint;
      readonly closedPrice: bigint;
    }
  | {
      readonly kind: "liquidityChanged";
      readonly maker: Address;
      readonly baseToken: Address;
      readonly quoteToken: Address;
      readonly lowerTick: number;
      readonly upperTick: number;
      readonly base: bigint;
      readonly quote: bigint;
      readonly liquidity: bigint;
      readonly quoteFee: bigint;
    }
  | {
      readonly kind: "fundingPaymentSettled";
      readonly trader: Address;
      readonly baseToken: Address;
      readonly fundingPayment: bigint;
    }
  | { readonly kind: "pnlRealized"; readonly trader: Address; readonly amount: bigint }
  | { readonly kind: "deposited"; readonly collateralToken: Address; readonly trader: Address; readonly amount: bigint }
  | { readonly kind: "withdrawn"; readonly collateralToken: Address; readonly trader: Address; readonly amount: bigint }
  | { readonly kind: "badDebtSettled"; readonly trader: Address; readonly amount: bigint }
  | {
      readonly kind: "collateralLiquidated";
      readonly trader: Address;
      readonly collateralToken: Address;
      readonly liquidator: Address;
      readonly collateral: bigint;
      readonly repaidSettlement: bigint;
      readonly insuranceFundFee: bigint;
      readonly discountRatio: number;
    }
  | {
      readonly kind: "fundingUpdated";
      readonly baseToken: Address;
      readonly marketTwap: bigint;
      readonly indexTwap: bigint;
    }
  | { readonly kind: "poolAdded"; readonly baseToken: Address; readonly feeRatio: number; readonly pool: Address }
  | { readonly kind: "liquidationPenaltyRatioChanged"; readonly ratio: number }
  | { readonly kind: "maxFundingRateChanged"; readonly rate: number }
  | { readonly kind: "twapIntervalChanged"; readonly twapInterval: bigint }
  /** BaseToken status: 0 open, 1 paused, 2 closed. */
  | { readonly kind: "statusUpdated"; readonly baseToken: Address; readonly status: number };

/** A decoded Perp v2 event: where it sits, when, and what it says. */
export type PerpV2Event = Envelope & PerpV2EventBody;
export type PerpV2EventKind = PerpV2EventBody["kind"];

type Reader = (word: string) => bigint | number | Address;

const TWO_256 = 1n << 256n;

function readerOf(type: string, where: string): Reader {
  if (type === "address") {
    return (w) => {
      if (!w.startsWith("000000000000000000000000")) throw new PerpV2DecodeError(`${where}: dirty address word`);
      return `0x${w.slice(24)}` as Address;
    };
  }
  const m = /^(u?)int(\d+)$/.exec(type);
  if (!m) throw new Error(`Perp v2 events: type ${type} not supported (${where})`);
  const signed = m[1] === "";
  const bits = BigInt(m[2] ?? "256");
  const small = bits <= 48n;
  const limit = 1n << bits;
  const half = 1n << (bits - 1n);
  return (w) => {
    let v = BigInt(`0x${w}`);
    if (signed) {
      if (v >= TWO_256 / 2n) v -= TWO_256;
      if (v < -half || v >= half) throw new PerpV2DecodeError(`${where}: value out of ${type}`);
    } else if (v >= limit) {
      throw new PerpV2DecodeError(`${where}: value out of ${type}`);
    }
    return small ? Number(v) : v;
  };
}

interface Layout {
  readonly kind: PerpV2EventKind;
  readonly name: string;
  readonly topics: readonly { readonly key: string; readonly read: Reader }[];
  readonly words: readonly { readonly key: string; readonly read: Reader }[];
}

/** Event name to the kind it becomes, and fields renamed on the way (the rest keep their ABI names). */
const KINDS: Record<string, { kind: PerpV2EventKind; rename?: Record<string, string> }> = {
  PositionChanged: { kind: "positionChanged" },
  PositionLiquidated: { kind: "positionLiquidated" },
  PositionClosed: { kind: "positionClosed" },
  LiquidityChanged: { kind: "liquidityChanged" },
  FundingPaymentSettled: { kind: "fundingPaymentSettled" },
  PnlRealized: { kind: "pnlRealized" },
  Deposited: { kind: "deposited" },
  Withdrawn: { kind: "withdrawn" },
  BadDebtSettled: { kind: "badDebtSettled" },
  CollateralLiquidated: {
    kind: "collateralLiquidated",
    rename: {
      repaidSettlementWithoutInsuranceFundFeeX10_S: "repaidSettlement",
      insuranceFundFeeX10_S: "insuranceFundFee",
    },
  },
  FundingUpdated: { kind: "fundingUpdated" },
  PoolAdded: { kind: "poolAdded" },
  LiquidationPenaltyRatioChanged: {
    kind: "liquidationPenaltyRatioChanged",
    rename: { liquidationPenaltyRatio: "ratio" },
  },
  MaxFundingRateChanged: { kind: "maxFundingRateChanged" },
  TwapIntervalChanged: { kind: "twapIntervalChanged" },
  StatusUpdated: { kind: "statusUpdated" },
};

function layoutsOf(abi: readonly { type: string }[]): Map<string, Layout> {
  const out = new Map<string, Layout>();
  for (const item of abi) {
    if (item.type !== "event") continue;
    const event = item as AbiEvent;
    const spec = KINDS[event.name];
    if (!spec) continue;
    const key = (name: string | undefined): string => spec.rename?.[name ?? ""] ?? name ?? "";
    const where = event.name;
    out.set(toEventSelector(event), {
      kind: spec.kind,
      name: event.name,
      topics: event.inputs
        .filter((p) => p.indexed)
        .map((p) => ({ key: key(p.name), read: readerOf(p.type, `${where}.${p.name}`) })),
      words: event.inputs
        .filter((p) => !p.indexed)
        .map((p) => ({ key: key(p.name), read: readerOf(p.type, `${where}.${p.name}`) })),
    });
  }
  return out;
}

export interface DecodeOptions {
  /** A block's timestamp when a log carries none (an endpoint without `blockTimestamp` in its logs). */
  readonly timestampOf?: (blockNumber: bigint) => bigint | undefined;
}

export interface PerpV2Decoder {
  /** The addresses whose logs to fetch (lower case): the six contracts and the known base tokens. */
  readonly addresses: readonly Address[];
  /** One log: its event, or undefined when it is not one the keeper uses. Throws PerpV2DecodeError when malformed. */
  decodeLog(log: TimedChainLog, options?: DecodeOptions): PerpV2Event | undefined;
  /** Logs in chain order to events (skipping what is not used), in the same order. */
  decode(logs: readonly TimedChainLog[], options?: DecodeOptions): PerpV2Event[];
}

/** A decoder for one deployment's contracts. */
export function perpV2Decoder(contracts: PerpV2Contracts): PerpV2Decoder {
  const byAddress = new Map<string, { layouts: Map<string, Layout>; baseToken?: Address }>();
  const add = (address: Address, abi: readonly { type: string }[], baseToken?: Address) => {
    const layouts = layoutsOf(abi);
    byAddress.set(address.toLowerCase(), baseToken ? { layouts, baseToken } : { layouts });
  };
  add(contracts.clearingHouse, clearingHouseAbi);
  add(contracts.accountBalance, accountBalanceAbi);
  add(contracts.vault, vaultAbi);
  add(contracts.exchange, exchangeAbi);
  add(contracts.marketRegistry, marketRegistryAbi);
  add(contracts.clearingHouseConfig, clearingHouseConfigAbi);
  for (const base of contracts.baseTokens ?? []) {
    const lower = base.toLowerCase() as Address;
    add(lower, baseTokenAbi, lower);
  }
  const addresses = [...byAddress.keys()] as Address[];

  const decodeLog = (log: TimedChainLog, options?: DecodeOptions): PerpV2Event | undefined => {
    const contract = byAddress.get(log.address.toLowerCase());
    if (!contract) return undefined;
    const topic0 = log.topics[0];
    const layout = topic0 === undefined ? undefined : contract.layouts.get(topic0.toLowerCase());
    if (!layout) return undefined;
    const where = `${layout.name} at ${log.address}`;
    if (log.topics.length !== layout.topics.length + 1) {
      throw new PerpV2DecodeError(
        `${where}: ${log.topics.length - 1} indexed topics, expected ${layout.topics.length}`,
      );
    }
    const data = log.data.slice(2);
    if (data.length !== layout.words.length * 64) {
      throw new PerpV2DecodeError(`${where}: ${data.length / 2} data bytes, expected ${layout.words.length * 32}`);
    }
    const ref = logRef(log, (m) => new PerpV2DecodeError(m));
    let timestamp: bigint | undefined;
    if (log.blockTimestamp !== undefined && log.blockTimestamp !== null) timestamp = BigInt(log.blockTimestamp);
    else timestamp = options?.timestampOf?.(ref.blockNumber);
    if (timestamp === undefined) {
      throw new PerpV2DecodeError(`${where}: log without blockTimestamp and no timestampOf (block ${ref.blockNumber})`);
    }
    const event: Record<string, unknown> = { kind: layout.kind, ref, timestamp };
    layout.topics.forEach((p, i) => {
      event[p.key] = p.read((log.topics[i + 1] as Hex).slice(2));
    });
    layout.words.forEach((p, i) => {
      event[p.key] = p.read(data.slice(i * 64, i * 64 + 64));
    });
    if (contract.baseToken) event.baseToken = contract.baseToken;
    return event as unknown as PerpV2Event;
  };

  return {
    addresses,
    decodeLog,
    decode(logs, options) {
      const out: PerpV2Event[] = [];
      for (const log of logs) {
        const event = decodeLog(log, options);
        if (event) out.push(event);
      }
      return out;
    },
  };
}

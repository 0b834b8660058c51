/**
 * What a receipt says of Perp v2 liquidations: each PositionLiquidated with its figures (the discount, bad debt,
 * what the liquidator took over), by target key; and what each revert string means to the executor. The calls
 * themselves are planned in liquidation.ts. References are to @perp/curie-contract 2.8.4, contracts/.
 */
import { type Address, decodeAbiParameters, type Hex, slice } from "viem";
import type { PriceId, RevertMeaning, TargetKey } from "../types.ts";
import type { PerpV2Decoder, PerpV2Event, TimedChainLog } from "./events.ts";
import { UINT24_REVERT } from "./liquidation.ts";
import { type PerpV2BookView, targetKey } from "./records.ts";

export type PerpV2Outcome = {
  readonly kind: "liquidated";
  readonly trader: Address;
  readonly baseToken: Address;
  readonly liquidator: Address;
  /** Absolute size and notional taken. */
  readonly size: bigint;
  readonly notional: bigint;
  readonly penalty: bigint;
  /** The liquidator's discount (half the penalty, all of it on bad debt). */
  readonly reward: bigint;
  /** Bad debt the Vault settled after it, quote WAD. */
  readonly badDebt: bigint;
  /** The trader has no taker position left in that market. */
  readonly full: boolean;
  /** The position the liquidator took over in that market (its size change and open notional after). */
  readonly acquired: { readonly market: PriceId | undefined; readonly size: bigint; readonly openNotional: bigint };
};

/**
 * By target key, what a receipt's logs (decoded by events.ts, in log order) say: for each PositionLiquidated, the
 * trader's and the liquidator's PositionChanged before it in the same transaction (their exchanged notionals sum to
 * the discount: ClearingHouse.sol:667-669) and a BadDebtSettled of the trader after it.
 */
export function liquidationOutcomes(
  events: readonly PerpV2Event[],
  global: Pick<PerpV2BookView["global"], "marketsByBase" | "settlementDecimals">,
): ReadonlyMap<TargetKey, PerpV2Outcome> {
  const out = new Map<TargetKey, PerpV2Outcome>();
  for (const o of liquidationList(events, global)) {
    out.set(targetKey(o.trader, global.marketsByBase.get(o.baseToken) ?? -1), o);
  }
  return out;
}

/** Every PositionLiquidated of the events with its figures, in log order (a target may appear more than once). */
export function liquidationList(
  events: readonly PerpV2Event[],
  global: Pick<PerpV2BookView["global"], "marketsByBase" | "settlementDecimals">,
): PerpV2Outcome[] {
  const out: PerpV2Outcome[] = [];
  const unit = 10n ** BigInt(18 - global.settlementDecimals);
  events.forEach((e, i) => {
    if (e.kind !== "positionLiquidated") return;
    const sameTx = (x: PerpV2Event) => x.ref.transactionHash === e.ref.transactionHash;
    const changed = (who: Address) => {
      for (let j = i - 1; j >= 0; j--) {
        const x = events[j] as PerpV2Event;
        if (!sameTx(x)) break;
        if (x.kind === "positionChanged" && x.trader === who && x.baseToken === e.baseToken) return x;
      }
      return undefined;
    };
    const trader = changed(e.trader);
    const liquidator = changed(e.liquidator);
    let badDebt = 0n;
    for (let j = i + 1; j < events.length; j++) {
      const x = events[j] as PerpV2Event;
      if (!sameTx(x) || x.kind === "positionLiquidated") break;
      if (x.kind === "badDebtSettled" && x.trader === e.trader) badDebt = x.amount * unit;
    }
    const market = global.marketsByBase.get(e.baseToken);
    out.push({
      kind: "liquidated",
      trader: e.trader,
      baseToken: e.baseToken,
      liquidator: e.liquidator,
      size: e.positionSize,
      notional: e.positionNotional,
      penalty: e.liquidationFee,
      reward:
        trader && liquidator
          ? trader.exchangedPositionNotional + liquidator.exchangedPositionNotional
          : e.liquidationFee / 2n,
      badDebt,
      full: trader ? trader.openNotional === 0n : false,
      acquired: {
        market,
        size: liquidator?.exchangedPositionSize ?? 0n,
        openNotional: liquidator?.openNotional ?? 0n,
      },
    });
  });
  return out;
}

/** liquidationList of a receipt's raw logs (a receipt carries no block time: none is needed here). */
export function receiptLiquidations(
  decoder: PerpV2Decoder,
  logs: readonly TimedChainLog[],
  global: Pick<PerpV2BookView["global"], "marketsByBase" | "settlementDecimals">,
): PerpV2Outcome[] {
  return liquidationList(decoder.decode(logs, { timestampOf: () => 0n }), global);
}

/** liquidationOutcomes of a receipt's raw logs (a receipt carries no block time: none is needed here). */
export function receiptOutcomes(
  decoder: PerpV2Decoder,
  logs: readonly TimedChainLog[],
  global: Pick<PerpV2BookView["global"], "marketsByBase" | "settlementDecimals">,
): ReadonlyMap<TargetKey, PerpV2Outcome> {
  return liquidationOutcomes(decoder.decode(logs, { timestampOf: () => 0n }), global);
}

/** The require strings a liquidation (or its prerequisite) reverts with, and what each means to the executor. */
export const PERP_V2_REVERTS: Readonly<Record<string, RevertMeaning>> = {
  CH_EAV: "healthy", // enough account value
  CH_NEXO: "healthy", // cancelAllExcessOrders: not excess orders (neither under mm free collateral nor liquidatable)
  CH_PSZ: "gone", // no taker position
  CH_WLD: "gone", // wrong liquidation direction: the position flipped since
  CH_CLWTISO: "orders_open", // cannot liquidate when there is still order
  CH_NEFCI: "liquidator_capacity", // the liquidator's free collateral by imRatio
  OLD: "stale_price", // the pool's observations do not reach the mark's TWAP interval (Uniswap oracle)
  CH_MNO: "other", // market not open
  CH_IIC: "other", // insurance fund capacity below the bad debt left
  [UINT24_REVERT]: "other", // the partial cap's overflow on a small position: liquidate the largest first
  "Pausable: paused": "other",
};

/** A revert's reason (Error(string), or Panic(code)) and its meaning; undefined: no revert data. */
export function revertMeaning(
  data: Hex | undefined,
): { readonly name: string; readonly meaning: RevertMeaning } | undefined {
  if (data === undefined || data.length < 10) return undefined;
  const selector = slice(data, 0, 4);
  try {
    if (selector === "0x08c379a0") {
      const [reason] = decodeAbiParameters([{ type: "string" }], slice(data, 4));
      return { name: reason, meaning: PERP_V2_REVERTS[reason] ?? "other" };
    }
    if (selector === "0x4e487b71") {
      const [code] = decodeAbiParameters([{ type: "uint256" }], slice(data, 4));
      return { name: `Panic(0x${code.toString(16)})`, meaning: "other" };
    }
  } catch {
    return { name: data, meaning: "other" };
  }
  return { name: selector, meaning: "other" };
}

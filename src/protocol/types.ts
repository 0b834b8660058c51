/**
 * The protocol seam's records: what every exchange adapter speaks and what the core (state, risk, executor) is written
 * against. Types only: nothing here imports from watcher/, executor/ or ops/. docs/protocols.md says how an adapter
 * implements them.
 *
 * An account is not a target. Health belongs to an account (a PerpEngine position, a Perp v2 trader across every
 * market); a liquidation call addresses a target (a position, or one market of a trader with a size). Risk keys on
 * the account, journals, cooldowns and "one attempt per position" key on the target.
 */
import type { Address, Hex } from "viem";

/** A price an account's health depends on (a market's, or a collateral's), numbered densely by the adapter. */
export type PriceId = number;
/** One margin account: perp-engine `${marketId}:${trader}`, perp-v2 the trader's address (lower case). */
export type AccountKey = string;
/** One liquidation target: the account key, or `${account}/${priceId}` where a call addresses one market of it. */
export type TargetKey = string;

/** An account as the risk engine sees it. Records are immutable: a change replaces the record. */
export interface AccountRecord {
  readonly key: AccountKey;
  /** The prices its health depends on (its markets, its non-quote collateral), ascending, no duplicates. */
  readonly prices: readonly PriceId[];
}

/** The prices and time an evaluation is made at. */
export interface PriceView {
  /** Valid prices (WAD, as the contract will use them); a price with no valid value is absent. */
  readonly prices: ReadonlyMap<PriceId, bigint>;
  /** The block time the contract will evaluate at. */
  readonly timestamp: bigint;
  readonly blockNumber: bigint;
}

/** slack = balance − requirement (quote WAD); the contracts liquidate iff slack < 0. */
export type Evaluation =
  | { readonly kind: "exact"; readonly balance: bigint; readonly requirement: bigint }
  /** The slack lies in [low, high] (perp-v2: pending funding and maker fees bounded); confirm by reads if it straddles 0. */
  | { readonly kind: "bounded"; readonly low: bigint; readonly high: bigint; readonly requirement: bigint }
  /** A price it needs has no valid value: the contract would revert too. */
  | { readonly kind: "unpriced"; readonly missing: readonly PriceId[] };

/** The lowest slack an evaluation allows (undefined: unpriced). */
export function lowSlack(evaluation: Evaluation): bigint | undefined {
  switch (evaluation.kind) {
    case "exact":
      return evaluation.balance - evaluation.requirement;
    case "bounded":
      return evaluation.low;
    case "unpriced":
      return undefined;
  }
}

/** The highest slack an evaluation allows (undefined: unpriced). */
export function highSlack(evaluation: Evaluation): bigint | undefined {
  switch (evaluation.kind) {
    case "exact":
      return evaluation.balance - evaluation.requirement;
    case "bounded":
      return evaluation.high;
    case "unpriced":
      return undefined;
  }
}

/**
 * Upper bounds on the slack lost, valid at any prices while the account is unchanged (docs/protocols.md, the
 * movement bound): slack(X) ≥ slack(X̂) − Σ_i [down_i·(p̂_i − p_i)⁺ + up_i·(p_i − p̂_i)⁺] − perSecond·(t − t̂) − rounding.
 */
export interface Sensitivity {
  /** Per price: quote WAD lost per WAD of fall, and of rise (absent or 0: that move never lowers the slack). */
  readonly down: ReadonlyMap<PriceId, number>;
  readonly up: ReadonlyMap<PriceId, number>;
  /** Quote WAD lost per second at most (funding, interest), valid for `horizon` seconds after the evaluation. */
  readonly perSecond: number;
  readonly horizon: bigint;
  /** Wei the contract's rounding may take from the slack between two evaluations. */
  readonly rounding: bigint;
}

/** An exchange's margin rules, pure: the contract's arithmetic on the adapter's book. */
export interface MarginModel<A extends AccountRecord> {
  evaluate(account: A, at: PriceView): Evaluation;
  sensitivity(account: A, at: PriceView): Sensitivity;
  /** Reads that settle a bounded evaluation at one block, and their decoding (perp-v2: account value, requirement). */
  readonly confirm?: {
    reads(account: A): readonly ReadCall[];
    decode(account: A, results: readonly (Hex | undefined)[]): Evaluation;
  };
}

/** A read that settles a bounded evaluation, made at the head's hash. */
export interface ReadCall {
  readonly to: Address;
  readonly data: Hex;
}

/** What a revert means to the executor. */
export type RevertMeaning =
  /** Someone was first, or the position closed: a lost race. */
  | "gone"
  /** The account is no longer liquidatable. */
  | "healthy"
  /** The price the call needs is too old. */
  | "stale_price"
  /** The liquidator's own margin does not cover the takeover. */
  | "liquidator_capacity"
  /** A maker's open orders block it (perp-v2 CH_CLWTISO): cancel them first. */
  | "orders_open"
  | "other";

/**
 * The calls an account still needs after the first, carried in the same transaction of the keeper's liquidator.
 *
 * Perp v2 takes at most part of a position per call while the account is at or above half its maintenance margin,
 * and each call addresses one market: a partial account or one in two markets needs several calls, and each is
 * judged by the contract on what the last one left. Sent one per head they take one block each. In one transaction
 * of the liquidator contract they take one: the contract judges each item after the one before, and skips (does not
 * revert) an item the account no longer needs.
 *
 * The sequence is the contract's arithmetic on the book: a call at the mark changes the account value only by the
 * penalty the trader pays, and the requirement by the notional taken; the next call takes what
 * getLiquidatablePositionSize allows then. Planned from the best end of a bounded account value (a follow-up that is
 * not needed costs a skipped item's gas, a missing one a block), at most MAX_FOLLOW_UPS.
 */
import type { Address } from "viem";
import type { Evaluation, PriceView } from "../types.ts";
import { accountFigures, UNBOUNDED } from "./figures.ts";
import { contractLiquidatableSize } from "./liquidation.ts";
import { abs, mulDivTrunc, mulRatio, positionValue, WAD } from "./math.ts";
import type { PerpV2Account, PerpV2BookView } from "./records.ts";

/** At most this many calls after the first in one transaction. */
export const MAX_FOLLOW_UPS = 4;

export interface FollowUp {
  readonly baseToken: Address;
  readonly priceId: number;
}

/**
 * The calls after a first one on `first` (its market, and the base size it takes: 0 = as much as allowed), until the
 * account is above its requirement by the book; none for a maker (its pool share is unknown) or an unpriced account.
 */
export function planFollowUps(
  account: PerpV2Account,
  evaluation: Evaluation,
  book: Pick<PerpV2BookView, "markets" | "global">,
  view: PriceView,
  first: { readonly priceId: number; readonly size: bigint },
): FollowUp[] {
  const f = accountFigures(account, book, view);
  if (f.kind === "unpriced" || f.maker) return [];
  let value: bigint;
  if (evaluation.kind === "exact") value = evaluation.balance;
  else if (evaluation.kind === "bounded" && evaluation.high !== UNBOUNDED)
    value = evaluation.high + evaluation.requirement;
  else if (f.accountValue[1] !== UNBOUNDED) value = f.accountValue[1];
  else return [];
  const g = book.global;
  const open = f.positions
    .filter((p) => p.size !== 0n && book.markets.get(p.priceId)?.status === "open")
    .map((p) => ({ priceId: p.priceId, baseToken: p.baseToken, size: p.size, mark: view.prices.get(p.priceId) ?? 0n }));
  const totalAbs = () => open.reduce((s, p) => s + abs(positionValue(p.size, p.mark)), 0n);
  const out: FollowUp[] = [];
  let market = open.find((p) => p.priceId === first.priceId);
  let ask = first.size;
  for (let call = 0; market && call <= MAX_FOLLOW_UPS; call++) {
    const requirement = mulRatio(totalAbs(), g.mmRatio);
    if (value >= requirement) break;
    if (call > 0) out.push({ baseToken: market.baseToken, priceId: market.priceId });
    const allowed = contractLiquidatableSize({
      accountValue: value,
      marginRequirement: requirement,
      positionSize: market.size,
      mark: market.mark,
      totalAbsPositionValue: totalAbs(),
    });
    if (!allowed.ok) break;
    const taken = ask !== 0n && abs(ask) < abs(allowed.size) ? ask : allowed.size;
    ask = 0n;
    if (taken === 0n) break;
    // the trader pays the penalty on the notional taken; the position shrinks by what was taken
    value -= mulRatio(abs(mulDivTrunc(taken, market.mark, WAD)), g.liquidationPenaltyRatio);
    market.size -= taken;
    // the next call: the same market while it has a position left, else the largest left
    if (market.size === 0n) {
      const left = open.filter((p) => p.size !== 0n);
      market = left.sort((a, b) => {
        const d = abs(positionValue(b.size, b.mark)) - abs(positionValue(a.size, a.mark));
        return d > 0n ? 1 : d < 0n ? -1 : a.priceId - b.priceId;
      })[0];
    }
  }
  return out;
}

/** Follow-ups by target key, as planned at the last head the target was found at; read when its call is encoded. */
export class FollowUpPlans {
  private readonly plans = new Map<string, readonly FollowUp[]>();

  set(key: string, followUps: readonly FollowUp[]): void {
    if (followUps.length === 0) this.plans.delete(key);
    else {
      if (this.plans.size >= 100_000) this.plans.clear(); // a bound: plans are made again at every head they matter
      this.plans.set(key, followUps);
    }
  }

  get(key: string): readonly FollowUp[] {
    return this.plans.get(key) ?? [];
  }
}

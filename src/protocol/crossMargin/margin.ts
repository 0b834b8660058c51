/**
 * The cross-margin exchange's margin rules for the risk engine: the contract's arithmetic (math.ts) on the book's
 * records, exact. Nothing accrues with time (no funding), so an evaluation is exact at any prices and needs no
 * confirmation read.
 *
 *   slack = availableMargin − (requiredMaintenance + liquidationReward)     liquidatable iff slack < 0
 *
 * A flagged account is being liquidated whatever its margin: its collateral is seized and its positions are closed
 * window by window, with no price needed. It evaluates liquidatable (slack −1 at least) until no position is left,
 * with horizon 0: it is judged again at every tick.
 */
import type { Evaluation, MarginModel, PriceId, PriceView, Sensitivity } from "../types.ts";
import { accountHealth, type PositionAt } from "./math.ts";
import type { CrossMarginAccount, CrossMarginBookView } from "./records.ts";

/** Slopes are declared a hair above their exact value: they are upper bounds, and the doubles round. */
const UP = 1 + 1e-9;
const WAD_NUMBER = 1e18;

export interface CrossMarginEvaluation {
  readonly evaluation: Evaluation;
  /** The contract's figures behind it; undefined when unpriced or flagged. */
  readonly health?: ReturnType<typeof accountHealth>;
}

/** The positions of an account at the view's prices; the price ids missing (or unconfigured) when any. */
export function positionsAt(
  account: CrossMarginAccount,
  book: Pick<CrossMarginBookView, "markets">,
  at: Pick<PriceView, "prices">,
): { positions: PositionAt[]; missing: PriceId[] } {
  const positions: PositionAt[] = [];
  const missing: PriceId[] = [];
  for (const id of account.prices) {
    const p = account.positions.get(id);
    const config = book.markets.get(id)?.config;
    const price = at.prices.get(id);
    if (!p || !config || price === undefined) {
      missing.push(id);
      continue;
    }
    positions.push({ config, size: p.size, entryPrice: p.entryPrice, price });
  }
  return { positions, missing };
}

/** The account's evaluation at `at`, with the contract's figures. */
export function evaluateAccount(
  account: CrossMarginAccount,
  book: Pick<CrossMarginBookView, "markets" | "global">,
  at: Pick<PriceView, "prices">,
): CrossMarginEvaluation {
  if (account.flagged) {
    return { evaluation: { kind: "exact", balance: -1n, requirement: 0n } };
  }
  const global = book.global.config;
  if (!global) return { evaluation: { kind: "unpriced", missing: [...account.prices] } };
  const { positions, missing } = positionsAt(account, book, at);
  if (missing.length > 0) return { evaluation: { kind: "unpriced", missing } };
  const health = accountHealth(global, account.collateral, positions);
  return {
    evaluation: {
      kind: "exact",
      balance: health.availableMargin,
      requirement: health.requiredMaintenance + health.liquidationReward,
    },
    health,
  };
}

/**
 * Per position of size s at price p, d slack / d p = s − |s|·(mmr + c·frr), where mmr is the maintenance ratio (fixed
 * by the size), frr the flag reward ratio and c in [0, 1] (the reward clamp can only flatten it): a long loses at most
 * s per unit of fall, and on a rise at most s·(mmr + frr − 1) when that is positive; a short loses at most
 * |s|·(1 + mmr + frr) per unit of rise and nothing on a fall.
 */
export function sensitivityOf(account: CrossMarginAccount, book: Pick<CrossMarginBookView, "markets">): Sensitivity {
  const down = new Map<PriceId, number>();
  const up = new Map<PriceId, number>();
  if (account.flagged) return { down, up, perSecond: 0, horizon: 0n, rounding: 0n };
  for (const id of account.prices) {
    const p = account.positions.get(id);
    const config = book.markets.get(id)?.config;
    if (!p || !config) continue;
    const s = Math.abs(Number(p.size)) / WAD_NUMBER;
    const impact = s / (Number(config.skewScale) / WAD_NUMBER);
    const imr = (impact * Number(config.initialMarginRatio) + Number(config.minimumInitialMarginRatio)) / WAD_NUMBER;
    const k = (imr * Number(config.maintenanceMarginScalar)) / WAD_NUMBER + Number(config.flagRewardRatio) / WAD_NUMBER;
    if (p.size > 0n) {
      down.set(id, s * UP);
      if (k > 1) up.set(id, s * (k - 1) * UP);
    } else {
      up.set(id, s * (1 + k) * UP);
    }
  }
  return {
    down,
    up,
    perSecond: 0,
    horizon: 1n << 62n,
    // each position's four truncations and its pnl's, the reward's clamp: under a wei each, at both evaluations
    rounding: BigInt(12 * account.prices.length + 4),
  };
}

/** The margin model, and the figures behind its last evaluation of an account at a view. */
export interface CrossMarginModel extends MarginModel<CrossMarginAccount> {
  /** The contract's figures of the account at `at`: the engine's own evaluation when it just made it (no second pass). */
  figures(account: CrossMarginAccount, at: Pick<PriceView, "prices">): CrossMarginEvaluation;
}

/** The margin model on a book (read through `book()`: the record book the keeper holds). */
export function crossMarginMargin(book: () => CrossMarginBookView): CrossMarginModel {
  const last = new WeakMap<CrossMarginAccount, { at: object; figures: CrossMarginEvaluation }>();
  return {
    evaluate(account, at) {
      const figures = evaluateAccount(account, book(), at);
      last.set(account, { at, figures });
      return figures.evaluation;
    },
    sensitivity: (account) => sensitivityOf(account, book()),
    figures(account, at) {
      const held = last.get(account);
      return held && held.at === at ? held.figures : evaluateAccount(account, book(), at);
    },
  };
}

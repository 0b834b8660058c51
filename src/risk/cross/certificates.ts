/**
 * Certificates (docs/risk-cross.md): an account's base (low slack less rounding, slopes, prices, time) and the safe
 * box planned from it, its faces as levels in per-price B+trees and its deadline in a heap; and the warm tier's float
 * lower bound from the same base. Soundness rests on the movement bound of the model's `Sensitivity`.
 */
import type { AccountRecord, PriceId, Sensitivity } from "../../protocol/types.ts";
import type { Book } from "./book.ts";
import { ETA, LEVEL_SLACK, plan, roomDenominator } from "./budget.ts";
import { DeadlineHeap } from "./heap.ts";
import { LevelTrees } from "./levels.ts";
import type { PriceState } from "./prices.ts";

/** A certificate as stored: per price the lower and upper level (the box), and the deadline. */
export interface Certificate {
  readonly levels: Map<PriceId, { down?: number; up?: number }>;
  readonly deadline: number;
}

export class Certificates<A extends AccountRecord> {
  readonly levels = new LevelTrees();
  readonly heap = new DeadlineHeap();
  private pendingZ = 0;
  private pendingT = 0;
  /** Set by `bound`. */
  gain = 0;

  constructor(
    private readonly book: Book<A>,
    private readonly prices: PriceState,
    private readonly zCold: number,
    private readonly horizon: number,
  ) {}

  clear(): void {
    this.levels.clear();
    this.heap.clear();
  }

  /**
   * Stores the model's slopes for the account (asked once per account state: the down and up slopes hold at any
   * prices while the account is unchanged, perSecond for `horizon` seconds from `t`).
   */
  setSensitivity(s: number, sens: Sensitivity, t: number): void {
    const slots = this.book.slots;
    const terms = this.book.terms;
    const off = slots.termOff[s] as number;
    const end = off + (slots.termCnt[s] as number);
    let named = 0;
    for (let j = off; j < end; j++) {
      const id = terms.price[j] as number;
      const d = sens.down.get(id) ?? 0;
      const u = sens.up.get(id) ?? 0;
      if (!(d >= 0 && u >= 0 && d < Number.POSITIVE_INFINITY && u < Number.POSITIVE_INFINITY)) {
        throw new Error(`sensitivity of ${this.book.accounts[s]?.key} on price ${id}: ${d}, ${u}`);
      }
      if (d > 0) named++;
      if (u > 0) named++;
      terms.down[j] = d;
      terms.up[j] = u;
    }
    if (named !== positives(sens.down) + positives(sens.up)) {
      throw new Error(`sensitivity of ${this.book.accounts[s]?.key} names a price the account does not list`);
    }
    const phi = sens.perSecond;
    if (!(phi >= 0 && phi < Number.POSITIVE_INFINITY)) throw new Error(`perSecond ${phi}`);
    slots.phi[s] = phi;
    slots.rounding[s] = Number(sens.rounding);
    slots.validUntil[s] = t + Number(sens.horizon);
    slots.sensed[s] = 1;
  }

  /** Whether the stored slopes still hold at time t. */
  sensed(s: number, t: number): boolean {
    return this.book.slots.sensed[s] === 1 && t <= (this.book.slots.validUntil[s] as number);
  }

  /** A new base from an exact (or bounded) evaluation: its low slack less the rounding, at prices `pf`, time t. */
  rebase(s: number, low: bigint, pf: Float64Array, t: number): void {
    const slots = this.book.slots;
    this.rebaseTo(s, Number(low) - (slots.rounding[s] as number), pf, t);
  }

  /**
   * A new base at the current prices and time from the warm bound there (no model call): `lb` ≤ the slack at X, net
   * of rounding already (the movement bound chains: slack(X') ≥ Lb(X) − moves(X → X')).
   */
  rebaseTo(s: number, base: number, pf: Float64Array, t: number): void {
    const slots = this.book.slots;
    const terms = this.book.terms;
    const move = this.prices.move;
    const off = slots.termOff[s] as number;
    const end = off + (slots.termCnt[s] as number);
    let a = 0;
    let mag = Math.abs(base);
    for (let j = off; j < end; j++) {
      const id = terms.price[j] as number;
      const pb = pf[id] ?? Number.NaN;
      const slope = (terms.down[j] as number) + (terms.up[j] as number);
      terms.basePrice[j] = pb;
      a += slope * (move[id] as number);
      mag += slope * Math.abs(pb);
    }
    const phi = slots.phi[s] as number;
    const H = Math.min(this.horizon, (slots.validUntil[s] as number) - t);
    const vT = this.prices.blockInterval;
    slots.base[s] = base;
    slots.baseTime[s] = t;
    const denom = roomDenominator(a, phi, vT, this.zCold);
    slots.denom[s] = denom;
    // the guard covers turning Ŝ, the slopes and the prices into doubles and the few operations below (2^-36 ≫ 2^-53)
    const W = base - 16 * ETA * (mag + phi * Math.max(0, H));
    const p = plan(W, a, phi, vT, H);
    this.pendingZ = p.z;
    this.pendingT = p.T;
    slots.room[s] = W > 0 ? p.z : denom > 0 ? W / denom : Number.NaN;
  }

  /**
   * Re-arms a certificate from a new base `lb` (the warm bound, or an exact evaluation less rounding) at the current
   * prices and time t, without touching the faces that still stand or the deadline (still in the heap): the budget
   * left after the standing faces (their distance from the current prices) and the time to the deadline goes to new
   * faces for the fired slopes only, z' typical moves away (none fired: the certificate holds as it is). One tree
   * insert per fired face instead of dropping and placing every face. False when the deadline has passed, the budget
   * does not cover the standing faces, or a face would be nearer than zCold: then the account is re-planned whole.
   */
  rearm(s: number, lb: number, t: number): boolean {
    const slots = this.book.slots;
    const terms = this.book.terms;
    const deadline = slots.deadline[s] as number;
    // the deadline's heap entry stands until it pops (at or after the deadline), and the slopes must hold until then
    if (!(deadline > t) || !(lb > 0) || !(deadline <= (slots.validUntil[s] as number))) return false;
    const pf = this.prices.f;
    const move = this.prices.move;
    const phi = slots.phi[s] as number;
    const off = slots.termOff[s] as number;
    const end = off + (slots.termCnt[s] as number);
    let need = 0;
    let mag = lb + phi * (deadline - t);
    let fired = 0;
    let a = 0;
    let standing = Number.POSITIVE_INFINITY; // room of the nearest standing face, in typical moves
    for (let j = off; j < end; j++) {
      const id = terms.price[j] as number;
      const p = pf[id] as number;
      const v = move[id] as number;
      const d = terms.down[j] as number;
      const u = terms.up[j] as number;
      a += (d + u) * v;
      if (d > 0) {
        const level = terms.levDown[j] as number;
        if (Number.isNaN(level)) fired += d * v;
        else {
          if (!(p > level)) return false;
          need += d * (p - level);
          mag += d * (Math.abs(p) + Math.abs(level));
          standing = Math.min(standing, (p - level) / v);
        }
      }
      if (u > 0) {
        const level = terms.levUp[j] as number;
        if (Number.isNaN(level)) fired += u * v;
        else {
          if (!(level > p)) return false;
          need += u * (level - p);
          mag += u * (Math.abs(p) + Math.abs(level));
          standing = Math.min(standing, (level - p) / v);
        }
      }
    }
    const W = lb - need - phi * (deadline - t) - 16 * ETA * mag;
    if (!(standing >= this.zCold) || !(W >= 0)) return false;
    const z = fired > 0 ? W / fired : Number.POSITIVE_INFINITY;
    if (!(z >= this.zCold) || !(z > 0)) return false;
    for (let j = off; j < end; j++) {
      const gap = z * (move[terms.price[j] as number] as number);
      if (!(gap >= 4 * LEVEL_SLACK * Math.abs(pf[terms.price[j] as number] as number))) return false;
    }
    for (let j = off; j < end; j++) {
      const id = terms.price[j] as number;
      const p = pf[id] as number;
      terms.basePrice[j] = p;
      const gap = z * (move[id] as number);
      const widen = LEVEL_SLACK * Math.abs(p);
      if ((terms.down[j] as number) > 0 && Number.isNaN(terms.levDown[j] as number)) {
        const level = p - gap + widen;
        if (level > Number.NEGATIVE_INFINITY) terms.levDown[j] = this.levels.insertDown(id, level, s);
      }
      if ((terms.up[j] as number) > 0 && Number.isNaN(terms.levUp[j] as number)) {
        const level = p + gap - widen;
        if (level < Number.POSITIVE_INFINITY) terms.levUp[j] = this.levels.insertUp(id, level, s);
      }
    }
    slots.base[s] = lb;
    slots.baseTime[s] = t;
    slots.denom[s] = roomDenominator(a, phi, this.prices.blockInterval, this.zCold);
    slots.room[s] = Math.min(z, standing);
    return true;
  }

  /** Places the planned certificate: a level per adverse slope, each on the safe side of its price, and a deadline. */
  certify(s: number): boolean {
    const z = this.pendingZ;
    const T = Math.floor(this.pendingT);
    if (!(T >= 1) || !(z > 0)) return false;
    const slots = this.book.slots;
    const terms = this.book.terms;
    const move = this.prices.move;
    const off = slots.termOff[s] as number;
    const end = off + (slots.termCnt[s] as number);
    for (let j = off; j < end; j++) {
      if ((terms.down[j] as number) === 0 && (terms.up[j] as number) === 0) continue;
      const gap = z * (move[terms.price[j] as number] as number);
      // the widened level must stay strictly on the safe side of the current price (NaN: never)
      if (!(gap >= 4 * LEVEL_SLACK * Math.abs(terms.basePrice[j] as number))) return false;
    }
    this.dropLevels(s); // the faces of an earlier certificate still standing
    for (let j = off; j < end; j++) {
      const id = terms.price[j] as number;
      const pb = terms.basePrice[j] as number;
      const gap = z * (move[id] as number);
      const widen = LEVEL_SLACK * Math.abs(pb);
      if ((terms.down[j] as number) > 0) {
        const level = pb - gap + widen;
        if (level > Number.NEGATIVE_INFINITY) terms.levDown[j] = this.levels.insertDown(id, level, s);
      }
      if ((terms.up[j] as number) > 0) {
        const level = pb + gap - widen;
        if (level < Number.POSITIVE_INFINITY) terms.levUp[j] = this.levels.insertUp(id, level, s);
      }
    }
    const deadline = (slots.baseTime[s] as number) + T;
    slots.deadline[s] = deadline;
    this.heap.push(deadline, s);
    return true;
  }

  /**
   * Walks price `price`'s trees at p: every level crossed is removed, its term forgets it, and `fire` gets its slot
   * (also for a stale level, one of an account no longer cold: the caller ignores those).
   */
  walk(price: number, p: number, fire: (s: number) => void): void {
    this.walkPrice = price;
    this.onFire = fire;
    this.levels.walkDown(price, p, this.firedDown);
    this.levels.walkUp(price, p, this.firedUp);
  }

  private walkPrice = 0;
  private onFire: (s: number) => void = () => {};
  private readonly firedDown = (s: number): void => {
    this.book.terms.levDown[this.termOf(s, this.walkPrice)] = Number.NaN;
    this.onFire(s);
  };
  private readonly firedUp = (s: number): void => {
    this.book.terms.levUp[this.termOf(s, this.walkPrice)] = Number.NaN;
    this.onFire(s);
  };

  /** The account's term on `price`. */
  private termOf(s: number, price: number): number {
    const slots = this.book.slots;
    const terms = this.book.terms;
    const off = slots.termOff[s] as number;
    const end = off + (slots.termCnt[s] as number);
    for (let j = off; j < end; j++) if (terms.price[j] === price) return j;
    throw new Error(`level of slot ${s} on price ${price} without a term`);
  }

  /** Removes the account's levels from their trees (a term holds a level's key exactly while it is in its tree). */
  dropLevels(s: number): void {
    const slots = this.book.slots;
    const terms = this.book.terms;
    const off = slots.termOff[s] as number;
    const end = off + (slots.termCnt[s] as number);
    for (let j = off; j < end; j++) {
      const down = terms.levDown[j] as number;
      if (!Number.isNaN(down)) {
        this.levels.removeDown(terms.price[j] as number, down);
        terms.levDown[j] = Number.NaN;
      }
      const up = terms.levUp[j] as number;
      if (!Number.isNaN(up)) {
        this.levels.removeUp(terms.price[j] as number, up);
        terms.levUp[j] = Number.NaN;
      }
    }
  }

  /**
   * The warm bound at the current prices and time t: Lb = Ŝ_f − e − Σ[λ↓(p̂ − p)⁺ + λ↑(p − p̂)⁺] − φ·(t − t̂) − η, in
   * doubles, with η = 2^-40·(|Ŝ_f| + Σ(λ↓ + λ↑)(p̂ + p) + φ·(t − t̂)). NaN: a price is missing or the base is too old.
   * Also sets `gain`: what the moves since the base would have earned at the same slopes (Σ λ↓(p − p̂)⁺ + λ↑(p̂ − p)⁺),
   * the optimistic part that ranks warm accounts for cooling (the bound itself never counts a gain).
   */
  bound(s: number, t: number): number {
    const slots = this.book.slots;
    const dt = t - (slots.baseTime[s] as number);
    if (!(dt >= 0) || t > (slots.validUntil[s] as number)) return Number.NaN;
    const terms = this.book.terms;
    const { price, down, up, basePrice } = terms;
    const pf = this.prices.f;
    const f = slots.phi[s] as number;
    const b = slots.base[s] as number;
    let x = b - f * dt;
    let mag = Math.abs(b) + f * dt;
    let gain = 0;
    const off = slots.termOff[s] as number;
    const end = off + (slots.termCnt[s] as number);
    for (let j = off; j < end; j++) {
      const p = pf[price[j] as number] as number;
      const pb = basePrice[j] as number;
      const d = down[j] as number;
      const u = up[j] as number;
      if (p < pb) {
        x -= d * (pb - p);
        gain += u * (pb - p);
      } else {
        x -= u * (p - pb);
        gain += d * (p - pb);
      }
      mag += (d + u) * (Math.abs(pb) + Math.abs(p));
    }
    this.gain = gain;
    return x - ETA * mag;
  }

  /** The account's certificate as stored (its faces in the trees, its deadline). */
  describe(s: number): Certificate {
    const { slots, terms } = this.book;
    const levels = new Map<PriceId, { down?: number; up?: number }>();
    const off = slots.termOff[s] as number;
    for (let j = off; j < off + (slots.termCnt[s] as number); j++) {
      const face: { down?: number; up?: number } = {};
      if (!Number.isNaN(terms.levDown[j] as number)) face.down = terms.levDown[j] as number;
      if (!Number.isNaN(terms.levUp[j] as number)) face.up = terms.levUp[j] as number;
      levels.set(terms.price[j] as number, face);
    }
    return { levels, deadline: slots.deadline[s] as number };
  }

  /** The index's consistency, for tests: every stored level is in its tree under its slot and nothing else is. */
  audit(isCold: (s: number) => boolean): string[] {
    const problems: string[] = [];
    const slots = this.book.slots;
    const terms = this.book.terms;
    let stored = 0;
    for (let s = 0; s < this.book.slotCount; s++) {
      if (this.book.accounts[s] === undefined) continue;
      const off = slots.termOff[s] as number;
      const end = off + (slots.termCnt[s] as number);
      for (let j = off; j < end; j++) {
        const id = terms.price[j] as number;
        for (const side of ["down", "up"] as const) {
          const key = (side === "down" ? terms.levDown[j] : terms.levUp[j]) as number;
          const slope = (side === "down" ? terms.down[j] : terms.up[j]) as number;
          if (Number.isNaN(key)) {
            if (isCold(s) && slope > 0 && (slots.room[s] as number) !== Number.POSITIVE_INFINITY) {
              problems.push(`cold slot ${s} has no ${side} level on price ${id}`);
            }
            continue;
          }
          stored++;
          const at = this.levels.slotAt(side, id, key);
          if (at !== s) problems.push(`slot ${s}: ${side} level ${key} on price ${id} holds ${at}`);
        }
      }
    }
    if (stored !== this.levels.size) problems.push(`${this.levels.size} levels in the trees, ${stored} recorded`);
    return problems;
  }
}

function positives(m: ReadonlyMap<PriceId, number>): number {
  let n = 0;
  for (const v of m.values()) if (v > 0) n++;
  return n;
}

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
   * A new base: the low slack less the rounding, the slopes and prices at `pf`, and the plan of a certificate from
   * it (room z, time T), which `certify` places if the account goes cold.
   */
  rebase(s: number, low: bigint, sens: Sensitivity, pf: Float64Array, t: number): void {
    const slots = this.book.slots;
    const terms = this.book.terms;
    this.dropLevels(s);
    const base = Number(low - sens.rounding);
    const move = this.prices.move;
    const off = slots.termOff[s] as number;
    const end = off + (slots.termCnt[s] as number);
    let a = 0;
    let mag = Math.abs(base);
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
      const pb = pf[id] ?? Number.NaN;
      terms.down[j] = d;
      terms.up[j] = u;
      terms.basePrice[j] = pb;
      a += (d + u) * (move[id] as number);
      mag += (d + u) * Math.abs(pb);
    }
    if (named !== positives(sens.down) + positives(sens.up)) {
      throw new Error(`sensitivity of ${this.book.accounts[s]?.key} names a price the account does not list`);
    }
    const phi = sens.perSecond;
    if (!(phi >= 0 && phi < Number.POSITIVE_INFINITY)) throw new Error(`perSecond ${phi}`);
    const sensHorizon = Number(sens.horizon);
    const H = Math.min(this.horizon, sensHorizon);
    const vT = this.prices.blockInterval;
    slots.base[s] = base;
    slots.baseTime[s] = t;
    slots.validUntil[s] = t + sensHorizon;
    slots.phi[s] = phi;
    const denom = roomDenominator(a, phi, vT, this.zCold);
    slots.denom[s] = denom;
    // the guard covers turning Ŝ, the slopes and the prices into doubles and the few operations below (2^-36 ≫ 2^-53)
    const W = base - 16 * ETA * (mag + phi * H);
    const p = plan(W, a, phi, vT, H);
    this.pendingZ = p.z;
    this.pendingT = p.T;
    slots.room[s] = W > 0 ? p.z : denom > 0 ? W / denom : Number.NaN;
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

  /** Removes the account's levels from their trees (those a walk has not dropped already). */
  dropLevels(s: number): void {
    const slots = this.book.slots;
    const terms = this.book.terms;
    const off = slots.termOff[s] as number;
    const end = off + (slots.termCnt[s] as number);
    for (let j = off; j < end; j++) {
      const down = terms.levDown[j] as number;
      if (!Number.isNaN(down)) {
        this.levels.removeDown(terms.price[j] as number, down, s);
        terms.levDown[j] = Number.NaN;
      }
      const up = terms.levUp[j] as number;
      if (!Number.isNaN(up)) {
        this.levels.removeUp(terms.price[j] as number, up, s);
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
}

function positives(m: ReadonlyMap<PriceId, number>): number {
  let n = 0;
  for (const v of m.values()) if (v > 0) n++;
  return n;
}

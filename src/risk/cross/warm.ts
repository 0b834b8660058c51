/**
 * The warm tier as a dense structure of arrays: each warm account's base (Ŝ_f − e, time, validity, φ, room
 * denominator) and its terms (price id, base price, λ↓, λ↑) copied side by side, so that the sweep reads memory in
 * order instead of jumping across the per-slot arrays of a million accounts. The book's arrays stay the source of
 * truth: an entry is copied in when the account turns warm and refreshed whenever its base changes while warm. The
 * sweep (CrossRiskEngine) computes the bound of Certificates.bound over these arrays.
 */
import type { AccountRecord } from "../../protocol/types.ts";
import type { Book } from "./book.ts";
import { ETA } from "./budget.ts";
import type { CoolQueue } from "./cool.ts";

function grow<T extends Float64Array | Int32Array>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

export class WarmSet {
  length = 0;
  slot: Int32Array = new Int32Array(256);
  /** Tick of the last exact evaluation or re-base (skipped by that tick's sweep). */
  stamp: Int32Array = new Int32Array(256);
  base: Float64Array = new Float64Array(256);
  time: Float64Array = new Float64Array(256);
  valid: Float64Array = new Float64Array(256);
  phi: Float64Array = new Float64Array(256);
  denom: Float64Array = new Float64Array(256);
  termOff: Int32Array = new Int32Array(256);
  termCnt: Int32Array = new Int32Array(256);
  private top = 0;
  private garbage = 0;
  private spare: { price: Int32Array; basePrice: Float64Array; down: Float64Array; up: Float64Array } | undefined;
  price: Int32Array = new Int32Array(512);
  basePrice: Float64Array = new Float64Array(512);
  down: Float64Array = new Float64Array(512);
  up: Float64Array = new Float64Array(512);

  clear(): void {
    this.length = 0;
    this.top = 0;
    this.garbage = 0;
  }

  /** Appends slot `s`, copied from the book; returns its index. */
  add<A extends AccountRecord>(s: number, book: Book<A>, stamp: number): number {
    const i = this.length++;
    if (i === this.slot.length) {
      const n = i * 2;
      this.slot = grow(this.slot, n);
      this.stamp = grow(this.stamp, n);
      this.base = grow(this.base, n);
      this.time = grow(this.time, n);
      this.valid = grow(this.valid, n);
      this.phi = grow(this.phi, n);
      this.denom = grow(this.denom, n);
      this.termOff = grow(this.termOff, n);
      this.termCnt = grow(this.termCnt, n);
    }
    this.slot[i] = s;
    this.termCnt[i] = 0;
    this.refresh(i, book, stamp);
    return i;
  }

  /** Copies entry i's base from the book again (its slot's base changed). */
  refresh<A extends AccountRecord>(i: number, book: Book<A>, stamp: number): void {
    const s = this.slot[i] as number;
    const slots = book.slots;
    this.stamp[i] = stamp;
    this.base[i] = slots.base[s] as number;
    this.time[i] = slots.baseTime[s] as number;
    this.valid[i] = slots.validUntil[s] as number;
    this.phi[i] = slots.phi[s] as number;
    this.denom[i] = slots.denom[s] as number;
    const k = slots.termCnt[s] as number;
    let off = this.termOff[i] as number;
    if ((this.termCnt[i] as number) !== k) {
      this.garbage += this.termCnt[i] as number;
      off = this.alloc(k);
      this.termOff[i] = off;
      this.termCnt[i] = k;
    }
    const terms = book.terms;
    const from = slots.termOff[s] as number;
    for (let j = 0; j < k; j++) {
      this.price[off + j] = terms.price[from + j] as number;
      this.basePrice[off + j] = terms.basePrice[from + j] as number;
      this.down[off + j] = terms.down[from + j] as number;
      this.up[off + j] = terms.up[from + j] as number;
    }
  }

  /** Removes entry i by moving the last one into it; returns the slot now at i (-1: none). */
  removeAt(i: number): number {
    this.garbage += this.termCnt[i] as number;
    const last = --this.length;
    if (i === last) return -1;
    this.slot[i] = this.slot[last] as number;
    this.stamp[i] = this.stamp[last] as number;
    this.base[i] = this.base[last] as number;
    this.time[i] = this.time[last] as number;
    this.valid[i] = this.valid[last] as number;
    this.phi[i] = this.phi[last] as number;
    this.denom[i] = this.denom[last] as number;
    this.termOff[i] = this.termOff[last] as number;
    this.termCnt[i] = this.termCnt[last] as number;
    return this.slot[i] as number;
  }

  private alloc(k: number): number {
    if (this.top + k > this.price.length) {
      if (this.garbage * 2 >= this.top) this.compact();
      if (this.top + k > this.price.length) {
        const n = Math.max(this.top + k, this.price.length * 2);
        this.price = grow(this.price, n);
        this.basePrice = grow(this.basePrice, n);
        this.down = grow(this.down, n);
        this.up = grow(this.up, n);
      }
    }
    const off = this.top;
    this.top += k;
    return off;
  }

  /** Moves every live entry's terms to the front, in entry order, through a second set of arrays kept for it. */
  private compact(): void {
    const n = this.price.length;
    if (this.spare === undefined || this.spare.price.length !== n) {
      this.spare = {
        price: new Int32Array(n),
        basePrice: new Float64Array(n),
        down: new Float64Array(n),
        up: new Float64Array(n),
      };
    }
    const to = this.spare;
    let w = 0;
    for (let i = 0; i < this.length; i++) {
      const off = this.termOff[i] as number;
      const k = this.termCnt[i] as number;
      for (let j = 0; j < k; j++) {
        to.price[w + j] = this.price[off + j] as number;
        to.basePrice[w + j] = this.basePrice[off + j] as number;
        to.down[w + j] = this.down[off + j] as number;
        to.up[w + j] = this.up[off + j] as number;
      }
      this.termOff[i] = w;
      w += k;
    }
    this.spare = { price: this.price, basePrice: this.basePrice, down: this.down, up: this.up };
    this.price = to.price;
    this.basePrice = to.basePrice;
    this.down = to.down;
    this.up = to.up;
    this.top = w;
    this.garbage = 0;
  }

  /**
   * The warm bound of every entry not evaluated this tick (Certificates.bound, over these arrays and written out so
   * that no double is boxed): Lb = Ŝ_f − e − Σ[λ↓(p̂ − p)⁺ + λ↑(p − p̂)⁺] − φ·(t − t̂) − η. Below 0 or NaN (a price
   * missing, the base too old): `evaluate` (which may move entries: the loop runs from the end, and re-reads the
   * arrays). Otherwise a cooling candidate when the room the moves would leave at the same slopes (Lb plus their
   * gains) reaches zCold. Returns how many bounds it computed.
   */
  sweep(
    t: number,
    pf: Float64Array,
    tickNo: number,
    zCold: number,
    cool: CoolQueue,
    evaluate: (s: number) => void,
  ): number {
    let { stamp, time, valid, phi, base, termOff, termCnt, denom, slot, price, basePrice, down, up } = this;
    let swept = 0;
    for (let i = this.length - 1; i >= 0; i--) {
      if (stamp[i] === tickNo) continue;
      swept++;
      const dt = t - (time[i] as number);
      let lb = Number.NaN;
      let gain = 0;
      if (dt >= 0 && t <= (valid[i] as number)) {
        const f = phi[i] as number;
        const b = base[i] as number;
        let x = b - f * dt;
        let mag = Math.abs(b) + f * dt;
        const off = termOff[i] as number;
        const end = off + (termCnt[i] as number);
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
        lb = x - ETA * mag;
      }
      if (!(lb >= 0)) {
        evaluate(slot[i] as number);
        ({ stamp, time, valid, phi, base, termOff, termCnt, denom, slot, price, basePrice, down, up } = this);
        continue;
      }
      const est = lb + gain;
      const den = denom[i] as number;
      if (est >= zCold * den) cool.offer(slot[i] as number, den > 0 ? est / den : Number.POSITIVE_INFINITY);
    }
    return swept;
  }
}

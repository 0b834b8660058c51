/**
 * The engine's memory as a structure of arrays: one slot per account (tier, base slack and time, time slope, room,
 * deadline, list position) and one term per (account, price) in a pool (price, slopes, base price, the levels it
 * placed, its position in the price's reverse list). No per-account Map or object besides the caller's record.
 */

export const FREE = 0;
export const DIRTY = 1;
export const COLD = 2;
export const WARM = 3;
export const LIQUIDATABLE = 4;
export const WAITING = 5;
export const TIER_NAMES = ["free", "dirty", "cold", "warm", "liquidatable", "waiting"] as const;

/** A growable list of int32. */
export class IntList {
  data: Int32Array;
  length = 0;

  constructor(capacity = 16) {
    this.data = new Int32Array(Math.max(4, capacity));
  }

  push(x: number): void {
    if (this.length === this.data.length) {
      const next = new Int32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = x;
  }

  clear(): void {
    this.length = 0;
  }
}

function growF64(a: ArrayLike<number>, n: number, fill = 0) {
  const b = new Float64Array(n);
  b.set(a);
  if (fill !== 0) b.fill(fill, a.length);
  return b;
}
function growI32(a: ArrayLike<number>, n: number) {
  const b = new Int32Array(n);
  b.set(a);
  return b;
}

/** Per-account arrays, indexed by slot. */
export class Slots {
  capacity = 0;
  tier = new Uint8Array(0);
  termOff = new Int32Array(0);
  termCnt = new Int32Array(0);
  /** Ŝ − e_a of the base evaluation, as a double. */
  base = new Float64Array(0);
  baseTime = new Float64Array(0);
  /** The time after which the sensitivity's perSecond no longer holds for this base. */
  validUntil = new Float64Array(0);
  phi = new Float64Array(0);
  /** The model's rounding e_a (wei, as a double), and whether the slopes stored are the current state's. */
  rounding = new Float64Array(0);
  sensed = new Uint8Array(0);
  /** Slack one typical move of every price costs (the room's denominator). */
  denom = new Float64Array(0);
  room = new Float64Array(0);
  deadline = new Float64Array(0);
  /** Position in the warm or liquidatable list. */
  listPos = new Int32Array(0);
  /** Tick of the last exact evaluation, and of the last touch of any kind. */
  stamp = new Int32Array(0);
  touch = new Int32Array(0);
  /** The price a waiting account waits for (-1: retry at the next tick). */
  waitPrice = new Int32Array(0);

  ensure(n: number): void {
    if (n <= this.capacity) return;
    const c = Math.max(n, Math.ceil(this.capacity * 1.5), 1024);
    const tier = new Uint8Array(c);
    tier.set(this.tier);
    this.tier = tier;
    this.termOff = growI32(this.termOff, c);
    this.termCnt = growI32(this.termCnt, c);
    this.base = growF64(this.base, c);
    this.baseTime = growF64(this.baseTime, c);
    this.validUntil = growF64(this.validUntil, c);
    this.phi = growF64(this.phi, c);
    this.rounding = growF64(this.rounding, c);
    const sensed = new Uint8Array(c);
    sensed.set(this.sensed);
    this.sensed = sensed;
    this.denom = growF64(this.denom, c);
    this.room = growF64(this.room, c, Number.NaN);
    this.deadline = growF64(this.deadline, c);
    this.listPos = growI32(this.listPos, c);
    this.stamp = growI32(this.stamp, c);
    this.touch = growI32(this.touch, c);
    this.waitPrice = growI32(this.waitPrice, c);
    this.capacity = c;
  }
}

/** The term pool: an account's k terms are contiguous at termOff[slot]. */
export class Terms {
  capacity = 0;
  /** End of the used part, and the dead terms below it (freed by accounts that changed their prices or left). */
  top = 0;
  garbage = 0;
  price = new Int32Array(0);
  slot = new Int32Array(0);
  revPos = new Int32Array(0);
  down = new Float64Array(0);
  up = new Float64Array(0);
  basePrice = new Float64Array(0);
  levDown = new Float64Array(0);
  levUp = new Float64Array(0);

  ensure(n: number): void {
    if (n <= this.capacity) return;
    this.resize(Math.max(n, Math.ceil(this.capacity * 1.5), 1024));
  }

  /** Reallocates to `c` terms (c ≥ top). */
  resize(c: number): void {
    this.price = growI32(this.price.subarray(0, Math.min(this.top, c)), c);
    this.slot = growI32(this.slot.subarray(0, Math.min(this.top, c)), c);
    this.revPos = growI32(this.revPos.subarray(0, Math.min(this.top, c)), c);
    this.down = growF64(this.down.subarray(0, Math.min(this.top, c)), c);
    this.up = growF64(this.up.subarray(0, Math.min(this.top, c)), c);
    this.basePrice = growF64(this.basePrice.subarray(0, Math.min(this.top, c)), c);
    this.levDown = growF64(this.levDown.subarray(0, Math.min(this.top, c)), c);
    this.levUp = growF64(this.levUp.subarray(0, Math.min(this.top, c)), c);
    this.capacity = c;
  }

  /** Moves term `from` to `to` (to < from), every field. */
  move(from: number, to: number): void {
    this.price[to] = this.price[from] as number;
    this.slot[to] = this.slot[from] as number;
    this.revPos[to] = this.revPos[from] as number;
    this.down[to] = this.down[from] as number;
    this.up[to] = this.up[from] as number;
    this.basePrice[to] = this.basePrice[from] as number;
    this.levDown[to] = this.levDown[from] as number;
    this.levUp[to] = this.levUp[from] as number;
  }

  bytes(): number {
    return this.capacity * (4 * 3 + 8 * 5);
  }
}

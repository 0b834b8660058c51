/**
 * Which tier each account is in, and the tiers' lists: dirty (to evaluate at the next tick), warm (the dense
 * WarmSet), liquidatable (evaluated every tick), waiting (per missing price, and a retry list); cold accounts are
 * in no list (their levels are in the trees, their deadline in the heap). Moving an account keeps the lists and the
 * per-tier counts exact in O(1).
 */
import type { AccountRecord, PriceId } from "../../protocol/types.ts";
import type { Book } from "./book.ts";
import { COLD, DIRTY, FREE, IntList, LIQUIDATABLE, WAITING, WARM } from "./store.ts";
import { WarmSet } from "./warm.ts";

export class Tiers<A extends AccountRecord> {
  readonly warm = new WarmSet();
  readonly liq = new IntList();
  readonly dirty = new IntList();
  readonly retry = new IntList();
  readonly waits: IntList[] = [];
  /** Accounts per tier (index: the tier code). */
  readonly counts = new Int32Array(6);

  constructor(private readonly book: Book<A>) {}

  clear(): void {
    this.warm.clear();
    this.liq.clear();
    this.dirty.clear();
    this.retry.clear();
    this.waits.length = 0;
    this.counts.fill(0);
  }

  /** Leaves the current tier (its list, if any) and enters `to` (its list, if any). */
  moveTo(s: number, to: number): void {
    const slots = this.book.slots;
    const from = slots.tier[s] as number;
    if (from === to && (to === WARM || to === LIQUIDATABLE)) return;
    if (from === WARM) {
      const pos = slots.listPos[s] as number;
      const moved = this.warm.removeAt(pos);
      if (moved >= 0) slots.listPos[moved] = pos;
    } else if (from === LIQUIDATABLE) {
      const list = this.liq;
      const pos = slots.listPos[s] as number;
      const last = list.data[--list.length] as number;
      if (last !== s) {
        list.data[pos] = last;
        slots.listPos[last] = pos;
      }
    }
    this.counts[from] = (this.counts[from] as number) - 1;
    this.counts[to] = (this.counts[to] as number) + 1;
    slots.tier[s] = to;
    if (to === WARM) {
      slots.listPos[s] = this.warm.add(s, this.book, slots.stamp[s] as number);
    } else if (to === LIQUIDATABLE) {
      slots.listPos[s] = this.liq.length;
      this.liq.push(s);
    }
  }

  /** Into the warm tier, or (already there) its warm copy refreshed after a re-base. */
  warmUp(s: number): void {
    const slots = this.book.slots;
    if (slots.tier[s] === WARM) this.warm.refresh(slots.listPos[s] as number, this.book, slots.stamp[s] as number);
    else this.moveTo(s, WARM);
  }

  /** Changed: evaluated exactly at the next tick, its slopes asked again. */
  markDirty(s: number): void {
    this.book.slots.sensed[s] = 0;
    if (this.book.slots.tier[s] === DIRTY) return;
    this.moveTo(s, DIRTY);
    this.dirty.push(s);
  }

  /** To evaluate exactly in this tick's dirty pass, the account unchanged (its slopes stay). */
  queue(s: number): void {
    if (this.book.slots.tier[s] === DIRTY) return;
    this.moveTo(s, DIRTY);
    this.dirty.push(s);
  }

  dirtyAll(): void {
    for (let s = 0; s < this.book.slotCount; s++) if (this.book.slots.tier[s] !== FREE) this.markDirty(s);
  }

  /** Unpriced: waits for the first missing price absent from the view (`pf`), or retries at the next tick. */
  wait(s: number, missing: readonly PriceId[], pf: Float64Array): void {
    this.moveTo(s, WAITING);
    const slots = this.book.slots;
    slots.room[s] = Number.NaN;
    for (const id of missing) {
      if (!Number.isNaN(pf[id] ?? Number.NaN)) continue;
      slots.waitPrice[s] = id;
      let list = this.waits[id];
      if (list === undefined) {
        list = new IntList();
        this.waits[id] = list;
      }
      list.push(s);
      return;
    }
    slots.waitPrice[s] = -1; // every missing price is in the view: try again at the next tick
    this.retry.push(s);
  }

  /** Waiting accounts whose price `id` is back: dirty. */
  release(id: PriceId): void {
    const list = this.waits[id];
    if (list === undefined) return;
    const { tier, waitPrice } = this.book.slots;
    for (let j = 0; j < list.length; j++) {
      const s = list.data[j] as number;
      if (tier[s] === WAITING && waitPrice[s] === id) this.markDirty(s);
    }
    list.clear();
  }

  /** The retry list: dirty. */
  releaseRetries(): void {
    const { tier, waitPrice } = this.book.slots;
    for (let j = 0; j < this.retry.length; j++) {
      const s = this.retry.data[j] as number;
      if (tier[s] === WAITING && waitPrice[s] === -1) this.markDirty(s);
    }
    this.retry.clear();
  }

  /** The lists and counts agree with the slots' tiers (tests). */
  audit(problems: string[]): void {
    const slots = this.book.slots;
    for (let i = 0; i < this.warm.length; i++) {
      const s = this.warm.slot[i] as number;
      if (slots.tier[s] !== WARM || slots.listPos[s] !== i) problems.push(`warm entry ${i}: slot ${s}`);
    }
    for (let i = 0; i < this.liq.length; i++) {
      const s = this.liq.data[i] as number;
      if (slots.tier[s] !== LIQUIDATABLE || slots.listPos[s] !== i) problems.push(`liquidatable entry ${i}: slot ${s}`);
    }
    const counted = new Int32Array(6);
    for (let s = 0; s < this.book.slotCount; s++) {
      if (this.book.accounts[s] !== undefined)
        counted[slots.tier[s] as number] = (counted[slots.tier[s] as number] as number) + 1;
    }
    for (const tier of [DIRTY, COLD, WARM, LIQUIDATABLE, WAITING]) {
      if (counted[tier] !== this.counts[tier])
        problems.push(`tier ${tier}: ${counted[tier]} accounts, counted ${this.counts[tier]}`);
    }
    if (this.warm.length !== this.counts[WARM])
      problems.push(`warm list ${this.warm.length}, count ${this.counts[WARM]}`);
  }
}

/**
 * The cross-margin risk engine (docs/risk-cross.md, design: docs/protocols.md 3.1-3.7): finds, at every tick, every
 * account whose slack is below 0 at the tick's prices and time, without visiting every account, through any
 * `MarginModel`. Accounts are in one tier each: dirty (changed: evaluate exactly), cold (a certificate: a safe box of
 * levels in per-price B+trees and a deadline in a heap), warm (a float lower bound swept every tick), liquidatable
 * (evaluated exactly every tick: candidates, or to confirm), waiting (a price it needs has no value).
 */
import {
  type AccountKey,
  type AccountRecord,
  type Evaluation,
  highSlack,
  lowSlack,
  type MarginModel,
  type PriceId,
  type PriceView,
} from "../../protocol/types.ts";
import { Book } from "./book.ts";
import { Certificates } from "./certificates.ts";
import { CoolQueue } from "./cool.ts";
import { PriceState } from "./prices.ts";
import { COLD, DIRTY, FREE, IntList, LIQUIDATABLE, TIER_NAMES, WAITING, WARM } from "./store.ts";

export interface CrossRiskOptions {
  /** Room (in typical moves) from which an account is certified cold; below it is swept warm. Default 12. */
  readonly zCold?: number;
  /** Most warm accounts re-certified cold per tick (the ones with most room first). Default 64. */
  readonly coolPerTick?: number;
  /** Longest certificate, in seconds (the sensitivity's own horizon caps it too). Default 3600. */
  readonly horizon?: bigint;
  /** First typical move of a price, relative to it, until moves are seen. Default 1e-3. */
  readonly initialMove?: number;
  /** Smoothing of the typical moves: the EWMA's weight of the newest move. Default 1/32. */
  readonly moveAlpha?: number;
}

export interface Flagged<A> {
  readonly account: A;
  readonly evaluation: Evaluation;
}

export interface TickResult<A> {
  /** High slack < 0: the contract liquidates them at this view. */
  readonly liquidatable: Flagged<A>[];
  /** Bounded evaluations with low < 0 ≤ high: settle with a confirmation read, then `observe`. */
  readonly confirm: Flagged<A>[];
}

export type Tier = "dirty" | "cold" | "warm" | "liquidatable" | "waiting";
export type Verdict = "liquidatable" | "confirm" | "safe" | "unpriced" | "ignored";

/** What the last tick did. */
export interface TickStats {
  /** Levels fired (accounts moved cold → warm by a price), deadlines expired. */
  fired: number;
  expired: number;
  /** Exact evaluations (model.evaluate calls), warm bounds computed, accounts re-certified cold. */
  evaluated: number;
  swept: number;
  cooled: number;
  /** Distinct accounts fired, expired, swept or evaluated. */
  touched: number;
}

export class CrossRiskEngine<A extends AccountRecord> {
  private readonly zCold: number;
  private readonly coolPerTick: number;
  private readonly horizon: number;
  private readonly book: Book<A>;
  private readonly prices: PriceState;
  private readonly certs: Certificates<A>;
  private readonly waits: IntList[] = [];
  private readonly retry = new IntList();
  private readonly dirty = new IntList();
  private readonly warm = new IntList(1024);
  private readonly liq = new IntList();
  private readonly cool: CoolQueue;
  private tickNo = 0;
  /** The current tick's view, result and time, while a tick runs. */
  private view: PriceView | undefined;
  private out: TickResult<A> = { liquidatable: [], confirm: [] };
  readonly lastTick: TickStats = { fired: 0, expired: 0, evaluated: 0, swept: 0, cooled: 0, touched: 0 };

  constructor(
    private readonly model: MarginModel<A>,
    options: CrossRiskOptions = {},
  ) {
    this.zCold = options.zCold ?? 12;
    this.coolPerTick = options.coolPerTick ?? 64;
    this.horizon = Number(options.horizon ?? 3600n);
    if (!(this.zCold >= 0) || !(this.coolPerTick >= 0) || !(this.horizon > 0)) throw new Error("bad risk options");
    this.prices = new PriceState(options.moveAlpha ?? 1 / 32, options.initialMove ?? 1e-3);
    this.book = new Book<A>();
    this.cool = new CoolQueue(this.coolPerTick);
    this.certs = new Certificates(this.book, this.prices, this.zCold, this.horizon);
  }

  get size(): number {
    return this.book.size;
  }

  get(key: AccountKey): A | undefined {
    const s = this.book.slotOf(key);
    return s === undefined ? undefined : this.book.accounts[s];
  }

  /** Every account, in no particular order. */
  *values(): IterableIterator<A> {
    for (const a of this.book.accounts) if (a !== undefined) yield a;
  }

  /** An event changed the account (or it is new): evaluated exactly at the next tick. */
  upsert(account: A): void {
    for (const id of account.prices) this.prices.ensure(id);
    const known = this.book.slotOf(account.key);
    if (known !== undefined) this.certs.dropLevels(known);
    const s = this.book.put(account);
    this.markDirty(s);
  }

  remove(key: AccountKey): void {
    const s = this.book.slotOf(key);
    if (s === undefined) return;
    this.certs.dropLevels(s);
    this.moveTo(s, FREE);
    this.book.delete(s);
  }

  /** A parameter of the market of `priceId` changed: every account on that price is evaluated at the next tick. */
  touchPrice(priceId: PriceId): void {
    this.book.forEachOnPrice(priceId, (s) => this.markDirty(s));
  }

  clear(): void {
    this.book.clear();
    this.prices.clear();
    this.certs.clear();
    this.waits.length = 0;
    for (const list of [this.retry, this.dirty, this.warm, this.liq]) list.clear();
  }

  /** The account's room in typical moves at its last evaluation (0: liquidatable or to confirm; undefined: unknown). */
  room(key: AccountKey): number | undefined {
    const s = this.book.slotOf(key);
    if (s === undefined) return undefined;
    const tier = this.book.slots.tier[s];
    if (tier === LIQUIDATABLE) return 0;
    const z = this.book.slots.room[s] as number;
    return tier === DIRTY || tier === WAITING || Number.isNaN(z) ? undefined : z;
  }

  tierOf(key: AccountKey): Tier | undefined {
    const s = this.book.slotOf(key);
    return s === undefined ? undefined : (TIER_NAMES[this.book.slots.tier[s] as number] as Tier);
  }

  /** Accounts per tier and the index's sizes. */
  stats(): Record<Tier, number> & { accounts: number; levels: number; deadlines: number; warmTerms: number } {
    const counts = { dirty: 0, cold: 0, warm: 0, liquidatable: 0, waiting: 0 };
    const { tier, termCnt } = this.book.slots;
    let warmTerms = 0;
    for (let s = 0; s < this.book.slotCount; s++) {
      const name = TIER_NAMES[tier[s] as number];
      if (name !== undefined && name !== "free") counts[name]++;
      if (tier[s] === WARM) warmTerms += termCnt[s] as number;
    }
    return {
      ...counts,
      accounts: this.size,
      levels: this.certs.levels.size,
      deadlines: this.certs.heap.size,
      warmTerms,
    };
  }

  /**
   * One tick at `view` (prices, and the block time the contract will use; timestamps never decrease, else every
   * account is re-evaluated). `moved` may name prices that changed; the engine also compares the view with the last
   * one itself, so naming too few is never unsound. Returns every account liquidatable at the view (high slack < 0)
   * and the bounded ones that straddle 0.
   */
  tick(view: PriceView, moved?: readonly PriceId[]): TickResult<A> {
    const stats = this.lastTick;
    stats.fired = stats.expired = stats.evaluated = stats.swept = stats.cooled = stats.touched = 0;
    this.tickNo++;
    if (!this.prices.read(view, moved)) this.dirtyAll();
    this.view = view;
    this.out = { liquidatable: [], confirm: [] };
    const t = Number(view.timestamp);
    const pf = this.prices.f;
    const changed = this.prices.changed;

    // 1. walk the moved prices' trees: crossed faces fire (cold -> warm)
    for (let i = 0; i < changed.length; i++) {
      const id = changed.data[i] as number;
      const p = pf[id] as number;
      if (Number.isNaN(p)) continue;
      this.certs.levels.walkDown(id, p, this.fire);
      this.certs.levels.walkUp(id, p, this.fire);
    }
    // 2. deadlines due
    const { tier, deadline } = this.book.slots;
    const heap = this.certs.heap;
    while (heap.peek() <= t) {
      const s = heap.pop();
      if (tier[s] === COLD && (deadline[s] as number) <= t) {
        this.moveTo(s, WARM);
        this.touch(s);
        stats.expired++;
      }
    }
    if (heap.size > 2 * this.cold() + 1024) {
      heap.compact((key, s) => this.book.slots.tier[s] === COLD && this.book.slots.deadline[s] === key);
    }
    // 3. waiting accounts whose price came back, and retries
    for (let i = 0; i < changed.length; i++) {
      const id = changed.data[i] as number;
      const list = this.waits[id];
      if (list === undefined || Number.isNaN(pf[id] as number)) continue;
      for (let j = 0; j < list.length; j++) {
        const s = list.data[j] as number;
        if (tier[s] === WAITING && this.book.slots.waitPrice[s] === id) this.markDirty(s);
      }
      list.clear();
    }
    for (let j = 0; j < this.retry.length; j++) {
      const s = this.retry.data[j] as number;
      if (tier[s] === WAITING && this.book.slots.waitPrice[s] === -1) this.markDirty(s);
    }
    this.retry.clear();
    // 4. dirty: exact evaluation
    for (let i = 0; i < this.dirty.length; i++) {
      const s = this.dirty.data[i] as number;
      if (this.book.slots.tier[s] === DIRTY) this.evaluate(s, true);
    }
    this.dirty.clear();
    // 5. warm sweep (and the cooling candidates), 6. liquidatable, 7. cooling
    this.sweep(t);
    for (let i = this.liq.length - 1; i >= 0; i--) {
      const s = this.liq.data[i] as number;
      if (this.book.slots.stamp[s] !== this.tickNo) this.evaluate(s, true);
    }
    const cool = this.cool;
    for (let i = 0; i < cool.length; i++) {
      const s = cool.slots[i] as number;
      if (this.book.slots.tier[s] !== WARM || this.book.slots.stamp[s] === this.tickNo) continue;
      this.evaluate(s, true);
      if ((this.book.slots.tier[s] as number) === COLD) stats.cooled++;
    }
    cool.clear();
    this.book.maybeCompact();
    const out = this.out;
    this.view = undefined;
    this.out = { liquidatable: [], confirm: [] };
    return out;
  }

  /**
   * A confirmation read's answer for the account at `view` (an earlier head is fine): re-bases it (warm) when the
   * answer is safe, keeps it liquidatable otherwise. Ignored while the account is dirty (an event came after).
   */
  observe(key: AccountKey, evaluation: Evaluation, view: PriceView): Verdict {
    const s = this.book.slotOf(key);
    if (s === undefined || this.book.slots.tier[s] === DIRTY) return "ignored";
    this.view = view;
    this.out = { liquidatable: [], confirm: [] };
    this.settle(s, evaluation, false, this.prices.floatsOf(view));
    const out = this.out;
    this.view = undefined;
    this.out = { liquidatable: [], confirm: [] };
    if (out.liquidatable.length > 0) return "liquidatable";
    if (out.confirm.length > 0) return "confirm";
    return this.book.slots.tier[s] === WAITING ? "unpriced" : "safe";
  }

  // ------------------------------------------------------------------------------------------ tiers

  private readonly fire = (s: number): void => {
    if (this.book.slots.tier[s] !== COLD) return; // a stale level (the account left cold): dropped by the walk
    this.moveTo(s, WARM);
    this.touch(s);
    this.lastTick.fired++;
  };

  private cold(): number {
    return this.book.size - this.warm.length - this.liq.length - this.dirty.length;
  }

  private touch(s: number): void {
    const slots = this.book.slots;
    if (slots.touch[s] !== this.tickNo) {
      slots.touch[s] = this.tickNo;
      this.lastTick.touched++;
    }
  }

  private markDirty(s: number): void {
    if (this.book.slots.tier[s] === DIRTY) return;
    this.moveTo(s, DIRTY);
    this.dirty.push(s);
  }

  private dirtyAll(): void {
    for (let s = 0; s < this.book.slotCount; s++) if (this.book.slots.tier[s] !== FREE) this.markDirty(s);
  }

  /** Leaves the current tier (its list, if any) and enters `to` (its list, if any). */
  private moveTo(s: number, to: number): void {
    const slots = this.book.slots;
    const from = slots.tier[s] as number;
    if (from === to && (to === WARM || to === LIQUIDATABLE)) return;
    if (from === WARM || from === LIQUIDATABLE) {
      const list = from === WARM ? this.warm : this.liq;
      const pos = slots.listPos[s] as number;
      const last = list.data[--list.length] as number;
      if (last !== s) {
        list.data[pos] = last;
        slots.listPos[last] = pos;
      }
    }
    slots.tier[s] = to;
    if (to === WARM || to === LIQUIDATABLE) {
      const list = to === WARM ? this.warm : this.liq;
      slots.listPos[s] = list.length;
      list.push(s);
    }
  }

  private wait(s: number, missing: readonly PriceId[], pf: Float64Array): void {
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

  // ------------------------------------------------------------------------------------------ evaluation

  private evaluate(s: number, allowCold: boolean): void {
    const view = this.view as PriceView;
    this.lastTick.evaluated++;
    this.touch(s);
    this.settle(s, this.model.evaluate(this.book.accounts[s] as A, view), allowCold, this.prices.f);
  }

  /** Files an exact (or bounded) evaluation of the account at the current view; `pf`: that view's prices. */
  private settle(s: number, evaluation: Evaluation, allowCold: boolean, pf: Float64Array): void {
    const slots = this.book.slots;
    slots.stamp[s] = this.tickNo;
    const account = this.book.accounts[s] as A;
    if (evaluation.kind === "unpriced") {
      this.wait(s, evaluation.missing, pf);
      return;
    }
    const low = lowSlack(evaluation) as bigint;
    const high = highSlack(evaluation) as bigint;
    if (low < 0n) {
      this.moveTo(s, LIQUIDATABLE);
      (high < 0n ? this.out.liquidatable : this.out.confirm).push({ account, evaluation });
      return;
    }
    const view = this.view as PriceView;
    this.certs.rebase(s, low, this.model.sensitivity(account, view), pf, Number(view.timestamp));
    if (allowCold && (slots.room[s] as number) >= this.zCold && this.certs.certify(s)) this.moveTo(s, COLD);
    else this.moveTo(s, WARM);
  }

  /** The warm tier: its float bound, an exact evaluation where it is below 0, cooling candidates where room ≥ zCold. */
  private sweep(t: number): void {
    const { stamp, denom } = this.book.slots;
    const warm = this.warm;
    const tickNo = this.tickNo;
    const zCold = this.zCold;
    const certs = this.certs;
    let swept = 0;
    for (let i = warm.length - 1; i >= 0; i--) {
      const s = warm.data[i] as number;
      if (stamp[s] === tickNo) continue;
      swept++;
      const lb = certs.bound(s, t);
      if (!(lb >= 0)) {
        this.evaluate(s, true);
        continue;
      }
      // cooling candidates: ranked by the room the moves since the base would leave at the same slopes
      const est = lb + certs.gain;
      const den = denom[s] as number;
      if (est >= zCold * den) this.cool.offer(s, den > 0 ? est / den : Number.POSITIVE_INFINITY);
    }
    this.lastTick.swept = swept;
  }
}

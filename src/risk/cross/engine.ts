/**
 * The cross-margin risk engine (docs/risk-cross.md; the design: protocols.md 3.1-3.7): finds, at every tick, every
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
import { Book, samePrices } from "./book.ts";
import { type Certificate, Certificates } from "./certificates.ts";
import { CoolQueue } from "./cool.ts";
import { PriceState } from "./prices.ts";
import { COLD, DIRTY, FREE, LIQUIDATABLE, TIER_NAMES, WAITING, WARM } from "./store.ts";
import { Tiers } from "./tiers.ts";

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
  /** Distinct accounts fired, expired, evaluated or re-certified. */
  touched: number;
}

export class CrossRiskEngine<A extends AccountRecord> {
  private readonly zCold: number;
  private readonly coolPerTick: number;
  private readonly horizon: number;
  private readonly book: Book<A>;
  private readonly prices: PriceState;
  private readonly certs: Certificates<A>;
  private readonly tiers: Tiers<A>;
  private readonly cool: CoolQueue;
  private tickNo = 0;
  /** The current tick's time. */
  private now = 0;
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
    this.tiers = new Tiers(this.book);
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
    // its standing faces stay (a stale level fires nothing; the next certificate reuses or drops them) unless its
    // prices change, which gives it new terms
    if (known !== undefined && !samePrices(this.book.accounts[known]?.prices ?? [], account.prices)) {
      this.certs.dropLevels(known);
    }
    const s = this.book.put(account);
    this.tiers.markDirty(s);
  }

  remove(key: AccountKey): void {
    const s = this.book.slotOf(key);
    if (s === undefined) return;
    this.certs.dropLevels(s);
    this.tiers.moveTo(s, FREE);
    this.book.delete(s);
  }

  /** A parameter of the market of `priceId` changed: every account on that price is evaluated at the next tick. */
  touchPrice(priceId: PriceId): void {
    this.book.forEachOnPrice(priceId, (s) => this.tiers.markDirty(s));
  }

  clear(): void {
    this.book.clear();
    this.prices.clear();
    this.certs.clear();
    this.tiers.clear();
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

  /** Accounts per tier and the index's sizes, in O(prices). */
  stats(): Record<Tier, number> & { accounts: number; levels: number; deadlines: number } {
    const c = this.tiers.counts;
    return {
      dirty: c[DIRTY] as number,
      cold: c[COLD] as number,
      warm: c[WARM] as number,
      liquidatable: c[LIQUIDATABLE] as number,
      waiting: c[WAITING] as number,
      accounts: this.size,
      levels: this.certs.levels.size,
      deadlines: this.certs.heap.size,
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
    if (!this.prices.read(view, moved)) this.tiers.dirtyAll();
    this.view = view;
    this.out = { liquidatable: [], confirm: [] };
    const t = Number(view.timestamp);
    this.now = t;
    const pf = this.prices.f;
    const changed = this.prices.changed;

    // 1. walk the moved prices' trees: crossed faces fire (cold -> warm)
    for (let i = 0; i < changed.length; i++) {
      const id = changed.data[i] as number;
      const p = pf[id] as number;
      if (Number.isNaN(p)) continue;
      this.certs.walk(id, p, this.fire);
    }
    // 2. deadlines due
    const { tier, deadline } = this.book.slots;
    const heap = this.certs.heap;
    while (heap.peek() <= t) {
      const s = heap.pop();
      if (tier[s] === COLD && (deadline[s] as number) <= t) {
        this.leaveCold(s);
        stats.expired++;
      }
    }
    if (heap.size > 2 * (this.tiers.counts[COLD] as number) + 1024) {
      // an account's latest deadline stays, cold or not: a re-armed certificate keeps it
      heap.compact((key, s) => this.book.accounts[s] !== undefined && this.book.slots.deadline[s] === key);
    }
    // 3. waiting accounts whose price came back, and retries
    for (let i = 0; i < changed.length; i++) {
      const id = changed.data[i] as number;
      if (!Number.isNaN(pf[id] as number)) this.tiers.release(id);
    }
    this.tiers.releaseRetries();
    // 4. dirty (and fired below their bound): exact evaluation, in slot order when many (memory locality)
    if (this.tiers.dirty.length > 64) this.tiers.dirty.data.subarray(0, this.tiers.dirty.length).sort();
    for (let i = 0; i < this.tiers.dirty.length; i++) {
      const s = this.tiers.dirty.data[i] as number;
      if (this.book.slots.tier[s] === DIRTY) this.evaluate(s, true);
    }
    this.tiers.dirty.clear();
    // 5. warm sweep (and the cooling candidates), 6. liquidatable, 7. cooling
    this.sweep(t);
    for (let i = this.tiers.liq.length - 1; i >= 0; i--) {
      const s = this.tiers.liq.data[i] as number;
      if (this.book.slots.stamp[s] !== this.tickNo) this.evaluate(s, true);
    }
    this.coolDown(t);
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

  /**
   * The accounts that are not liquidatable now but will be at `view` (the next block's expected prices and time),
   * without changing anything: every warm account, and the cold ones whose certificate `view` breaks (a face its
   * prices cross, a deadline it reaches), evaluated exactly there; a cold account whose box holds the view is safe at
   * it. Accounts already liquidatable, dirty or waiting are not looked at; a bounded evaluation is not a verdict.
   * At most `maxEvaluations` model calls (`truncated` says when more were due).
   */
  lookahead(view: PriceView, maxEvaluations = 10_000): { liquidatable: Flagged<A>[]; truncated: boolean } {
    const { tier, deadline } = this.book.slots;
    const t = Number(view.timestamp);
    const seen = new Set<number>();
    const liquidatable: Flagged<A>[] = [];
    let truncated = false;
    let evaluations = 0;
    const consider = (s: number): void => {
      if (seen.has(s) || truncated) return;
      seen.add(s);
      if (tier[s] !== WARM && tier[s] !== COLD) return;
      if (++evaluations > maxEvaluations) {
        truncated = true;
        return;
      }
      const account = this.book.accounts[s] as A;
      const evaluation = this.model.evaluate(account, view);
      if (evaluation.kind !== "unpriced" && (highSlack(evaluation) as bigint) < 0n) {
        liquidatable.push({ account, evaluation });
      }
    };
    const warm = this.tiers.warm;
    for (let i = 0; i < warm.length; i++) consider(warm.slot[i] as number);
    const pf = this.prices.floatsOf(view);
    for (let id = 0; id < pf.length; id++) {
      const p = pf[id] as number;
      if (!Number.isNaN(p) && p !== this.prices.f[id]) this.certs.levels.scan(id, p, consider);
    }
    this.certs.heap.forEachDue(t, (s) => {
      if ((deadline[s] as number) <= t) consider(s);
    });
    return { liquidatable, truncated };
  }

  /**
   * A cold account's certificate (tests, diagnostics): per price its lower and upper level as stored in the trees
   * (the box the account is safe in) and the deadline; undefined unless the account is cold.
   */
  certificate(key: AccountKey): Certificate | undefined {
    const s = this.book.slotOf(key);
    return s === undefined || this.book.slots.tier[s] !== COLD ? undefined : this.certs.describe(s);
  }

  /** The index's consistency (tests): levels, lists and tier counts agree; empty when sound. */
  audit(): string[] {
    const slots = this.book.slots;
    const problems = this.certs.audit((s) => slots.tier[s] === COLD);
    this.tiers.audit(problems);
    return problems;
  }

  // ------------------------------------------------------------------------------------------ tiers

  private readonly fire = (s: number): void => {
    if (this.book.slots.tier[s] !== COLD) return; // a face of an account no longer cold: dropped by the walk
    this.leaveCold(s);
    this.lastTick.fired++;
  };

  /**
   * A face fired or the deadline passed: warm with the certificate's base, or straight to an exact evaluation in
   * this tick when the bound from that base is already below 0 (a crash: no warm copy made and swept first).
   */
  private leaveCold(s: number): void {
    this.touch(s);
    if (this.certs.bound(s, this.now) >= 0) this.tiers.moveTo(s, WARM);
    else this.tiers.queue(s);
  }

  private touch(s: number): void {
    const slots = this.book.slots;
    if (slots.touch[s] !== this.tickNo) {
      slots.touch[s] = this.tickNo;
      this.lastTick.touched++;
    }
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
      this.tiers.wait(s, evaluation.missing, pf);
      return;
    }
    const low = lowSlack(evaluation) as bigint;
    const high = highSlack(evaluation) as bigint;
    if (low < 0n) {
      this.tiers.moveTo(s, LIQUIDATABLE);
      (high < 0n ? this.out.liquidatable : this.out.confirm).push({ account, evaluation });
      return;
    }
    const view = this.view as PriceView;
    const t = Number(view.timestamp);
    if (!this.certs.sensed(s, t)) this.certs.setSensitivity(s, this.model.sensitivity(account, view), t);
    const base = Number(low) - (slots.rounding[s] as number);
    // faces still standing and the deadline are kept when the new base leaves zCold for the fired ones
    if (allowCold && pf === this.prices.f && this.certs.rearm(s, base, t)) {
      this.tiers.moveTo(s, COLD);
      return;
    }
    this.certs.rebase(s, low, pf, t);
    if (allowCold && (slots.room[s] as number) >= this.zCold && this.certs.certify(s)) this.tiers.moveTo(s, COLD);
    else this.tiers.warmUp(s);
  }

  /** The warm tier (WarmSet.sweep): exact evaluations where the bound is below 0, cooling candidates. */
  private sweep(t: number): void {
    this.lastTick.swept = this.tiers.warm.sweep(
      t,
      this.prices.f,
      this.tickNo,
      this.zCold,
      this.cool,
      this.evaluateWarm,
    );
  }

  private readonly evaluateWarm = (s: number): void => this.evaluate(s, true);

  /**
   * Cooling: the warm accounts with most room go back cold, at most coolPerTick. Where the bound alone leaves room
   * zCold (a deadline passed, or a multi-price account crossed one face), the certificate is re-planned from the bound
   * at the current prices, with no model call; where only the moves' gains would, from an exact evaluation.
   */
  private coolDown(t: number): void {
    const cool = this.cool;
    const slots = this.book.slots;
    for (let i = 0; i < cool.length; i++) {
      const s = cool.slots[i] as number;
      if (slots.tier[s] !== WARM || slots.stamp[s] === this.tickNo) continue;
      const lb = this.certs.bound(s, t);
      if (lb >= this.zCold * (slots.denom[s] as number)) {
        this.touch(s);
        slots.stamp[s] = this.tickNo;
        if (this.certs.rearm(s, lb, t)) this.tiers.moveTo(s, COLD);
        else {
          this.certs.rebaseTo(s, lb, this.prices.f, t);
          if ((slots.room[s] as number) >= this.zCold && this.certs.certify(s)) this.tiers.moveTo(s, COLD);
          else this.tiers.warmUp(s);
        }
      } else {
        this.evaluate(s, true);
      }
      if ((slots.tier[s] as number) === COLD) this.lastTick.cooled++;
    }
    cool.clear();
  }
}

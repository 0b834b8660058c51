/**
 * The engine's accounts: key → slot, the caller's records, the per-slot and per-term arrays (store.ts) and the
 * reverse index price → terms (for a market parameter change: every account on that price). Terms of an account are
 * contiguous in the pool; an account whose prices change gets a new block, and the pool is compacted in place when
 * half of it is dead.
 */
import type { AccountKey, AccountRecord, PriceId } from "../../protocol/types.ts";
import { IntList, Slots, Terms } from "./store.ts";

export class Book<A extends AccountRecord> {
  readonly slots = new Slots();
  readonly terms = new Terms();
  accounts: (A | undefined)[] = [];
  /** Slots ever used (the high-water mark). */
  slotCount = 0;
  private keys = new Map<AccountKey, number>();
  private free = new IntList();
  private rev: IntList[] = [];

  get size(): number {
    return this.keys.size;
  }

  slotOf(key: AccountKey): number | undefined {
    return this.keys.get(key);
  }

  /** Stores the record (new or replacing), with a term per price; returns its slot. */
  put(account: A): number {
    checkPrices(account);
    let s = this.keys.get(account.key);
    if (s === undefined) {
      s = this.free.length > 0 ? (this.free.data[--this.free.length] as number) : this.slotCount++;
      this.slots.ensure(s + 1);
      this.keys.set(account.key, s);
      this.slots.room[s] = Number.NaN;
      this.setTerms(s, account.prices);
    } else if (!samePrices((this.accounts[s] as A).prices, account.prices)) {
      this.releaseTerms(s);
      this.setTerms(s, account.prices);
    }
    this.accounts[s] = account;
    return s;
  }

  /** Forgets the account of slot `s` (its tier must already be FREE). */
  delete(s: number): void {
    const account = this.accounts[s];
    if (account === undefined) return;
    this.releaseTerms(s);
    this.accounts[s] = undefined;
    this.keys.delete(account.key);
    this.slots.room[s] = Number.NaN;
    this.free.push(s);
  }

  forEachOnPrice(price: PriceId, visit: (slot: number) => void): void {
    const list = this.rev[price];
    if (list === undefined) return;
    const slotOfTerm = this.terms.slot;
    for (let i = 0; i < list.length; i++) visit(slotOfTerm[list.data[i] as number] as number);
  }

  clear(): void {
    this.accounts = [];
    this.slotCount = 0;
    this.keys = new Map();
    this.free.clear();
    this.rev = [];
    this.slots.tier.fill(0);
    this.terms.top = 0;
    this.terms.garbage = 0;
  }

  /** Compacts the term pool when at least half of it is dead. */
  maybeCompact(): void {
    if (this.terms.garbage >= 4096 && this.terms.garbage * 2 >= this.terms.top) this.compact();
  }

  private compact(): void {
    const terms = this.terms;
    const { termOff } = this.slots;
    let w = 0;
    let prev = -1;
    for (let j = 0; j < terms.top; j++) {
      const s = terms.slot[j] as number;
      if (s < 0) continue;
      if (s !== prev) {
        termOff[s] = w;
        prev = s;
      }
      if (j !== w) {
        terms.move(j, w);
        (this.rev[terms.price[w] as number] as IntList).data[terms.revPos[w] as number] = w;
      }
      w++;
    }
    terms.top = w;
    terms.garbage = 0;
  }

  private setTerms(s: number, prices: readonly PriceId[]): void {
    const terms = this.terms;
    const k = prices.length;
    if (terms.top + k > terms.capacity && terms.garbage > 0 && terms.garbage * 2 >= terms.top) this.compact();
    terms.ensure(terms.top + k);
    const off = terms.top;
    terms.top += k;
    for (let i = 0; i < k; i++) {
      const j = off + i;
      const id = prices[i] as PriceId;
      terms.price[j] = id;
      terms.slot[j] = s;
      terms.down[j] = 0;
      terms.up[j] = 0;
      terms.basePrice[j] = Number.NaN;
      terms.levDown[j] = Number.NaN;
      terms.levUp[j] = Number.NaN;
      let list = this.rev[id];
      if (list === undefined) {
        list = new IntList();
        this.rev[id] = list;
      }
      terms.revPos[j] = list.length;
      list.push(j);
    }
    this.slots.termOff[s] = off;
    this.slots.termCnt[s] = k;
  }

  private releaseTerms(s: number): void {
    const terms = this.terms;
    const off = this.slots.termOff[s] as number;
    const end = off + (this.slots.termCnt[s] as number);
    for (let j = off; j < end; j++) {
      const list = this.rev[terms.price[j] as number] as IntList;
      const pos = terms.revPos[j] as number;
      const last = list.data[--list.length] as number;
      if (last !== j) {
        list.data[pos] = last;
        terms.revPos[last] = pos;
      }
      terms.slot[j] = -1;
    }
    terms.garbage += end - off;
    this.slots.termCnt[s] = 0;
  }
}

function checkPrices(account: AccountRecord): void {
  const prices = account.prices;
  for (let i = 0; i < prices.length; i++) {
    const id = prices[i] as number;
    if (!Number.isInteger(id) || id < 0 || (i > 0 && id <= (prices[i - 1] as number))) {
      throw new Error(`account ${account.key}: prices must be ascending non-negative integers without duplicates`);
    }
  }
}

export function samePrices(a: readonly PriceId[], b: readonly PriceId[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

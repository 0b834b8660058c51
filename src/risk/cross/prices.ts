/**
 * The engine's view of the prices between ticks: the last value of each price (bigint and double), which prices a
 * tick changed, and the typical move per price (an EWMA of |Δp| per head, at least one price unit) and per block.
 */
import type { PriceId, PriceView } from "../../protocol/types.ts";
import { IntList } from "./store.ts";

export class PriceState {
  /** Prices as doubles, NaN where the view has none. */
  f = new Float64Array(0);
  /** Typical move per price (WAD units), and of the block time (seconds). */
  move = new Float64Array(0);
  blockInterval = 1;
  private last: (bigint | undefined)[] = [];
  private mark = new Int32Array(0);
  private markNo = 0;
  readonly changed = new IntList();
  private lastTime = Number.NaN;

  constructor(
    private readonly alpha: number,
    private readonly initialMove: number,
  ) {}

  get count(): number {
    return this.f.length;
  }

  /** The time of the last view read (NaN before the first). */
  get time(): number {
    return this.lastTime;
  }

  ensure(id: PriceId): void {
    if (!Number.isInteger(id) || id < 0) throw new Error(`price id ${id} is not a non-negative integer`);
    if (id < this.f.length) return;
    const n = Math.max(id + 1, this.f.length * 2, 8);
    const f = new Float64Array(n).fill(Number.NaN);
    f.set(this.f);
    this.f = f;
    const move = new Float64Array(n);
    move.set(this.move);
    this.move = move;
    const mark = new Int32Array(n);
    mark.set(this.mark);
    this.mark = mark;
  }

  /**
   * Reads a view: fills `changed` with every price whose value differs from the last view (appeared, vanished or
   * moved) plus the hinted ones, and updates the typical moves. Returns false if time went backwards.
   */
  read(view: PriceView, hint?: readonly PriceId[]): boolean {
    const t = Number(view.timestamp);
    const backwards = t < this.lastTime;
    const head = t !== this.lastTime;
    if (t > this.lastTime) {
      const dt = t - this.lastTime;
      this.blockInterval = Math.max(1, this.blockInterval + this.alpha * (dt - this.blockInterval));
    }
    this.lastTime = t;
    this.changed.clear();
    const markNo = ++this.markNo;
    const prices = view.prices;
    for (let id = 0; id < this.f.length; id++) {
      if (this.last[id] !== undefined && !prices.has(id)) {
        this.last[id] = undefined;
        this.f[id] = Number.NaN;
        this.mark[id] = markNo;
        this.changed.push(id);
      }
    }
    for (const [id, p] of prices) {
      this.ensure(id);
      const prev = this.last[id];
      if (prev === p) {
        if (head) this.move[id] = Math.max(1, (1 - this.alpha) * (this.move[id] as number));
        continue;
      }
      const x = Number(p);
      if (prev === undefined) {
        if (!((this.move[id] as number) > 0)) this.move[id] = Math.max(1, Math.abs(x) * this.initialMove);
      } else {
        const d = Math.abs(x - (this.f[id] as number));
        const v = this.move[id] as number;
        this.move[id] = Math.max(1, v + this.alpha * (d - v));
      }
      this.f[id] = x;
      this.last[id] = p;
      this.mark[id] = markNo;
      this.changed.push(id);
    }
    if (hint) {
      for (const id of hint) {
        if (id < this.f.length && this.mark[id] !== markNo && prices.has(id)) {
          this.mark[id] = markNo;
          this.changed.push(id);
        }
      }
    }
    return !backwards;
  }

  /** The view's prices as doubles over the known ids (NaN where absent), for an evaluation made at another view. */
  floatsOf(view: PriceView): Float64Array {
    for (const id of view.prices.keys()) this.ensure(id);
    const f = new Float64Array(this.f.length).fill(Number.NaN);
    for (const [id, p] of view.prices) f[id] = Number(p);
    return f;
  }

  clear(): void {
    this.f = new Float64Array(0);
    this.move = new Float64Array(0);
    this.mark = new Int32Array(0);
    this.last = [];
    this.blockInterval = 1;
    this.lastTime = Number.NaN;
    this.changed.clear();
  }
}

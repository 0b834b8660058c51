/**
 * A binary min-heap of (deadline, slot) pairs in typed arrays: the certificates' deadlines (docs/risk-cross.md).
 * Entries are never updated in place; a re-certified account pushes a new pair and the old one is dropped when it
 * pops (the engine checks it against the account's current deadline) or when `compact` filters the heap.
 */
export class DeadlineHeap {
  private keys: Float64Array;
  private slots: Int32Array;
  private count = 0;

  constructor(capacity = 1024) {
    this.keys = new Float64Array(Math.max(16, capacity));
    this.slots = new Int32Array(Math.max(16, capacity));
  }

  get size(): number {
    return this.count;
  }

  /** The smallest deadline, or +Infinity when empty. */
  peek(): number {
    return this.count > 0 ? (this.keys[0] as number) : Number.POSITIVE_INFINITY;
  }

  /** The slot of the smallest deadline (-1 when empty). */
  peekSlot(): number {
    return this.count > 0 ? (this.slots[0] as number) : -1;
  }

  push(key: number, slot: number): void {
    if (this.count === this.keys.length) this.grow();
    const keys = this.keys;
    const slots = this.slots;
    let i = this.count++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pk = keys[parent] as number;
      if (pk <= key) break;
      keys[i] = pk;
      slots[i] = slots[parent] as number;
      i = parent;
    }
    keys[i] = key;
    slots[i] = slot;
  }

  /** Removes the smallest entry and returns its slot (-1 when empty). */
  pop(): number {
    if (this.count === 0) return -1;
    const top = this.slots[0] as number;
    const n = --this.count;
    if (n > 0) this.siftDown(this.keys[n] as number, this.slots[n] as number, 0, n);
    return top;
  }

  /** Keeps only the entries `keep` accepts, in O(n) (Floyd's heap construction). */
  compact(keep: (key: number, slot: number) => boolean): void {
    const keys = this.keys;
    const slots = this.slots;
    let n = 0;
    for (let i = 0; i < this.count; i++) {
      const k = keys[i] as number;
      const s = slots[i] as number;
      if (keep(k, s)) {
        keys[n] = k;
        slots[n] = s;
        n++;
      }
    }
    this.count = n;
    for (let i = (n >> 1) - 1; i >= 0; i--) this.siftDown(keys[i] as number, slots[i] as number, i, n);
  }

  /** Visits (keeps) the slot of every entry whose key is at most `t`, in no particular order. */
  forEachDue(t: number, visit: (slot: number) => void): void {
    const stack: number[] = [];
    if (this.count > 0) stack.push(0);
    while (stack.length > 0) {
      const i = stack.pop() as number;
      if ((this.keys[i] as number) > t) continue; // a heap: nothing below it is due either
      visit(this.slots[i] as number);
      const left = 2 * i + 1;
      if (left < this.count) stack.push(left);
      if (left + 1 < this.count) stack.push(left + 1);
    }
  }

  clear(): void {
    this.count = 0;
  }

  /** Bytes held by the arrays. */
  get bytes(): number {
    return this.keys.byteLength + this.slots.byteLength;
  }

  private siftDown(key: number, slot: number, from: number, n: number): void {
    const keys = this.keys;
    const slots = this.slots;
    let i = from;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && (keys[right] as number) < (keys[child] as number)) child = right;
      const ck = keys[child] as number;
      if (ck >= key) break;
      keys[i] = ck;
      slots[i] = slots[child] as number;
      i = child;
    }
    keys[i] = key;
    slots[i] = slot;
  }

  private grow(): void {
    const keys = new Float64Array(this.keys.length * 2);
    keys.set(this.keys);
    this.keys = keys;
    const slots = new Int32Array(this.slots.length * 2);
    slots.set(this.slots);
    this.slots = slots;
  }
}

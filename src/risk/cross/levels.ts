/**
 * The faces of the certificates: per price, a B+tree of lower levels (fire when the price falls to or below the level)
 * and one of upper levels (fire when it rises to or above), keyed by the level as a double with the account's slot as
 * value. Keys are unique: a level that collides with another is nudged by an ulp toward firing (a lower level up, an
 * upper level down), which only makes it fire earlier. A walk removes every level it fires.
 */
import btreeModule from "sorted-btree";

// sorted-btree is CommonJS with `exports.default`: Node hands over module.exports, a bundler the class.
const BTree = ((btreeModule as { default?: unknown }).default ?? btreeModule) as typeof btreeModule.default;
type Tree = btreeModule.default<number, number>;

const byNumber = (a: number, b: number): number => a - b;

/** The next double above x (x finite). */
export function nextUp(x: number): number {
  if (x === 0) return Number.MIN_VALUE;
  const step = Math.abs(x) * 2 ** -52;
  const y = x + step;
  return y > x ? y : x + Number.MIN_VALUE;
}

/** The next double below x (x finite). */
export function nextDown(x: number): number {
  return -nextUp(-x);
}

export class LevelTrees {
  private readonly down: (Tree | undefined)[] = [];
  private readonly up: (Tree | undefined)[] = [];

  /** Levels stored over every price and side. */
  get size(): number {
    let n = 0;
    for (const t of this.down) n += t?.size ?? 0;
    for (const t of this.up) n += t?.size ?? 0;
    return n;
  }

  clear(): void {
    this.down.length = 0;
    this.up.length = 0;
  }

  /** Stores a lower level of `slot` on `price`; returns the key stored (the level, or a little above it). */
  insertDown(price: number, level: number, slot: number): number {
    const tree = this.tree(this.down, price);
    let key = level;
    while (!tree.set(key, slot, false)) key = nextUp(key);
    return key;
  }

  /** Stores an upper level of `slot` on `price`; returns the key stored (the level, or a little below it). */
  insertUp(price: number, level: number, slot: number): number {
    const tree = this.tree(this.up, price);
    let key = level;
    while (!tree.set(key, slot, false)) key = nextDown(key);
    return key;
  }

  /** Removes the lower level `key` of `slot` if it is still stored (a walk may have dropped it already). */
  removeDown(price: number, key: number, slot: number): void {
    const tree = this.down[price];
    if (tree !== undefined && tree.get(key) === slot) tree.delete(key);
  }

  removeUp(price: number, key: number, slot: number): void {
    const tree = this.up[price];
    if (tree !== undefined && tree.get(key) === slot) tree.delete(key);
  }

  /** Fires and removes every lower level of `price` at or above `p` (the price fell to it); returns how many. */
  walkDown(price: number, p: number, fire: (slot: number) => void): number {
    const tree = this.down[price];
    if (tree === undefined || tree.size === 0) return 0;
    const top = tree.maxKey() as number;
    if (top < p) return 0;
    let n = 0;
    tree.editRange(p, top, true, (_key, slot) => {
      fire(slot);
      n++;
      return { delete: true };
    });
    return n;
  }

  /** Fires and removes every upper level of `price` at or below `p` (the price rose to it); returns how many. */
  walkUp(price: number, p: number, fire: (slot: number) => void): number {
    const tree = this.up[price];
    if (tree === undefined || tree.size === 0) return 0;
    const bottom = tree.minKey() as number;
    if (bottom > p) return 0;
    let n = 0;
    tree.editRange(bottom, p, true, (_key, slot) => {
      fire(slot);
      n++;
      return { delete: true };
    });
    return n;
  }

  private tree(side: (Tree | undefined)[], price: number): Tree {
    let tree = side[price];
    if (tree === undefined) {
      tree = new BTree<number, number>(undefined, byNumber, 128);
      side[price] = tree;
    }
    return tree;
  }
}

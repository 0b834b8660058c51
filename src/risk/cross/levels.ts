/**
 * The faces of the certificates: per price, a B+tree of lower levels (fire when the price falls to or below the level)
 * and one of upper levels (fire when it rises to or above), keyed by the level as a double with the account's slot as
 * value. Keys are unique: a level that collides with another is moved a few ulps toward firing (a lower level up, an
 * upper level down), which only makes it fire earlier; the distance probed grows geometrically (pseudo-random within
 * it), so many identical levels cost O(log) probes each, not a walk along the run. A walk removes every level it fires.
 */
import btreeModule from "sorted-btree";

// sorted-btree is CommonJS with `exports.default`: Node hands over module.exports, a bundler the class.
const BTree = ((btreeModule as { default?: unknown }).default ?? btreeModule) as typeof btreeModule.default;
type Tree = btreeModule.default<number, number>;

const byNumber = (a: number, b: number): number => a - b;
/** editRange's answer to drop the pair (read, never kept: one object serves every call). */
const DELETE = { delete: true } as const;

/** A unit in the last place of x, at least (|x|·2^-52, or the smallest double at 0). */
function ulp(x: number): number {
  return Math.max(Math.abs(x) * 2 ** -52, Number.MIN_VALUE);
}

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
    return tree.set(level, slot, false) ? level : this.probe(tree, level, slot, 1);
  }

  /** Stores an upper level of `slot` on `price`; returns the key stored (the level, or a little below it). */
  insertUp(price: number, level: number, slot: number): number {
    const tree = this.tree(this.up, price);
    return tree.set(level, slot, false) ? level : this.probe(tree, level, slot, -1);
  }

  private seed = 0x2545f491;

  /** A free key `direction`-ward of a taken level: 1..span ulps away, the span ×4 at every collision. */
  private probe(tree: Tree, level: number, slot: number, direction: 1 | -1): number {
    const unit = ulp(level) * direction;
    for (let span = 16; ; span *= 4) {
      // xorshift32: deterministic, so that runs replay
      let x = this.seed;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.seed = x;
      let key = level + (1 + ((x >>> 0) % span)) * unit;
      if (key === level) key = direction > 0 ? nextUp(level) : nextDown(level);
      if (tree.set(key, slot, false)) return key;
    }
  }

  /** Removes the lower level stored at `key` (the caller knows it is there: it records every level a walk drops). */
  removeDown(price: number, key: number): void {
    this.down[price]?.delete(key);
  }

  removeUp(price: number, key: number): void {
    this.up[price]?.delete(key);
  }

  /** The slot stored at a level, if any (for audits). */
  slotAt(side: "down" | "up", price: number, key: number): number | undefined {
    return (side === "down" ? this.down : this.up)[price]?.get(key);
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
      return DELETE;
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
      return DELETE;
    });
    return n;
  }

  /** Visits (keeps) every level that a fall of `price` to `p` or a rise to it would fire; stale ones included. */
  scan(price: number, p: number, visit: (slot: number) => void): void {
    const down = this.down[price];
    if (down !== undefined && down.size > 0 && (down.maxKey() as number) >= p) {
      down.forRange(p, down.maxKey() as number, true, (_key, slot) => {
        visit(slot);
      });
    }
    const up = this.up[price];
    if (up !== undefined && up.size > 0 && (up.minKey() as number) <= p) {
      up.forRange(up.minKey() as number, p, true, (_key, slot) => {
        visit(slot);
      });
    }
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

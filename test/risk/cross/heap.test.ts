import { describe, expect, it } from "vitest";
import { plan } from "../../../src/risk/cross/budget.ts";
import { CoolQueue } from "../../../src/risk/cross/cool.ts";
import { DeadlineHeap } from "../../../src/risk/cross/heap.ts";
import { LevelTrees, nextDown } from "../../../src/risk/cross/levels.ts";
import { rng } from "./harness.ts";

describe("DeadlineHeap", () => {
  it("pops in deadline order through growth, against a sorted array", () => {
    const random = rng(7);
    const heap = new DeadlineHeap(4);
    const model: [number, number][] = [];
    for (let round = 0; round < 2000; round++) {
      if (random() < 0.6 || model.length === 0) {
        const key = Math.floor(random() * 500);
        heap.push(key, round);
        model.push([key, round]);
      } else {
        model.sort((a, b) => a[0] - b[0]);
        const key = heap.peek();
        expect(key).toBe(model[0]?.[0]);
        const slot = heap.pop();
        const i = model.findIndex(([k, s]) => k === key && s === slot);
        expect(i).toBeGreaterThanOrEqual(0);
        model.splice(i, 1);
      }
      expect(heap.size).toBe(model.length);
    }
  });

  it("compacts to the entries kept, still a heap", () => {
    const heap = new DeadlineHeap();
    for (let i = 0; i < 1000; i++) heap.push((i * 7919) % 1000, i);
    heap.compact((_key, slot) => slot % 3 === 0);
    expect(heap.size).toBe(334);
    let last = Number.NEGATIVE_INFINITY;
    while (heap.size > 0) {
      const key = heap.peek();
      expect(key).toBeGreaterThanOrEqual(last);
      last = key;
      expect(heap.pop() % 3).toBe(0);
    }
    expect(heap.pop()).toBe(-1);
    expect(heap.peek()).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("CoolQueue", () => {
  it("keeps the capacity with the most room", () => {
    const q = new CoolQueue(5);
    const rooms = [3, 9, 1, 12, 7, 30, 2, 8, 15];
    rooms.forEach((r, i) => {
      q.offer(i, r);
    });
    const kept = Array.from(q.slots.subarray(0, q.length)).map((s) => rooms[s]);
    expect(kept.sort((a, b) => (a as number) - (b as number))).toEqual([8, 9, 12, 15, 30]);
  });
});

describe("LevelTrees", () => {
  it("fires every lower level at or above the price and every upper level at or below it, once", () => {
    const trees = new LevelTrees();
    const keys = [10, 20, 20, 30].map((level, slot) => trees.insertDown(0, level, slot));
    expect(keys[2]).toBeGreaterThan(20); // a collision is moved toward firing, by a few ulps
    expect(keys[2]).toBeLessThan(20 * (1 + 2 ** -40));
    trees.insertUp(0, 50, 7);
    trees.insertUp(0, 50, 8);
    const fired: number[] = [];
    expect(trees.walkDown(0, 20, (s) => fired.push(s))).toBe(3);
    expect(fired.sort()).toEqual([1, 2, 3]);
    expect(trees.walkDown(0, 20, (s) => fired.push(s))).toBe(0);
    expect(trees.walkUp(0, nextDown(50), (s) => fired.push(s))).toBe(1); // the moved one, a little below 50
    expect(trees.walkUp(0, 50, (s) => fired.push(s))).toBe(1);
    expect(trees.size).toBe(1);
    expect(trees.slotAt("down", 0, 10)).toBe(0);
    trees.removeDown(0, 10);
    expect(trees.size).toBe(0);
  });
});

describe("LevelTrees with many identical levels", () => {
  it("stores 100,000 equal levels in O(log) probes each, all within a hair of the level, all fired", () => {
    const trees = new LevelTrees();
    const started = Date.now();
    let highest = 0;
    for (let s = 0; s < 100_000; s++) highest = Math.max(highest, trees.insertDown(3, 1234.5, s));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(trees.size).toBe(100_000);
    expect(highest).toBeLessThan(1234.5 * (1 + 1e-8)); // far inside any typical move
    expect(trees.walkDown(3, 1234.5, () => {})).toBe(100_000);
  });
});

describe("plan", () => {
  it("spends at most the budget on faces and time", () => {
    const random = rng(3);
    for (let i = 0; i < 10_000; i++) {
      const W = 10 ** (random() * 30);
      const a = random() < 0.1 ? 0 : 10 ** (random() * 30 - 10);
      const phi = random() < 0.2 ? 0 : 10 ** (random() * 30 - 10);
      const vT = 1 + random() * 12;
      const H = 1 + Math.floor(random() * 86_400);
      const { z, T } = plan(W, a, phi, vT, H);
      expect(z).toBeGreaterThan(0);
      expect(T).toBeLessThanOrEqual(H);
      const spent = (a > 0 ? a * z : 0) + phi * T;
      expect(spent).toBeLessThanOrEqual(W * (1 + 1e-12));
    }
    expect(plan(0, 1, 1, 1, 10)).toEqual({ z: 0, T: 0 });
  });
});

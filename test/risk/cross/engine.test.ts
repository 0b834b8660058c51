import { describe, expect, it } from "vitest";
import type { Evaluation, MarginModel, PriceView } from "../../../src/protocol/types.ts";
import { CrossRiskEngine } from "../../../src/risk/cross/engine.ts";
import { type LinearAccount, LinearModel, linearAccount, WAD } from "../../../src/risk/cross/linearModel.ts";
import { rng } from "./harness.ts";

const T0 = 1_700_000_000n;
const w = (x: number): bigint => BigInt(Math.round(x * 1e6)) * 10n ** 12n;
const view = (prices: readonly (number | undefined)[], t: bigint = T0): PriceView => {
  const map = new Map<number, bigint>();
  prices.forEach((p, i) => {
    if (p !== undefined) map.set(i, w(p));
  });
  return { prices: map, timestamp: t, blockNumber: 1n };
};

/** Counts the model's exact evaluations. */
function counting(model: MarginModel<LinearAccount>): MarginModel<LinearAccount> & { calls: number } {
  const counted = {
    calls: 0,
    evaluate: (a: LinearAccount, at: PriceView): Evaluation => {
      counted.calls++;
      return model.evaluate(a, at);
    },
    sensitivity: model.sensitivity.bind(model),
  };
  return counted;
}

/** A long of 1 base at 1000 with 200 of collateral: liquidation below 853.33 (0.9375·p < 800). */
const long = (key = "a", collateral = 200) =>
  linearAccount(key, w(collateral), [{ price: 0, size: WAD, openNotional: -w(1000), fundingIndex: 0n }]);

describe("CrossRiskEngine tiers", () => {
  it("a single long: cold, untouched by calm ticks, fires at its level, liquidatable, recovers, dirty on upsert", () => {
    const model = counting(new LinearModel({ markets: 2, fundingRateBound: 0n, startTime: T0 }));
    const engine = new CrossRiskEngine(model);
    engine.upsert(long());
    expect(engine.tierOf("a")).toBe("dirty");
    expect(engine.tick(view([1000, 100])).liquidatable).toEqual([]);
    expect(engine.tierOf("a")).toBe("cold");
    expect(engine.room("a")).toBeGreaterThan(100); // 146.7 units of price against 1 unit of typical move
    const calls = model.calls;
    for (const p of [990, 950, 900, 870, 860, 855]) {
      engine.tick(view([p, 100], T0 + 1n));
      expect(engine.tierOf("a")).toBe("cold");
    }
    expect(model.calls).toBe(calls); // a cold account costs nothing while its prices stay inside the box
    const result = engine.tick(view([853, 100], T0 + 2n));
    expect(engine.lastTick.fired).toBe(1);
    expect(result.liquidatable.map((f) => f.account.key)).toEqual(["a"]);
    expect(engine.tierOf("a")).toBe("liquidatable");
    expect(engine.room("a")).toBe(0);
    expect(engine.tick(view([853, 100], T0 + 3n)).liquidatable).toHaveLength(1); // evaluated again while it lasts
    expect(engine.tick(view([900, 100], T0 + 4n)).liquidatable).toEqual([]);
    expect(["warm", "cold"]).toContain(engine.tierOf("a"));
    engine.upsert(long("a", 50));
    expect(engine.tierOf("a")).toBe("dirty");
    expect(engine.tick(view([900, 100], T0 + 5n)).liquidatable).toHaveLength(1); // 50 − 1000 + 843.75 < 0
    engine.remove("a");
    expect(engine.size).toBe(0);
    expect(engine.tierOf("a")).toBeUndefined();
    expect(engine.tick(view([800, 100], T0 + 6n)).liquidatable).toEqual([]);
  });

  it("close to the boundary: warm, swept with a float bound, cooled back when the price moves away", () => {
    const model = counting(new LinearModel({ markets: 1, fundingRateBound: 0n, startTime: T0 }));
    const engine = new CrossRiskEngine(model, { zCold: 12 });
    engine.upsert(long());
    engine.tick(view([860]));
    expect(engine.tierOf("a")).toBe("warm"); // 6.7 units of room: below zCold
    const calls = model.calls;
    engine.tick(view([859], T0 + 1n));
    expect(engine.lastTick.swept).toBe(1);
    expect(model.calls).toBe(calls); // the float bound is enough
    engine.tick(view([1000], T0 + 2n));
    expect(engine.lastTick.cooled).toBe(1);
    expect(engine.tierOf("a")).toBe("cold");
  });

  it("several prices at once: each stays inside what it alone would need, together they liquidate", () => {
    const model = new LinearModel({ markets: 2, fundingRateBound: 0n, startTime: T0 });
    const engine = new CrossRiskEngine(model);
    // long 1 at 1000 in market 0, long 10 at 100 in market 1, collateral 300: slack at (1000, 100) = 300 − 125 = 175
    engine.upsert(
      linearAccount("b", w(300), [
        { price: 0, size: WAD, openNotional: -w(1000), fundingIndex: 0n },
        { price: 1, size: 10n * WAD, openNotional: -w(1000), fundingIndex: 0n },
      ]),
    );
    engine.tick(view([1000, 100]));
    expect(engine.tierOf("b")).toBe("cold");
    // each fall alone costs 0.9375·100 = 93.75 < 175; both: 187.5 > 175
    expect(engine.tick(view([900, 100], T0 + 1n)).liquidatable).toEqual([]);
    expect(engine.tick(view([900, 90], T0 + 2n)).liquidatable.map((f) => f.account.key)).toEqual(["b"]);
  });

  it("deadlines: funding accrues, the certificate expires, the account is found when time alone liquidates it", () => {
    // funding at the bound, 0.01 quote per base per second, against the long: 10 of slack costs 1000 s
    const model = new LinearModel({ markets: 1, fundingRateBound: 10n ** 16n, startTime: T0 });
    model.setFundingRate(0, 10n ** 16n, T0);
    const engine = new CrossRiskEngine(model, { horizon: 100n });
    engine.upsert(long("a", 200));
    engine.tick(view([864]));
    // slack 200 − 1000 + 810 = 10
    let t = T0;
    let found = false;
    let expired = 0;
    for (let i = 0; i < 30 && !found; i++) {
      t += 100n;
      found = engine.tick(view([864], t)).liquidatable.length > 0;
      expired += engine.lastTick.expired;
    }
    expect(found).toBe(true);
    expect(t - T0).toBeGreaterThanOrEqual(1000n);
    expect(t - T0).toBeLessThanOrEqual(1100n);
    expect(expired + engine.lastTick.swept).toBeGreaterThan(0);
  });

  it("unpriced: waits for the missing price, evaluated in the tick that brings it back", () => {
    const model = new LinearModel({ markets: 2, fundingRateBound: 0n, startTime: T0 });
    const engine = new CrossRiskEngine(model);
    engine.upsert(long("a", 100)); // liquidation below 960
    expect(engine.tick(view([undefined, 100])).liquidatable).toEqual([]);
    expect(engine.tierOf("a")).toBe("waiting");
    expect(engine.tick(view([undefined, 90], T0 + 1n)).liquidatable).toEqual([]);
    expect(engine.tick(view([900, 90], T0 + 2n)).liquidatable).toHaveLength(1);
  });

  it("touchPrice: a market parameter change re-evaluates every account on that price", () => {
    const inner = new LinearModel({ markets: 2, fundingRateBound: 0n, startTime: T0 });
    const engine = new CrossRiskEngine(inner);
    engine.upsert(long("a"));
    engine.upsert(linearAccount("c", w(100), [{ price: 1, size: WAD, openNotional: -w(100), fundingIndex: 0n }]));
    engine.tick(view([900, 100]));
    expect(engine.tierOf("a")).toBe("cold");
    inner.setMmRatio(0, 200_000n); // 20 %: 200 − 1000 + 0.8·900 = −80
    engine.touchPrice(0);
    expect(engine.tierOf("a")).toBe("dirty");
    expect(engine.tierOf("c")).toBe("cold");
    expect(engine.tick(view([900, 100], T0 + 1n)).liquidatable.map((f) => f.account.key)).toEqual(["a"]);
  });

  it("bounded evaluations: straddling ones are to confirm; observe settles them", () => {
    const model = new LinearModel({
      markets: 1,
      fundingRateBound: 0n,
      startTime: T0,
      exactness: "bounded",
      fundingUncertainty: 10n * WAD, // ± 10 per base
    });
    const engine = new CrossRiskEngine(model);
    engine.upsert(long("a", 200)); // exact slack at 853.5: 0.15625 > 0
    const v = view([853.5]);
    const result = engine.tick(v);
    expect(result.liquidatable).toEqual([]);
    expect(result.confirm.map((f) => f.account.key)).toEqual(["a"]);
    const account = engine.get("a") as LinearAccount;
    expect(engine.observe("a", model.exact(account, v), v)).toBe("safe");
    expect(engine.tierOf("a")).toBe("warm");
    const lower = view([850], T0 + 1n);
    const next = engine.tick(lower);
    expect([...next.liquidatable, ...next.confirm].map((f) => f.account.key)).toEqual(["a"]);
    expect(engine.observe("a", model.exact(account, lower), lower)).toBe("liquidatable");
    engine.upsert(long("a", 300));
    expect(engine.observe("a", model.exact(account, lower), lower)).toBe("ignored"); // an event came after the read
  });

  it("time going backwards re-evaluates every account", () => {
    const model = counting(new LinearModel({ markets: 1, fundingRateBound: 0n, startTime: T0 }));
    const engine = new CrossRiskEngine(model);
    for (let i = 0; i < 10; i++) engine.upsert(long(`k${i}`, 300 + i));
    engine.tick(view([1000], T0 + 10n));
    const calls = model.calls;
    engine.tick(view([1000], T0 + 5n));
    expect(model.calls - calls).toBe(10);
  });
});

describe("CrossRiskEngine cost", () => {
  it("a calm tick evaluates far fewer accounts than there are (sublinear), and finds what a crash liquidates", () => {
    const N = 3000;
    const markets = 4;
    const prices = [60_000, 3_000, 150, 1];
    const model = new LinearModel({ markets, fundingRateBound: 10n ** 12n, startTime: T0 });
    const counted = counting(model);
    const engine = new CrossRiskEngine(counted);
    const random = rng(11);
    for (let i = 0; i < N; i++) {
      const k = [1, 1, 2, 4][Math.floor(random() * 4)] as number;
      const chosen = new Set<number>();
      while (chosen.size < k) chosen.add(Math.floor(random() * markets));
      const positions = [...chosen].map((price) => {
        const long = random() < 0.5;
        const size = w((10_000 * (0.1 + random())) / (prices[price] as number)) * (long ? 1n : -1n);
        return { price, size, openNotional: -(size * w(prices[price] as number)) / WAD, fundingIndex: 0n };
      });
      // room: 2 % to 60 % of the notional, as a relative move of every price against the account
      const notional = positions.reduce((s, p) => s + (p.size < 0n ? p.openNotional : -p.openNotional), 0n);
      const collateral = (notional * BigInt(Math.round((0.0625 + 0.02 + random() * 0.58) * 1e6))) / 1_000_000n;
      engine.upsert(linearAccount(`0x${i}`, collateral, positions));
    }
    const current = [...prices];
    let t = T0;
    engine.tick(view(current, t));
    expect(counted.calls).toBe(N);
    let total = 0;
    const ticks = 100;
    for (let i = 0; i < ticks; i++) {
      for (let j = 0; j < markets; j++) current[j] = (current[j] as number) * (1 + (random() - 0.5) * 0.003);
      t += 1n;
      const before = counted.calls;
      const result = engine.tick(view(current, t));
      total += counted.calls - before;
      expect(counted.calls - before).toBeLessThan(N / 10);
      expect(result.liquidatable).toEqual([]);
    }
    expect(total / ticks).toBeLessThan(N / 50);
    // a crash of two prices: the engine's set equals the scan's
    current[0] = (current[0] as number) * 0.85;
    current[2] = (current[2] as number) * 0.9;
    const crash = view(current, t + 1n);
    const found = new Set(engine.tick(crash).liquidatable.map((f) => f.account.key));
    const scan = [...engine.values()].filter((a) => {
      const e = model.evaluate(a, crash);
      return e.kind === "exact" && e.balance < e.requirement;
    });
    expect(scan.length).toBeGreaterThan(0);
    expect(found).toEqual(new Set(scan.map((a) => a.key)));
    expect(engine.lastTick.touched).toBeLessThan(N);
  });
});

/**
 * A random cross-margin workload for the risk engine's tests: accounts over 4-8 markets (1, 2 or 4 markets each,
 * longs and shorts, some near or past the boundary), price paths (small moves, one-wei moves, jumps, crashes and
 * rallies of several prices at once, a price vanishing for a while), time (funding accruing at bounded, changing
 * rates; long gaps past deadlines and horizons) and events between ticks (open, close, resize, collateral change,
 * remove, a market parameter change). After every tick `check` compares the engine with a full scan of the model.
 */
import fc from "fast-check";
import { type Evaluation, highSlack, lowSlack, type MarginModel, type PriceView } from "../../../src/protocol/types.ts";
import { CrossRiskEngine, type CrossRiskOptions, type TickResult } from "../../../src/risk/cross/engine.ts";
import {
  type LinearAccount,
  LinearModel,
  type LinearPosition,
  linearAccount,
  WAD,
} from "../../../src/risk/cross/linearModel.ts";

export type Move = "small" | "tiny" | "drift" | "jump" | "crash" | "rally" | "flat" | "vanish";
export type EventKind = "open" | "close" | "resize" | "collateral" | "remove" | "touch" | "funding";

export type Step =
  | { readonly kind: "tick"; readonly move: Move; readonly dt: number; readonly mask: number; readonly mag: number }
  | { readonly kind: "event"; readonly event: EventKind; readonly a: number; readonly b: number; readonly c: number };

export interface Scenario {
  readonly markets: number;
  readonly accounts: number;
  readonly zCold: number;
  readonly coolPerTick: number;
  readonly horizon: bigint;
  readonly initialMove: number;
  /** Accounts open with a slack of −1 % .. spread of their notional. */
  readonly spread?: number;
  /** Initial prices: a random exponent per market. */
  readonly priceExp: readonly number[];
  readonly rng: number;
  readonly steps: readonly Step[];
}

const unit = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });

export const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("tick" as const),
      move: fc.constantFrom<Move>("small", "small", "small", "tiny", "jump", "crash", "rally", "flat", "vanish"),
      dt: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 5000 })),
      mask: fc.integer({ min: 1, max: 255 }),
      mag: unit,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("event" as const),
      event: fc.constantFrom<EventKind>("open", "close", "resize", "collateral", "remove", "touch", "funding"),
      a: unit,
      b: unit,
      c: unit,
    }),
  },
);

export const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  markets: fc.integer({ min: 4, max: 8 }),
  accounts: fc.integer({ min: 1, max: 40 }),
  zCold: fc.constantFrom(0, 1, 4, 12, 12, 40),
  coolPerTick: fc.constantFrom(0, 1, 4, 64),
  horizon: fc.constantFrom(30n, 600n, 3600n),
  initialMove: fc.constantFrom(1e-6, 1e-3, 2e-2),
  priceExp: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 8, maxLength: 8 }),
  rng: fc.integer(),
  steps: fc.array(stepArb, { minLength: 5, maxLength: 80, size: "max" }),
});

/** Calm paths: mostly small moves a second apart, many accounts, so faces fire one at a time and are re-armed. */
export const calmScenarioArb: fc.Arbitrary<Scenario> = fc.record({
  markets: fc.integer({ min: 4, max: 8 }),
  accounts: fc.integer({ min: 20, max: 80 }),
  zCold: fc.constantFrom(1, 2, 4, 12),
  coolPerTick: fc.constantFrom(4, 64),
  horizon: fc.constantFrom(600n, 3600n),
  initialMove: fc.constantFrom(1e-4, 1e-3),
  spread: fc.constantFrom(0.03, 0.06),
  priceExp: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 8, maxLength: 8 }),
  rng: fc.integer(),
  steps: fc.array(
    fc.oneof(
      {
        weight: 8,
        arbitrary: fc.record({
          kind: fc.constant("tick" as const),
          move: fc.constantFrom<Move>("small", "small", "drift", "drift", "tiny", "flat"),
          dt: fc.integer({ min: 0, max: 3 }),
          mask: fc.integer({ min: 1, max: 511 }),
          mag: unit,
        }),
      },
      { weight: 1, arbitrary: stepArb },
    ),
    { minLength: 40, maxLength: 120, size: "max" },
  ),
});

/** mulberry32. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ppm = (x: bigint, f: number): bigint => (x * BigInt(Math.round(f * 1e6))) / 1_000_000n;
const RATE_BOUND = 10n ** 15n;

export interface SimOptions {
  readonly exactness: "exact" | "bounded";
  /** Wraps the model the engine sees (the full scan always uses the true one). */
  readonly wrap?: (model: LinearModel) => MarginModel<LinearAccount>;
  /** Answers confirmations with the exact evaluation (observe) after the check. */
  readonly observe?: boolean;
  /** Before each tick, asks the engine to look ahead at the tick's view, and checks it against the scan. */
  readonly lookahead?: boolean;
}

export class Sim {
  readonly model: LinearModel;
  readonly engine: CrossRiskEngine<LinearAccount>;
  readonly prices: bigint[];
  readonly hidden = new Set<number>();
  time = 1_700_000_000n;
  private nextKey = 0;
  private readonly random: () => number;
  readonly keys: string[] = [];
  ticks = 0;
  flagged = 0;
  /** Accounts the lookahead found (before the tick that then flagged them). */
  anticipated = 0;

  constructor(
    readonly scenario: Scenario,
    readonly options: SimOptions,
  ) {
    this.random = rng(scenario.rng);
    this.model = new LinearModel({
      markets: scenario.markets,
      fundingRateBound: RATE_BOUND,
      exactness: options.exactness,
      fundingUncertainty: 10n ** 16n,
      horizon: 7200n,
      startTime: this.time,
    });
    const engineOptions: CrossRiskOptions = {
      zCold: scenario.zCold,
      coolPerTick: scenario.coolPerTick,
      horizon: scenario.horizon,
      initialMove: scenario.initialMove,
    };
    this.engine = new CrossRiskEngine(options.wrap ? options.wrap(this.model) : this.model, engineOptions);
    this.prices = Array.from({ length: scenario.markets }, (_, i) => {
      const e = scenario.priceExp[i] ?? 2;
      return (10n ** BigInt(e) * WAD * BigInt(1 + Math.floor(this.random() * 9))) / 3n;
    });
    for (let i = 0; i < scenario.markets; i++) {
      this.model.setFundingRate(i, this.rate(), this.time);
    }
    for (let i = 0; i < scenario.accounts; i++) this.open();
  }

  view(): PriceView {
    const prices = new Map<number, bigint>();
    this.prices.forEach((p, i) => {
      if (!this.hidden.has(i)) prices.set(i, p);
    });
    return { prices, timestamp: this.time, blockNumber: BigInt(this.ticks) };
  }

  private rate(): bigint {
    return ppm(RATE_BOUND, this.random() * 2 - 1);
  }

  /** A new account: 1, 2 or 4 markets, with its slack a random distance from the boundary (some already past it). */
  open(key = `0x${(this.nextKey++).toString(16).padStart(4, "0")}`): void {
    const r = this.random;
    const n = Math.min(this.scenario.markets, [1, 1, 2, 4][Math.floor(r() * 4)] as number);
    const chosen = new Set<number>();
    while (chosen.size < n) chosen.add(Math.floor(r() * this.scenario.markets));
    const view = { prices: new Map(this.prices.map((p, i) => [i, p])), timestamp: this.time, blockNumber: 0n };
    const positions: (LinearPosition & { price: number })[] = [];
    let adverse = 0n;
    for (const price of chosen) {
      const p = this.prices[price] as bigint;
      const notional = ppm(10n ** 21n, 1 + r() * 100); // 1,000 .. 100,000 quote
      const long = r() < 0.5;
      const size = ((notional * WAD) / p) * (long ? 1n : -1n) || 1n;
      const entry = ppm(p, 0.95 + r() * 0.1);
      const fundingIndex = this.model.fundingIndex(price, this.time) + ppm(WAD, r() - 0.5);
      positions.push({ price, size, openNotional: -(size * entry) / WAD, fundingIndex });
      adverse += notional;
    }
    const bare = linearAccount(key, 0n, positions);
    const e = this.model.exact(bare, view);
    const slack0 = (lowSlack(e) as bigint) - 0n;
    // the target slack: a relative distance in [-1%, 15%] of the notional, a few exactly at the boundary
    const target = r() < 0.05 ? 0n : ppm(adverse, r() * ((this.scenario.spread ?? 0.15) + 0.01) - 0.01);
    this.engine.upsert({ ...bare, collateral: target - slack0 });
    if (!this.keys.includes(key)) this.keys.push(key);
  }

  apply(step: Step): void {
    if (step.kind === "tick") {
      this.move(step);
      return;
    }
    const { a, b, c } = step;
    const key = this.keys[Math.floor(a * this.keys.length)];
    const account = key === undefined ? undefined : this.engine.get(key);
    switch (step.event) {
      case "open":
        this.open();
        return;
      case "remove":
        if (key !== undefined) {
          this.engine.remove(key);
          this.keys.splice(this.keys.indexOf(key), 1);
        }
        return;
      case "close":
      case "resize": {
        if (!account || account.prices.length === 0) return;
        const i = Math.floor(b * account.prices.length);
        const f = step.event === "close" ? 0 : 0.5 + c;
        const positions = account.positions.map((p, j) =>
          j === i ? { ...p, size: ppm(p.size, f), openNotional: ppm(p.openNotional, f) } : p,
        );
        const kept = account.prices.map((price, j) => ({ ...(positions[j] as LinearPosition), price }));
        const open = kept.filter((p) => p.size !== 0n || step.event === "resize");
        this.engine.upsert(linearAccount(account.key, account.collateral + ppm(WAD, c * 100), open));
        return;
      }
      case "collateral": {
        if (!account) return;
        const total = account.positions.reduce((s, p) => s + (p.size < 0n ? -p.openNotional : p.openNotional), 0n);
        this.engine.upsert({
          ...account,
          collateral: account.collateral + ppm(total < 0n ? -total : total, b * 0.04 - 0.02),
        });
        return;
      }
      case "touch": {
        const market = Math.floor(b * this.scenario.markets);
        this.model.setMmRatio(market, BigInt(Math.round(30_000 + c * 70_000)));
        this.engine.touchPrice(market);
        return;
      }
      case "funding":
        this.model.setFundingRate(Math.floor(b * this.scenario.markets), this.rate(), this.time);
        return;
    }
  }

  private move(step: Extract<Step, { kind: "tick" }>): void {
    const { move, mask, mag } = step;
    this.time += BigInt(step.dt);
    if (move === "vanish") {
      const market = mask % this.scenario.markets;
      if (this.hidden.has(market)) this.hidden.delete(market);
      else this.hidden.add(market);
      return;
    }
    if (this.hidden.size > 0 && mag < 0.3) this.hidden.clear();
    for (let i = 0; i < this.prices.length; i++) {
      const p = this.prices[i] as bigint;
      const inMask = (mask >> i) & 1;
      const r = this.random();
      let next = p;
      if (move === "small") next = ppm(p, 1 + (r - 0.5) * 0.006 * (mag + 0.1));
      else if (move === "tiny") next = p + BigInt(Math.floor((r - 0.5) * 2e6));
      else if (move === "drift" && inMask) next = ppm(p, mask & 256 ? 1 + 0.002 * (mag + r) : 1 - 0.002 * (mag + r));
      else if (move === "jump" && i === mask % this.prices.length)
        next = ppm(p, r < 0.5 ? 0.95 - mag * 0.1 : 1.05 + mag * 0.1);
      else if (move === "crash" && inMask) next = ppm(p, 0.95 - mag * 0.15 - r * 0.02);
      else if (move === "rally" && inMask) next = ppm(p, 1.05 + mag * 0.15 + r * 0.02);
      this.prices[i] = next > 0n ? next : 1n;
    }
  }

  /** One tick of the engine, checked against the full scan; returns what the engine reported. */
  tick(): TickResult<LinearAccount> {
    const view = this.view();
    if (this.options.lookahead) this.checkLookahead(view);
    const result = this.engine.tick(view);
    this.ticks++;
    this.check(view, result);
    if (this.options.observe) {
      for (const { account } of result.confirm) this.engine.observe(account.key, this.model.exact(account, view), view);
    }
    return result;
  }

  /**
   * The engine's lookahead at `view`, before it ticks there: exactly the cold and warm accounts whose evaluation at
   * the view is liquidatable (the others are not its to judge), and nothing changed by asking.
   */
  private checkLookahead(view: PriceView): void {
    const before = JSON.stringify(this.engine.stats());
    const { liquidatable, truncated } = this.engine.lookahead(view);
    if (truncated) throw new Error("lookahead truncated under its default bound");
    const got = new Set(liquidatable.map((f) => f.account.key));
    let expected = 0;
    for (const account of this.engine.values()) {
      const tier = this.engine.tierOf(account.key);
      const high = highSlack(this.model.evaluate(account, view));
      const due = (tier === "cold" || tier === "warm") && high !== undefined && high < 0n;
      if (due) expected++;
      if (due !== got.has(account.key)) {
        throw new Error(
          `lookahead ${due ? "missed" : "wrongly reported"} ${account.key} (${tier}) at t=${view.timestamp}, tick ${this.ticks}`,
        );
      }
    }
    if (JSON.stringify(this.engine.stats()) !== before) throw new Error("lookahead changed the engine");
    this.anticipated += expected;
  }

  private check(view: PriceView, result: TickResult<LinearAccount>): void {
    const liquidatable = new Set(result.liquidatable.map((f) => f.account.key));
    const confirm = new Set(result.confirm.map((f) => f.account.key));
    const describe = (key: string, e: Evaluation) =>
      `${key} at t=${view.timestamp}, tick ${this.ticks}: ${JSON.stringify(e, (_k, v) => (typeof v === "bigint" ? v.toString() : v))}`;
    let expected = 0;
    for (const account of this.engine.values()) {
      const exact = this.model.exact(account, view);
      const seen = this.model.evaluate(account, view);
      const high = highSlack(seen);
      const trueSlack = lowSlack(exact);
      const key = account.key;
      if (high !== undefined && high < 0n) {
        expected++;
        if (!liquidatable.has(key)) throw new Error(`missed liquidatable ${describe(key, seen)}`);
      } else if (liquidatable.has(key)) throw new Error(`reported liquidatable but is not: ${describe(key, seen)}`);
      if (trueSlack !== undefined && trueSlack < 0n && !liquidatable.has(key) && !confirm.has(key)) {
        throw new Error(`missed (exact slack < 0, neither liquidatable nor to confirm): ${describe(key, exact)}`);
      }
      if (confirm.has(key)) {
        const low = lowSlack(seen);
        if (seen.kind !== "bounded" || low === undefined || high === undefined || !(low < 0n && high >= 0n)) {
          throw new Error(`to confirm but does not straddle 0: ${describe(key, seen)}`);
        }
      }
    }
    if (expected !== liquidatable.size) throw new Error(`reported ${liquidatable.size}, scan ${expected}`);
    checkCertificates.call(this, view);
    const problems = this.engine.audit();
    if (problems.length > 0) throw new Error(`index inconsistent: ${problems.slice(0, 5).join("; ")}`);
    this.flagged += expected;
  }
}

/**
 * Every cold account's certificate, checked directly: at the worst corner of its box (each price just inside its
 * face, against the account; a price with no face where it is now; the last second before the deadline) the exact
 * slack is still ≥ 0. For these linear accounts the corner is where the box's slack is lowest (funding aside, which
 * the corner takes at its actual rate rather than its bound).
 */
function checkCertificates(this: Sim, view: PriceView): void {
  for (const account of this.engine.values()) {
    const cert = this.engine.certificate(account.key);
    if (cert === undefined) continue;
    const prices = new Map(view.prices);
    let open = false;
    account.prices.forEach((id, i) => {
      const face = cert.levels.get(id) ?? {};
      const size = (account.positions[i] as LinearPosition).size;
      const down = size > 0n; // these accounts lose on a fall when long, on a rise when short
      const level = down ? face.down : face.up;
      if (size === 0n) return;
      if (level === undefined) {
        open = true; // no face on an adverse side: room without bound
        return;
      }
      const corner = down ? BigInt(Math.floor(level)) + 1n : BigInt(Math.ceil(level)) - 1n;
      prices.set(id, corner > 0n ? corner : 1n);
    });
    if (open || account.prices.some((id) => !prices.has(id))) continue;
    const corner = { prices, timestamp: BigInt(cert.deadline) - 1n, blockNumber: view.blockNumber };
    const slack = lowSlack(this.model.exact(account, corner));
    if (slack !== undefined && slack < 0n && [...prices].every(([, p]) => p > 1n)) {
      throw new Error(`missed by a certificate: ${account.key} is liquidatable inside its box (slack ${slack})`);
    }
  }
}

/** Runs a scenario: one initial tick, then every step, checked after every tick. */
export function runScenario(scenario: Scenario, options: SimOptions): Sim {
  const sim = new Sim(scenario, options);
  sim.tick();
  for (const step of scenario.steps) {
    sim.apply(step);
    if (step.kind === "tick") sim.tick();
  }
  sim.tick();
  return sim;
}

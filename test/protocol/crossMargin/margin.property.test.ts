/**
 * Properties of the cross-margin margin model the risk engine relies on (src/protocol/crossMargin/margin.ts):
 * - the movement bound: at any new prices the exact slack is never below the old slack less the sensitivity's bound;
 * - the cross-margin index over this model: after every tick of a random price path, the engine's liquidatable set
 *   equals a full exact scan with the exchange's arithmetic.
 * A sensitivity that understates a slope must be caught by the first property: it is run on one too.
 *
 * fast-check, seeded: `FC_SEED=<n>` replays a seed, `FC_RUNS=<n>` sets the runs.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { evaluateAccount, sensitivityOf } from "../../../src/protocol/crossMargin/margin.ts";
import type { CrossMarginGlobalConfig, CrossMarginMarketConfig } from "../../../src/protocol/crossMargin/math.ts";
import type {
  CrossMarginAccount,
  CrossMarginBookView,
  CrossMarginMarket,
  CrossMarginPosition,
} from "../../../src/protocol/crossMargin/records.ts";
import { lowSlack, type PriceView, type Sensitivity } from "../../../src/protocol/types.ts";
import { CrossRiskEngine } from "../../../src/risk/cross/engine.ts";

const SEED = Number(process.env.FC_SEED ?? 20_261_203);
const RUNS = Number(process.env.FC_RUNS ?? 200);
const WAD = 10n ** 18n;
const MARKETS = 3;

const GLOBAL: CrossMarginGlobalConfig = {
  minKeeperReward: WAD,
  maxKeeperReward: 500n * WAD,
  stepReward: WAD,
  maxPriceAge: 60n,
};

const configArb: fc.Arbitrary<CrossMarginMarketConfig> = fc.record({
  feedId: fc.constant(`0x${"ab".repeat(32)}` as const),
  skewScale: fc.bigInt({ min: 1_000n, max: 10_000_000n }).map((x) => x * WAD),
  makerFeeRatio: fc.constant(2n * 10n ** 14n),
  takerFeeRatio: fc.constant(5n * 10n ** 14n),
  initialMarginRatio: fc.bigInt({ min: 0n, max: 5n * WAD }),
  minimumInitialMarginRatio: fc.bigInt({ min: 10n ** 15n, max: WAD / 5n }),
  maintenanceMarginScalar: fc.bigInt({ min: WAD / 10n, max: WAD }),
  flagRewardRatio: fc.bigInt({ min: 0n, max: 10n ** 16n }),
  minimumPositionMargin: fc.bigInt({ min: 0n, max: 100n }).map((x) => x * WAD),
  maxLiquidationLimitAccumulationMultiplier: fc.constant(WAD),
  maxSecondsInLiquidationWindow: fc.constant(30n),
});

const priceArb = fc.bigInt({ min: 10n, max: 100_000n }).map((x) => x * WAD);
const positionArb = fc.record({
  size: fc.bigInt({ min: -2_000n * WAD, max: 2_000n * WAD }).filter((s) => s !== 0n),
  entryPrice: priceArb,
});
const accountArb = fc.record({
  collateral: fc.bigInt({ min: -10_000n * WAD, max: 2_000_000n * WAD }),
  positions: fc.array(fc.option(positionArb, { nil: undefined }), { minLength: MARKETS, maxLength: MARKETS }),
});

function bookOf(configs: readonly CrossMarginMarketConfig[]): CrossMarginBookView {
  const markets = new Map<number, CrossMarginMarket>(
    configs.map((config, i) => [i, { priceId: i, marketId: BigInt(100 * (i + 1)), name: `M${i}`, config, window: [] }]),
  );
  return { markets, accounts: new Map(), global: { config: GLOBAL } };
}

interface AccountSpec {
  readonly collateral: bigint;
  readonly positions: readonly (CrossMarginPosition | undefined)[];
}

function account(key: string, a: AccountSpec): CrossMarginAccount {
  const positions = new Map<number, CrossMarginPosition>();
  a.positions.forEach((p, i) => {
    if (p) positions.set(i, p);
  });
  return {
    key,
    id: BigInt(key),
    owner: "0x00000000000000000000000000000000000000aa",
    collateral: a.collateral,
    positions,
    prices: [...positions.keys()].sort((x, y) => x - y),
    flagged: false,
  };
}

function slack(acc: CrossMarginAccount, book: CrossMarginBookView, prices: readonly bigint[]): bigint {
  const view = { prices: new Map(prices.map((p, i) => [i, p])) };
  const s = lowSlack(evaluateAccount(acc, book, view).evaluation);
  if (s === undefined) throw new Error("unpriced");
  return s;
}

/** The most the slack may fall from `from` to `to` by the sensitivity. */
function bound(s: Sensitivity, from: readonly bigint[], to: readonly bigint[]): number {
  let b = Number(s.rounding);
  from.forEach((p0, i) => {
    const p1 = to[i] as bigint;
    if (p1 < p0) b += (s.down.get(i) ?? 0) * Number(p0 - p1);
    if (p1 > p0) b += (s.up.get(i) ?? 0) * Number(p1 - p0);
  });
  return b;
}

const moveArb = fc.array(fc.double({ min: -0.6, max: 1.5, noNaN: true }), { minLength: MARKETS, maxLength: MARKETS });
const scale = (p: bigint, m: number) => {
  const q = (p * BigInt(Math.round((1 + m) * 1e9))) / 1_000_000_000n;
  return q > 0n ? q : 1n;
};

describe("cross-margin margin model", () => {
  it("the movement bound holds: slack at new prices ≥ old slack − the sensitivity's bound", () => {
    let crossed = 0;
    fc.assert(
      fc.property(
        fc.array(configArb, { minLength: MARKETS, maxLength: MARKETS }),
        accountArb,
        fc.array(priceArb, { minLength: MARKETS, maxLength: MARKETS }),
        moveArb,
        (configs, a, prices, moves) => {
          const book = bookOf(configs);
          const acc = account("1", a);
          const next = prices.map((p, i) => scale(p, moves[i] as number));
          const before = slack(acc, book, prices);
          const after = slack(acc, book, next);
          const s = sensitivityOf(acc, book);
          if (before >= 0n !== after >= 0n) crossed++;
          // exact bigints compared with a float bound: a relative tolerance far below any slope's size
          const limit = Number(before) - bound(s, prices, next);
          expect(Number(after)).toBeGreaterThanOrEqual(limit - Math.abs(limit) * 1e-12 - 1);
        },
      ),
      { seed: SEED, numRuns: RUNS * 5 },
    );
    expect(crossed).toBeGreaterThan(0); // the moves do cross maintenance
  });

  it("an understated sensitivity is caught by the same property", () => {
    const found = fc.check(
      fc.property(
        fc.array(configArb, { minLength: MARKETS, maxLength: MARKETS }),
        accountArb,
        fc.array(priceArb, { minLength: MARKETS, maxLength: MARKETS }),
        moveArb,
        (configs, a, prices, moves) => {
          const book = bookOf(configs);
          const acc = account("1", a);
          const next = prices.map((p, i) => scale(p, moves[i] as number));
          const s = sensitivityOf(acc, book);
          const shrink = (m: ReadonlyMap<number, number>) => new Map([...m].map(([k, v]) => [k, v * 0.5]));
          const weak = { ...s, down: shrink(s.down), up: shrink(s.up) };
          const limit = Number(slack(acc, book, prices)) - bound(weak, prices, next);
          return Number(slack(acc, book, next)) >= limit - Math.abs(limit) * 1e-12 - 1;
        },
      ),
      { seed: SEED + 1, numRuns: RUNS * 5 },
    );
    expect(found.failed).toBe(true);
  });

  it("the cross-margin index over this model equals a full exact scan after every tick", () => {
    let flagged = 0;
    fc.assert(
      fc.property(
        fc.array(configArb, { minLength: MARKETS, maxLength: MARKETS }),
        fc.array(accountArb, { minLength: 5, maxLength: 40 }),
        fc.array(priceArb, { minLength: MARKETS, maxLength: MARKETS }),
        fc.array(
          moveArb.map((m) => m.map((x) => x / 10)),
          { minLength: 5, maxLength: 25 },
        ),
        (configs, specs, start, path) => {
          const book = bookOf(configs);
          const accounts = specs.map((a, i) => account(String(BigInt(2) ** 100n + BigInt(i)), a));
          const engine = new CrossRiskEngine<CrossMarginAccount>({
            evaluate: (acc, at) => evaluateAccount(acc, book, at).evaluation,
            sensitivity: (acc) => sensitivityOf(acc, book),
          });
          for (const acc of accounts) engine.upsert(acc);
          let prices = start;
          let t = 1_000n;
          for (const move of path) {
            prices = prices.map((p, i) => scale(p, move[i] as number));
            t += 1n;
            const view: PriceView = { prices: new Map(prices.map((p, i) => [i, p])), timestamp: t, blockNumber: t };
            const got = new Set(engine.tick(view).liquidatable.map((f) => f.account.key));
            const want = new Set(accounts.filter((acc) => slack(acc, book, prices) < 0n).map((acc) => acc.key));
            flagged += want.size;
            expect([...got].sort()).toEqual([...want].sort());
          }
        },
      ),
      { seed: SEED + 2, numRuns: RUNS },
    );
    expect(flagged).toBeGreaterThan(RUNS);
  });
});

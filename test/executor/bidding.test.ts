/**
 * The bidding policy for contested liquidations (issue 18): unit cases, and properties over random heads, policies,
 * rewards and competitor tips: a bid never leaves less than minProfit, stays within every cap (checkFees), equals
 * planFees when uncontested or first-come, and never bids less for a more profitable liquidation.
 *
 * fast-check, seeded: `FC_SEED=<n>` replays a seed.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type BiddingPolicy, bid, outbid, profitTipLimit } from "../../src/executor/bidding.ts";
import {
  ceilingFor,
  checkFees,
  expectedProfit,
  type FeeContext,
  type FeePolicy,
  type Fees,
  planFees,
  type TxValue,
} from "../../src/executor/fees.ts";

const SEED = Number(process.env.FC_SEED ?? 20_240_618);
const RUNS = Number(process.env.FC_RUNS ?? 500);
const GWEI = 1_000_000_000n;
const ETH = 10n ** 18n;
const WAD = 10n ** 18n;
const BPS = 10_000n;

// ------------------------------------------------------------------------------------------------------ unit

const policy: FeePolicy = {
  baseFeeMultiplierBps: 20_000n,
  minPriorityFeePerGas: GWEI / 100n,
  maxFeePerGasCap: undefined,
  gasTokenPrice: 3000n * WAD, // collateral per ETH
  maxRewardShareBps: 10_000n,
  minProfit: 0n,
  replacementBumpBps: 1_250n,
  txFeeCap: ETH,
};
const ctx: FeeContext = { baseFeePerGas: 10n * GWEI, priorityFeePerGas: GWEI };
/** 100 collateral for 200k gas: 6.6 collateral of gas at the going tip, 93.4 of profit. */
const liquidation: TxValue = { reward: 100n * WAD, gas: 200_000n };
const priority: BiddingPolicy = { ordering: "priority", profitShareBps: 5_000n, maxPriorityFeePerGas: undefined };

const profitAt = (tip: bigint, p = policy, l = liquidation, c = ctx) =>
  expectedProfit(l.reward, l.gas, c.baseFeePerGas, tip, p.gasTokenPrice ?? 0n, l.value);
const shapeOf = (l: TxValue) => ({ gas: l.gasLimit ?? l.gas, reward: l.reward, value: l.value });

function fees(plan: { ok: boolean } & Partial<Fees>): Fees {
  expect(plan.ok).toBe(true);
  return { maxFeePerGas: plan.maxFeePerGas as bigint, maxPriorityFeePerGas: plan.maxPriorityFeePerGas as bigint };
}

describe("bid", () => {
  it("uncontested, or on a first-come chain: exactly planFees's answer", () => {
    const plan = planFees(ctx, policy, liquidation);
    expect(bid(ctx, policy, priority, liquidation)).toEqual(plan);
    expect(bid(ctx, policy, { ...priority, ordering: "fcfs" }, liquidation, { competitorTip: 50n * GWEI })).toEqual(
      plan,
    );
    expect(plan).toEqual({ ok: true, maxFeePerGas: 21n * GWEI, maxPriorityFeePerGas: GWEI });
  });

  it("contested on a priority chain: the going tip plus the share of the profit per gas", () => {
    const profit = profitAt(GWEI);
    expect(profit).toBe(WAD * 100n - (200_000n * 11n * GWEI * 3000n * WAD) / WAD); // 93.4
    const extra = (profit * 5_000n * WAD) / (BPS * 3000n * WAD * 200_000n); // about 77.8 gwei
    const f = fees(bid(ctx, policy, priority, liquidation, { competitorTip: 0n }));
    expect(f.maxPriorityFeePerGas).toBe(GWEI + extra);
    expect(f.maxFeePerGas).toBe(20n * GWEI + GWEI + extra);
    // half the profit went to the tip
    const left = profitAt(f.maxPriorityFeePerGas);
    expect(left * 2n - profit).toBeGreaterThanOrEqual(0n);
    expect(left * 2n - profit).toBeLessThan(WAD / 1000n);
    expect(checkFees(f, shapeOf(liquidation), policy)).toEqual({ ok: true });
    // share 0: the going tip, even contested
    expect(bid(ctx, policy, { ...priority, profitShareBps: 0n }, liquidation, { competitorTip: 0n })).toEqual(
      planFees(ctx, policy, liquidation),
    );
  });

  it("beats the competitor's tip by 1 wei while that still pays, and never bids itself into a loss", () => {
    const above = fees(bid(ctx, policy, priority, liquidation, { competitorTip: 100n * GWEI }));
    expect(above.maxPriorityFeePerGas).toBe(100n * GWEI + 1n);
    expect(above.maxFeePerGas).toBe(120n * GWEI + 1n);
    // 400 gwei would cost 82 collateral of gas... plus base: 410 gwei x 200k = 246 > 100: the share bid stands
    const share = fees(bid(ctx, policy, priority, liquidation, { competitorTip: 0n }));
    expect(bid(ctx, policy, priority, liquidation, { competitorTip: 400n * GWEI })).toEqual({ ok: true, ...share });
    // all the profit offered, minProfit 90: the tip stops where 90 is left
    const strict = { ...policy, minProfit: 90n * WAD };
    const all = fees(bid(ctx, strict, { ...priority, profitShareBps: 10_000n }, liquidation, { competitorTip: 0n }));
    expect(profitAt(all.maxPriorityFeePerGas, strict)).toBeGreaterThanOrEqual(90n * WAD);
    expect(profitAt(all.maxPriorityFeePerGas + 1n, strict)).toBeLessThan(90n * WAD);
    expect(profitTipLimit(ctx, strict, liquidation)).toBe(all.maxPriorityFeePerGas);
    // a competitor beyond that bound is not followed into a loss
    const beyond = fees(bid(ctx, strict, priority, liquidation, { competitorTip: 20n * GWEI }));
    expect(profitAt(beyond.maxPriorityFeePerGas, strict)).toBeGreaterThanOrEqual(90n * WAD);
    expect(beyond.maxPriorityFeePerGas).toBeLessThanOrEqual(20n * GWEI);
  });

  it("the tip cap, the fee ceiling and the reward share hold the bid", () => {
    const capped = { ...priority, maxPriorityFeePerGas: 5n * GWEI };
    expect(fees(bid(ctx, policy, capped, liquidation, { competitorTip: 100n * GWEI }))).toEqual({
      maxFeePerGas: 25n * GWEI,
      maxPriorityFeePerGas: 5n * GWEI,
    });
    // a cap under the going tip leaves the going tip: a bid never goes below it
    const under = { ...priority, maxPriorityFeePerGas: GWEI / 2n };
    expect(bid(ctx, policy, under, liquidation, { competitorTip: 0n })).toEqual(planFees(ctx, policy, liquidation));
    // maxFeePerGasCap 60 gwei: the max fee at it, the tip what is left above the base fee
    const ceiling = { ...policy, maxFeePerGasCap: 60n * GWEI };
    expect(fees(bid(ctx, ceiling, priority, liquidation, { competitorTip: 0n }))).toEqual({
      maxFeePerGas: 60n * GWEI,
      maxPriorityFeePerGas: 50n * GWEI,
    });
    // reward share 30%: 30 collateral of worst-case gas over a 260k gas limit
    const share = { ...policy, maxRewardShareBps: 3_000n };
    const limited = { ...liquidation, gasLimit: 260_000n };
    const f = fees(bid(ctx, share, priority, limited, { competitorTip: 100n * GWEI }));
    expect(f.maxFeePerGas).toBe(ceilingFor(share, shapeOf(limited)));
    expect(f.maxPriorityFeePerGas).toBe(f.maxFeePerGas - ctx.baseFeePerGas);
    expect(checkFees(f, shapeOf(limited), share)).toEqual({ ok: true });
    // the node's txFeeCap over the gas limit
    const txCap = { ...policy, txFeeCap: 200_000n * 40n * GWEI };
    const t = fees(bid(ctx, txCap, priority, liquidation, { competitorTip: 100n * GWEI }));
    expect(t).toEqual({ maxFeePerGas: 40n * GWEI, maxPriorityFeePerGas: 30n * GWEI });
  });

  it("no gas token price, or a liquidation that does not pay at the going tip: planFees's answer", () => {
    const unpriced = { ...policy, gasTokenPrice: undefined };
    expect(bid(ctx, unpriced, priority, liquidation, { competitorTip: 100n * GWEI })).toEqual(
      planFees(ctx, unpriced, liquidation),
    );
    const poor = { ...liquidation, reward: WAD }; // 1 collateral for 6.6 of gas
    const refused = bid(ctx, policy, priority, poor, { competitorTip: 0n });
    expect(refused).toEqual(planFees(ctx, policy, poor));
    expect(refused.ok).toBe(false);
  });

  it("a pull oracle's fee sent with it counts against the profit", () => {
    const withFee = { ...liquidation, value: ETH / 100n }; // 30 collateral
    const f = fees(bid(ctx, policy, priority, withFee, { competitorTip: 0n }));
    const g = fees(bid(ctx, policy, priority, liquidation, { competitorTip: 0n }));
    expect(f.maxPriorityFeePerGas).toBeLessThan(g.maxPriorityFeePerGas);
    expect(profitAt(f.maxPriorityFeePerGas, policy, withFee)).toBeGreaterThanOrEqual(0n);
  });
});

describe("outbid", () => {
  const previous = fees(planFees(ctx, policy, liquidation)); // 21 gwei, tip 1 gwei

  it("replaces our transaction with a tip above the competitor's, past the node's replacement rule", () => {
    const r = fees(outbid(previous, 100n * GWEI, ctx, policy, priority, liquidation));
    expect(r.maxPriorityFeePerGas).toBe(100n * GWEI + 1n);
    expect(r.maxFeePerGas).toBe(120n * GWEI + 1n);
    expect(checkFees(r, shapeOf(liquidation), policy)).toEqual({ ok: true });
    // a competitor under our share bid: the share bid, still above the bump
    const low = fees(outbid(previous, GWEI, ctx, policy, priority, liquidation));
    expect(low).toEqual(fees(bid(ctx, policy, priority, liquidation, { competitorTip: GWEI })));
    // the bump rule: previous already high, the competitor just above our tip
    const high = { maxFeePerGas: 100n * GWEI, maxPriorityFeePerGas: 80n * GWEI };
    const bumped = fees(outbid(high, 80n * GWEI, ctx, policy, { ...priority, profitShareBps: 0n }, liquidation));
    expect(bumped.maxPriorityFeePerGas).toBe(90n * GWEI + 1n);
    expect(bumped.maxFeePerGas).toBe(112_500_000_001n);
  });

  it("refuses what would not pay, and what passes a cap", () => {
    expect(outbid(previous, 400n * GWEI, ctx, policy, priority, liquidation)).toEqual({
      ok: false,
      reason: "unprofitable",
    });
    const strict = { ...policy, minProfit: 90n * WAD };
    const limit = profitTipLimit(ctx, strict, liquidation) as bigint;
    expect(outbid(previous, limit, ctx, strict, priority, liquidation)).toEqual({ ok: false, reason: "unprofitable" });
    expect(outbid(previous, limit - 1n, ctx, strict, priority, liquidation).ok).toBe(true);
    // our bump alone would pass the profit bound
    const near = { maxFeePerGas: limit + 20n * GWEI, maxPriorityFeePerGas: limit };
    expect(outbid(near, 0n, ctx, strict, priority, liquidation)).toEqual({ ok: false, reason: "unprofitable" });
    // the tip cap under the competitor
    const capped = { ...priority, maxPriorityFeePerGas: 50n * GWEI };
    expect(outbid(previous, 50n * GWEI, ctx, policy, capped, liquidation)).toEqual({ ok: false, reason: "at_fee_cap" });
    // the fee ceiling: 60 gwei leaves at most 50 gwei above the base fee
    const ceiling = { ...policy, maxFeePerGasCap: 60n * GWEI };
    expect(outbid(previous, 50n * GWEI, ctx, ceiling, priority, liquidation)).toEqual({
      ok: false,
      reason: "at_fee_cap",
    });
    expect(fees(outbid(previous, 40n * GWEI, ctx, ceiling, priority, liquidation)).maxFeePerGas).toBe(60n * GWEI);
    // the bump rule would pass the ceiling
    const atCap = { maxFeePerGas: 58n * GWEI, maxPriorityFeePerGas: 10n * GWEI };
    expect(outbid(atCap, 0n, ctx, ceiling, priority, liquidation)).toEqual({ ok: false, reason: "at_fee_cap" });
  });
});

// -------------------------------------------------------------------------------------------------- property

/** A value drawn from a few orders of magnitude: tiny, typical and huge figures all show up. */
const spread = (max: bigint) =>
  fc.oneof(fc.bigInt({ min: 0n, max: 1_000n }), fc.bigInt({ min: 0n, max: max / 1_000n }), fc.bigInt({ min: 0n, max }));

const head: fc.Arbitrary<FeeContext> = fc.record({
  baseFeePerGas: spread(10_000n * GWEI),
  priorityFeePerGas: spread(1_000n * GWEI),
});

const feePolicy: fc.Arbitrary<FeePolicy> = fc.record({
  baseFeeMultiplierBps: fc.bigInt({ min: 10_000n, max: 100_000n }),
  minPriorityFeePerGas: spread(100n * GWEI),
  maxFeePerGasCap: fc.option(fc.bigInt({ min: 1n, max: 1_000_000n * GWEI }), { nil: undefined }),
  // mostly a realistic price (so that liquidations pay), sometimes none or anything
  gasTokenPrice: fc.oneof(
    fc.bigInt({ min: 1n * WAD, max: 10_000n * WAD }),
    fc.constant(undefined),
    fc.bigInt({ min: 0n, max: 1_000_000n * WAD }),
  ),
  maxRewardShareBps: fc.bigInt({ min: 1n, max: 10_000n }),
  minProfit: fc.oneof(fc.constant(0n), spread(1_000n * WAD)),
  replacementBumpBps: fc.oneof(fc.constantFrom(1_000n, 1_250n), fc.bigInt({ min: 1_000n, max: 10_000n })),
  txFeeCap: fc.option(fc.oneof(fc.constant(ETH), fc.bigInt({ min: 1n, max: 1_000n * ETH })), { nil: undefined }),
});

const bidding: fc.Arbitrary<BiddingPolicy> = fc.record({
  ordering: fc.constantFrom("priority" as const, "fcfs" as const),
  profitShareBps: fc.oneof(fc.constantFrom(0n, 5_000n, 10_000n), fc.bigInt({ min: 0n, max: 10_000n })),
  maxPriorityFeePerGas: fc.option(spread(10_000n * GWEI), { nil: undefined }),
});

const liquidationArb: fc.Arbitrary<TxValue> = fc
  .record({
    gas: fc.bigInt({ min: 21_000n, max: 30_000_000n }),
    multiplierPercent: fc.bigInt({ min: 100n, max: 500n }),
    // anything, or a reward of the size liquidations pay (so that most contested cases bid)
    reward: fc.oneof(spread(1_000_000n * WAD), fc.bigInt({ min: WAD, max: 100_000n * WAD })),
    value: fc.option(spread(ETH / 10n), { nil: undefined }),
  })
  .map(({ gas, multiplierPercent, reward, value }) => ({
    gas,
    gasLimit: (gas * multiplierPercent) / 100n,
    reward,
    ...(value === undefined ? {} : { value }),
  }));

const competitorTip = spread(10_000n * GWEI);
const options = { seed: SEED, numRuns: RUNS };

/** tip <= maxFee <= every cap, each from its definition, and checkFees agrees. */
function expectWithinCaps(f: Fees, l: TxValue, p: FeePolicy): void {
  const gas = l.gasLimit ?? l.gas;
  expect(f.maxPriorityFeePerGas).toBeGreaterThanOrEqual(0n);
  expect(f.maxPriorityFeePerGas).toBeLessThanOrEqual(f.maxFeePerGas);
  if (p.maxFeePerGasCap !== undefined) expect(f.maxFeePerGas).toBeLessThanOrEqual(p.maxFeePerGasCap);
  if (p.txFeeCap !== undefined) expect(gas * f.maxFeePerGas).toBeLessThanOrEqual(p.txFeeCap);
  const ceiling = ceilingFor(p, shapeOf(l));
  if (ceiling !== undefined) expect(f.maxFeePerGas).toBeLessThanOrEqual(ceiling);
  expect(checkFees(f, shapeOf(l), p)).toEqual({ ok: true });
}

function expectPays(tip: bigint, ctx: FeeContext, p: FeePolicy, l: TxValue): void {
  if (p.gasTokenPrice === undefined || p.gasTokenPrice === 0n) return;
  const profit = expectedProfit(l.reward, l.gas, ctx.baseFeePerGas, tip, p.gasTokenPrice, l.value);
  expect(profit).toBeGreaterThanOrEqual(p.minProfit);
}

describe("bidding (property)", () => {
  it("fcfs and uncontested: planFees's answer; contested: within every cap, never into a loss", () => {
    fc.assert(
      fc.property(head, feePolicy, bidding, liquidationArb, competitorTip, (c, p, b, l, comp) => {
        const plan = planFees(c, p, l);
        expect(bid(c, p, b, l)).toEqual(plan);
        expect(bid(c, p, { ...b, ordering: "fcfs" }, l, { competitorTip: comp })).toEqual(plan);
        const contested = bid(c, p, { ...b, ordering: "priority" }, l, { competitorTip: comp });
        expect(contested.ok).toBe(plan.ok);
        if (!plan.ok || !contested.ok) {
          expect(contested).toEqual(plan);
          return;
        }
        expectWithinCaps(contested, l, p);
        expectPays(contested.maxPriorityFeePerGas, c, p, l);
        // never under the going tip's plan
        expect(contested.maxPriorityFeePerGas).toBeGreaterThanOrEqual(plan.maxPriorityFeePerGas);
        expect(contested.maxFeePerGas).toBeGreaterThanOrEqual(plan.maxFeePerGas);
        if (p.gasTokenPrice === undefined || p.gasTokenPrice === 0n) expect(contested).toEqual(plan);
        // above the going tip only as far as the bidding cap allows
        if (b.maxPriorityFeePerGas !== undefined && contested.maxPriorityFeePerGas > b.maxPriorityFeePerGas) {
          expect(contested).toEqual(plan);
        }
        // the competitor is beaten unless beating it would not pay or a cap stands in the way
        if (contested.maxPriorityFeePerGas <= comp && p.gasTokenPrice !== undefined && p.gasTokenPrice > 0n) {
          const beat = comp + 1n;
          const ceiling = ceilingFor(p, shapeOf(l));
          const pays = expectedProfit(l.reward, l.gas, c.baseFeePerGas, beat, p.gasTokenPrice, l.value) >= p.minProfit;
          const capped =
            (b.maxPriorityFeePerGas !== undefined && b.maxPriorityFeePerGas < beat) ||
            (ceiling !== undefined && ceiling - c.baseFeePerGas < beat);
          expect(!pays || capped).toBe(true);
        }
      }),
      options,
    );
  });

  it("a more profitable liquidation never bids less", () => {
    fc.assert(
      fc.property(
        head,
        feePolicy,
        bidding,
        liquidationArb,
        spread(1_000_000n * WAD),
        competitorTip,
        (c, p, b, l, more, comp) => {
          const richer = { ...l, reward: l.reward + more };
          const priorityBidding = { ...b, ordering: "priority" as const };
          const low = bid(c, p, priorityBidding, l, { competitorTip: comp });
          const high = bid(c, p, priorityBidding, richer, { competitorTip: comp });
          if (low.ok) {
            expect(high.ok).toBe(true);
            if (!high.ok) return;
            expect(high.maxPriorityFeePerGas).toBeGreaterThanOrEqual(low.maxPriorityFeePerGas);
            expect(high.maxFeePerGas).toBeGreaterThanOrEqual(low.maxFeePerGas);
          }
        },
      ),
      options,
    );
  });

  it("outbid: past the node's rule and the competitor, within every cap and the profit, or a refusal", () => {
    const previous = fc
      .record({ maxFeePerGas: spread(10_000n * GWEI), maxPriorityFeePerGas: spread(10_000n * GWEI) })
      .map((f) => (f.maxPriorityFeePerGas > f.maxFeePerGas ? { ...f, maxPriorityFeePerGas: f.maxFeePerGas } : f));
    fc.assert(
      fc.property(previous, competitorTip, head, feePolicy, bidding, liquidationArb, (prev, comp, c, p, b, l) => {
        const r = outbid(prev, comp, c, p, b, l);
        if (!r.ok) {
          expect(["unprofitable", "at_fee_cap"]).toContain(r.reason);
          if (r.reason === "unprofitable") expect(p.gasTokenPrice !== undefined && p.gasTokenPrice > 0n).toBe(true);
          return;
        }
        expectWithinCaps(r, l, p);
        expectPays(r.maxPriorityFeePerGas, c, p, l);
        const bump = BPS + p.replacementBumpBps;
        expect(r.maxFeePerGas * BPS).toBeGreaterThanOrEqual(prev.maxFeePerGas * bump);
        expect(r.maxPriorityFeePerGas * BPS).toBeGreaterThanOrEqual(prev.maxPriorityFeePerGas * bump);
        const effective =
          r.maxFeePerGas - c.baseFeePerGas < r.maxPriorityFeePerGas
            ? r.maxFeePerGas - c.baseFeePerGas
            : r.maxPriorityFeePerGas;
        expect(effective).toBeGreaterThan(comp);
        if (b.maxPriorityFeePerGas !== undefined) {
          expect(r.maxPriorityFeePerGas).toBeLessThanOrEqual(b.maxPriorityFeePerGas);
        }
      }),
      options,
    );
  });
});

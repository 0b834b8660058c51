/**
 * Property tests of the fee invariant (the "Trust" issue): every transaction the keeper would sign — a new
 * liquidation, a cancel, a replacement anywhere in a bump chain, a dropped transaction signed again, a nonce-gap
 * filler — has tip <= maxFee <= every cap (maxFeePerGasCap, the reward-share ceiling) and gas x maxFee <= txFeeCap;
 * each replacement also outbids the one it replaces by the node's bump rule. Where that is impossible the answer is a
 * refusal value, never an exception. The caps are recomputed here from their definitions, not taken from fees.ts.
 *
 * fast-check, seeded: `FC_SEED=<n>` replays a seed (a failure prints its seed and shrunk counterexample).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CANCEL_GAS,
  ceilingFor,
  checkFees,
  currentFees,
  type FeeContext,
  type FeePolicy,
  type Fees,
  feeCeiling,
  planFees,
  replacementFees,
} from "../../src/executor/fees.ts";
import { decideStuck } from "../../src/executor/pendingDecision.ts";
import { backrunFees } from "../../src/precompute/backrunFees.ts";

const SEED = Number(process.env.FC_SEED ?? 20_240_601);
const RUNS = Number(process.env.FC_RUNS ?? 500);
const GWEI = 1_000_000_000n;
const ETH = 10n ** 18n;
const WAD = 10n ** 18n;
const BPS = 10_000n;

// ------------------------------------------------------------------------------------------------ generators

/** A value drawn from a few orders of magnitude: tiny, typical and huge figures all show up. */
const spread = (max: bigint) =>
  fc.oneof(fc.bigInt({ min: 0n, max: 1_000n }), fc.bigInt({ min: 0n, max: max / 1_000n }), fc.bigInt({ min: 0n, max }));

const baseFee = spread(10_000n * GWEI);
const tip = spread(1_000n * GWEI);

const policy: fc.Arbitrary<FeePolicy> = fc.record({
  baseFeeMultiplierBps: fc.bigInt({ min: 10_000n, max: 100_000n }),
  minPriorityFeePerGas: spread(100n * GWEI),
  // present or absent; from 1 wei (tiny) to a million gwei (huge)
  maxFeePerGasCap: fc.option(fc.bigInt({ min: 1n, max: 1_000_000n * GWEI }), { nil: undefined }),
  gasTokenPrice: fc.option(fc.bigInt({ min: 0n, max: 1_000_000n * WAD }), { nil: undefined }),
  maxRewardShareBps: fc.bigInt({ min: 1n, max: 10_000n }),
  minProfit: fc.oneof(fc.constant(0n), spread(1_000n * WAD)),
  replacementBumpBps: fc.oneof(fc.constantFrom(1_000n, 1_250n), fc.bigInt({ min: 1_000n, max: 10_000n })),
  txFeeCap: fc.option(fc.oneof(fc.constant(ETH), fc.bigInt({ min: 1n, max: 1_000n * ETH })), { nil: undefined }),
});

/** A liquidation: gas it is expected to use, the gas limit it is signed with, and its reward (WAD collateral). */
const liquidation = fc
  .record({
    gas: fc.bigInt({ min: 21_000n, max: 30_000_000n }),
    multiplierPercent: fc.bigInt({ min: 100n, max: 500n }),
    reward: spread(1_000_000_000n * WAD),
  })
  .map(({ gas, multiplierPercent, reward }) => ({ gas, gasLimit: (gas * multiplierPercent) / 100n, reward }));

const head = fc.record({ baseFeePerGas: baseFee, priorityFeePerGas: tip });

/** One head of a replacement chain: its fees, and what the inclusion pass found. */
const step = fc.record({
  ctx: head,
  /** The node still has one of the attempt's transactions (a replacement), or lost them all (a re-sign). */
  known: fc.boolean(),
  wanted: fc.constantFrom(true, false, undefined),
  /** decidePending said "cancel" (the executor's cancel path) instead of "check". */
  cancelPath: fc.boolean(),
});

// -------------------------------------------------------------------------------------------- the invariant

interface Shape {
  readonly gas: bigint;
  readonly reward?: bigint;
}

/** Every cap, from its definition. */
function violations(fees: Fees, tx: Shape, p: FeePolicy): string[] {
  const out: string[] = [];
  const { maxFeePerGas: max, maxPriorityFeePerGas: tip } = fees;
  if (tip < 0n || max < 0n) out.push("negative");
  if (tip > max) out.push(`tip ${tip} > max fee ${max}`);
  if (p.maxFeePerGasCap !== undefined && max > p.maxFeePerGasCap) out.push(`max fee ${max} > cap`);
  if (tx.reward !== undefined && p.gasTokenPrice !== undefined && p.gasTokenPrice > 0n) {
    // worst-case gas cost in collateral within the reward's share (both sides scaled to integers)
    if (tx.gas * max * p.gasTokenPrice * BPS > tx.reward * p.maxRewardShareBps * WAD) out.push("reward share");
  }
  if (p.txFeeCap !== undefined && tx.gas * max > p.txFeeCap) out.push(`gas x max fee ${tx.gas * max} > txFeeCap`);
  return out;
}

function expectWithin(fees: Fees, tx: Shape, p: FeePolicy): void {
  expect(violations(fees, tx, p)).toEqual([]);
  expect(checkFees(fees, tx, p)).toEqual({ ok: true });
}

/** The node's replacement rule (geth: both fields at least the old one's x (100 + bump) / 100). */
function expectOutbids(next: Fees, previous: Fees, p: FeePolicy): void {
  const bump = BPS + p.replacementBumpBps;
  expect(next.maxFeePerGas * BPS).toBeGreaterThanOrEqual(previous.maxFeePerGas * bump);
  expect(next.maxPriorityFeePerGas * BPS).toBeGreaterThanOrEqual(previous.maxPriorityFeePerGas * bump);
}

const options = { seed: SEED, numRuns: RUNS };

describe("fee invariant (property)", () => {
  it("checkFees accepts exactly what every cap allows", () => {
    const fees = fc.record({ maxFeePerGas: spread(100_000n * GWEI), maxPriorityFeePerGas: spread(100_000n * GWEI) });
    const shape = fc.record({
      gas: fc.bigInt({ min: 21_000n, max: 100_000_000n }),
      reward: fc.option(spread(WAD ** 2n), { nil: undefined }),
    });
    fc.assert(
      fc.property(fees, shape, policy, (f, tx, p) => {
        expect(checkFees(f, tx, p).ok).toBe(violations(f, tx, p).length === 0);
      }),
      options,
    );
  });

  it("a new liquidation: within every cap and above the base fee, or a refusal with its reason", () => {
    fc.assert(
      fc.property(head, policy, liquidation, (ctx, p, l) => {
        const plan = planFees(ctx, p, l);
        if (!plan.ok) {
          expect(["base_fee_above_cap", "tx_fee_above_cap", "unprofitable"]).toContain(plan.reason);
          if (plan.reason === "tx_fee_above_cap")
            expect(l.gasLimit * (ctx.baseFeePerGas + 1n)).toBeGreaterThan(p.txFeeCap as bigint);
          return;
        }
        expectWithin(plan, { gas: l.gasLimit, reward: l.reward }, p);
        expect(plan.maxFeePerGas).toBeGreaterThan(ctx.baseFeePerGas);
      }),
      options,
    );
  });

  it("fees at the market for a cancel or a nonce-gap filler: within its caps at any head", () => {
    fc.assert(
      fc.property(head, policy, (ctx, p) => {
        const fees = currentFees(ctx, p, CANCEL_GAS);
        expectWithin(fees, { gas: CANCEL_GAS }, p);
        const market = currentFees(ctx, p);
        expect(violations(market, { gas: 1n }, { ...p, txFeeCap: undefined })).toEqual([]);
      }),
      options,
    );
  });

  it("a replacement from any fees: outbids by the bump rule within every cap, or is refused", () => {
    const fees = fc.record({ maxFeePerGas: spread(20_000n * GWEI), maxPriorityFeePerGas: spread(20_000n * GWEI) });
    fc.assert(
      fc.property(fees, fees, policy, liquidation, fc.boolean(), (previous0, now, p, l, cancel) => {
        // what was signed before satisfied tip <= max fee
        const tipped = previous0.maxPriorityFeePerGas > previous0.maxFeePerGas;
        const previous = tipped ? { ...previous0, maxPriorityFeePerGas: previous0.maxFeePerGas } : previous0;
        const tx = cancel ? { gas: CANCEL_GAS } : { gas: l.gasLimit, reward: l.reward };
        const r = replacementFees(previous, now, p, tx);
        if (!r.ok) {
          expect(r.reason).toBe("at_fee_cap");
          return;
        }
        expectWithin(r, tx, p);
        expectOutbids(r, previous, p);
      }),
      options,
    );
  });

  it("a backrun liquidation (pending.ts): within its caps, and a cancel of it always fits under the cancel's", () => {
    const update = fc.record({ maxFeePerGas: spread(20_000n * GWEI), maxPriorityFeePerGas: spread(20_000n * GWEI) });
    fc.assert(
      fc.property(update, baseFee, policy, liquidation, (u, base, p, l) => {
        const cancel = { cap: ceilingFor(p, { gas: CANCEL_GAS }), bumpBps: p.replacementBumpBps };
        const ours = backrunFees(u, base, feeCeiling(p, l), cancel);
        if (!ours.ok) return;
        const liq = { gas: l.gasLimit, reward: l.reward };
        expectWithin(ours, liq, p);
        const r = decideStuck(
          { ...ours, purpose: "liquidate" },
          true,
          false,
          currentFees({ baseFeePerGas: base, priorityFeePerGas: 0n }, p),
          p,
          liq,
        );
        expect(r.type).toBe("replace");
        if (r.type === "replace") {
          expectWithin(r.fees, { gas: CANCEL_GAS }, p);
          expectOutbids(r.fees, ours, p);
        }
      }),
      options,
    );
  });

  it("a chain of bumps, cancels and re-signs over random heads: every transaction signed satisfies it", () => {
    fc.assert(
      fc.property(head, policy, liquidation, fc.array(step, { minLength: 1, maxLength: 12 }), (first, p, l, steps) => {
        const liq = { gas: l.gasLimit, reward: l.reward };
        const plan = planFees(first, p, l);
        if (!plan.ok) return;
        let latest: Fees & { purpose: "liquidate" | "cancel" } = { ...plan, purpose: "liquidate" };
        expectWithin(latest, liq, p);
        for (const s of steps) {
          const now = currentFees(s.ctx, p); // what the executor's judge passes
          const r = s.cancelPath
            ? decideStuck(latest, true, false, now, p, liq)
            : decideStuck(latest, s.known, s.wanted, now, p, liq);
          const shape = (purpose: "liquidate" | "cancel") => (purpose === "cancel" ? { gas: CANCEL_GAS } : liq);
          if (r.type === "hold") continue;
          if (r.type === "rebroadcast") {
            expectWithin(latest, shape(latest.purpose), p); // the same bytes: they satisfied it when signed
            continue;
          }
          expectWithin(r.fees, shape(r.purpose), p);
          if (r.type === "replace") expectOutbids(r.fees, latest, p);
          if (latest.purpose === "cancel") expect(r.purpose).toBe("cancel"); // a cancel is never undone
          latest = { ...r.fees, purpose: r.purpose };
        }
      }),
      options,
    );
  });
});

describe("fee invariant: the executor's view of one head", () => {
  it("a bump chain under a tiny txFeeCap refuses rather than breaks it", () => {
    const p: FeePolicy = {
      baseFeeMultiplierBps: 20_000n,
      minPriorityFeePerGas: GWEI,
      maxFeePerGasCap: undefined,
      gasTokenPrice: undefined,
      maxRewardShareBps: 9_000n,
      minProfit: 0n,
      replacementBumpBps: 1_250n,
      txFeeCap: 3_000_000n * 40n * GWEI, // 0.12 ETH: 40 gwei on a 3M-gas batch
    };
    const ctx: FeeContext = { baseFeePerGas: 15n * GWEI, priorityFeePerGas: GWEI };
    const liq = { gas: 3_000_000n, reward: WAD };
    const plan = planFees(ctx, p, { ...liq, gasLimit: liq.gas });
    if (!plan.ok) throw new Error(plan.reason);
    let latest: Fees = plan;
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = decideStuck({ ...latest, purpose: "liquidate" }, true, true, currentFees(ctx, p), p, liq);
      seen.push(r.type);
      if (r.type !== "replace") break;
      expectWithin(r.fees, liq, p);
      latest = r.fees;
    }
    expect(seen.at(-1)).toBe("hold");
  });
});

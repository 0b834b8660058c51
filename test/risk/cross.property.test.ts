/**
 * Property tests of the cross-margin risk engine (src/risk/cross/): after EVERY tick of a random workload (accounts
 * over 4-8 markets, price paths with small moves, jumps, crashes and rallies of several prices at once, time and
 * funding, events between ticks) the engine's liquidatable set equals a full exact scan of the model, for an exact
 * and for a bounded model (where liquidatable ∪ confirm must also hold every account whose exact slack is below 0).
 * A model whose sensitivity understates a slope must be caught: the same property, run on it, finds a counterexample.
 *
 * fast-check, seeded: `FC_SEED=<n>` replays a seed, `FC_RUNS=<n>` sets the runs.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { MarginModel, PriceView } from "../../src/protocol/types.ts";
import type { LinearAccount, LinearModel } from "../../src/risk/cross/linearModel.ts";
import { calmScenarioArb, runScenario, type Scenario, scenarioArb } from "./cross/harness.ts";

const SEED = Number(process.env.FC_SEED ?? 20_251_202);
const RUNS = Number(process.env.FC_RUNS ?? 300);

/** The model with its down and up slopes understated: the movement bound no longer holds. */
function understated(model: LinearModel): MarginModel<LinearAccount> {
  return {
    evaluate: (account, at) => model.evaluate(account, at),
    sensitivity: (account: LinearAccount, at: PriceView) => {
      const s = model.sensitivity(account, at);
      const shrink = (m: ReadonlyMap<number, number>) => new Map([...m].map(([k, v]) => [k, v * 0.2]));
      return { ...s, down: shrink(s.down), up: shrink(s.up) };
    },
  };
}

describe("CrossRiskEngine against a full exact scan", () => {
  it("exact model: liquidatable = scan after every tick", () => {
    let flagged = 0;
    fc.assert(
      fc.property(scenarioArb, (scenario: Scenario) => {
        flagged += runScenario(scenario, { exactness: "exact" }).flagged;
      }),
      { seed: SEED, numRuns: RUNS },
    );
    expect(flagged).toBeGreaterThan(RUNS); // the workload does reach the boundary
  });

  it("bounded model: liquidatable = {high < 0}, every exact slack < 0 in liquidatable ∪ confirm, confirmations observed", () => {
    fc.assert(
      fc.property(scenarioArb, fc.boolean(), (scenario: Scenario, observe: boolean) => {
        runScenario(scenario, { exactness: "bounded", observe });
      }),
      { seed: SEED + 1, numRuns: RUNS },
    );
  });

  it("calm paths (faces fire one at a time, certificates re-armed): liquidatable = scan after every tick", () => {
    fc.assert(
      fc.property(calmScenarioArb, fc.constantFrom("exact" as const, "bounded" as const), (scenario, exactness) => {
        runScenario(scenario, { exactness, observe: true });
      }),
      { seed: SEED + 3, numRuns: RUNS },
    );
  });

  it("lookahead: at the next view, before ticking, exactly the cold and warm accounts a scan finds liquidatable there", () => {
    let anticipated = 0;
    fc.assert(
      fc.property(scenarioArb, fc.constantFrom("exact" as const, "bounded" as const), (scenario, exactness) => {
        anticipated += runScenario(scenario, { exactness, observe: true, lookahead: true }).anticipated;
      }),
      { seed: SEED + 4, numRuns: RUNS },
    );
    expect(anticipated).toBeGreaterThan(RUNS / 2); // views do make cold and warm accounts liquidatable
  });

  it("detects misses: a model that understates a slope fails the same property", () => {
    const result = fc.check(
      fc.property(scenarioArb, (scenario: Scenario) => {
        runScenario(scenario, { exactness: "exact", wrap: understated });
      }),
      { seed: SEED + 2, numRuns: RUNS },
    );
    expect(result.failed).toBe(true);
    expect(String(result.errorInstance)).toMatch(/missed/);
  });
});

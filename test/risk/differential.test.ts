/**
 * Differential test: the local risk model (src/protocol/perpEngine/math.ts) against the deployed PerpEngine on Anvil.
 *
 * 1. previewHealth: at least 10,000 positions from a seeded PRNG (both markets, longs and shorts, 1 wei to 1e30 of
 *    base, negative to huge margins, funding indices up to ~1e24 apart), each evaluated at its exact liquidation
 *    boundary (L-1, L, L+1 oracle units) and at random prices. Every field must be equal, and the boundary must
 *    mean what the contract documents.
 * 2. Real on-chain state: ~30 positions opened through trade(), the oracle and the clock moved, the contract's
 *    views compared with the local model per position, the boundary hit on chain, and liquidate() checked against
 *    the local margin balance, keeper reward and funding index.
 *
 * Reproduce a failure with DIFF_SEED=<seed> (printed in every mismatch, with the case index). DIFF_CASES raises or
 * lowers the number of generated positions (default 10,000).
 */
import {
  createPublicClient,
  createTestClient,
  decodeFunctionResult,
  encodeFunctionData,
  type Hex,
  http,
  parseEventLogs,
  prepareEncodeFunctionData,
} from "viem";
import { anvil } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { testUSDCAbi } from "../../abi/TestUSDC.ts";
import type { DevExchange } from "../../src/devnet/exchange.ts";
import { openPositions, type PositionSpec } from "../../src/devnet/positions.ts";
import {
  type FundingState,
  fundingIndexAt,
  health,
  keeperReward,
  liquidationPriceUnits,
  type MarketRiskParams,
  type PositionState,
  WAD,
} from "../../src/protocol/perpEngine/math.ts";
import { type DevnetFixture, startDevnet } from "../helpers/devnet.ts";

const DEFAULT_SEED = 0x5eed_2f1e_d1ffn;
const SEED = parseSeed(process.env.DIFF_SEED);
const CASES = Number(process.env.DIFF_CASES ?? 10_000);
/** Where the generators stop: far inside int256, so a revert is a contract/model bug, not an overflow. */
const OVERFLOW_GUARD = 2n ** 200n;

function parseSeed(raw: string | undefined): bigint {
  if (raw === undefined || raw.trim() === "") return DEFAULT_SEED;
  return BigInt.asUintN(64, BigInt(raw.trim()));
}

// ------------------------------------------------------------------ deterministic PRNG (splitmix64 over BigInt)

const MASK64 = (1n << 64n) - 1n;

class Rng {
  private state: bigint;

  constructor(seed: bigint) {
    this.state = seed & MASK64;
  }

  /** An independent stream per (seed, case index), so one case can be replayed alone. */
  static forCase(seed: bigint, index: number, stream = 0n): Rng {
    const mixer = new Rng(seed ^ ((BigInt(index) * 0xd1b54a32d192ed03n + stream * 0x9e3779b97f4a7c15n) & MASK64));
    return new Rng(mixer.next64());
  }

  next64(): bigint {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK64;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }

  /** Uniform in [0, n) (bias below 2^-64). */
  below(n: bigint): bigint {
    if (n <= 0n) throw new Error(`below(${n})`);
    let acc = 0n;
    let bits = 0;
    const need = n.toString(2).length + 64;
    while (bits < need) {
      acc = (acc << 64n) | this.next64();
      bits += 64;
    }
    return acc % n;
  }

  /** Uniform in [lo, hi]. */
  between(lo: bigint, hi: bigint): bigint {
    return lo + this.below(hi - lo + 1n);
  }

  float(): number {
    return Number(this.next64() >> 11n) / 2 ** 53;
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  int(n: number): number {
    return Number(this.below(BigInt(n)));
  }

  sign(): bigint {
    return this.chance(0.5) ? 1n : -1n;
  }

  /** Uniform number of decimal digits, then uniform within it: spreads over [lo, hi] on a log scale. */
  logUniform(lo: bigint, hi: bigint): bigint {
    const dLo = lo.toString().length;
    const dHi = hi.toString().length;
    const digits = dLo + this.int(dHi - dLo + 1);
    const from = digits === 1 ? 0n : 10n ** BigInt(digits - 1);
    const to = 10n ** BigInt(digits) - 1n;
    return this.between(from > lo ? from : lo, to < hi ? to : hi);
  }

  /** Picks a branch by weight. */
  weighted(weights: readonly number[]): number {
    const total = weights.reduce((a, b) => a + b, 0);
    let x = this.float() * total;
    for (const [i, w] of weights.entries()) {
      if (x < w) return i;
      x -= w;
    }
    return weights.length - 1;
  }
}

// ------------------------------------------------------------------ devnet fixture

let devnet: DevnetFixture | undefined;

beforeAll(async () => {
  devnet = await startDevnet({ accounts: 40 });
  if (new URL(devnet.anvil.rpcUrl).hostname !== "127.0.0.1") throw new Error("devnet must listen on 127.0.0.1");
}, 60_000);

afterAll(async () => {
  await devnet?.stop();
});

function fixture(): DevExchange {
  if (!devnet) throw new Error("devnet not started");
  return devnet.ex;
}

interface OnChainMarket {
  readonly id: number;
  readonly params: MarketRiskParams;
  readonly funding: FundingState;
}

async function readMarket(ex: DevExchange, id: number, blockNumber?: bigint): Promise<OnChainMarket> {
  const m = await ex.publicClient.readContract({
    address: ex.d.engine,
    abi: perpEngineAbi,
    functionName: "market",
    args: [BigInt(id)],
    blockNumber,
  });
  return {
    id,
    params: {
      priceScale: m.priceScale,
      initialMarginRatio: BigInt(m.initialMarginRatio),
      maintenanceMarginRatio: BigInt(m.maintenanceMarginRatio),
      liquidationFeeRatio: BigInt(m.liquidationFeeRatio),
    },
    funding: {
      cumulativeFundingIndex: m.cumulativeFundingIndex,
      fundingRatePerSecond: m.fundingRatePerSecond,
      lastFundingTime: BigInt(m.lastFundingTime),
    },
  };
}

function show(p: PositionState): string {
  return `{size: ${p.size}, openNotional: ${p.openNotional}, margin: ${p.margin}, lastFundingIndex: ${p.lastFundingIndex}}`;
}

// ------------------------------------------------------------------ generators

interface Case {
  readonly index: number;
  readonly marketId: number;
  readonly position: PositionState;
  readonly fundingIndex: bigint;
  /** A reference mark price in oracle units, around which openNotional and margin were drawn. */
  readonly refUnits: bigint;
}

type Role = "L-1" | "L" | "L+1" | "random-units" | "random-wad" | "reference";

interface Evaluation {
  readonly c: Case;
  readonly role: Role;
  /** WAD price passed to previewHealth. */
  readonly price: bigint;
  /** Oracle units when the price is a whole number of them, else undefined. */
  readonly units?: bigint;
}

function pct(rng: Rng, value: bigint, maxPercent: number): bigint {
  return (value * rng.between(0n, BigInt(maxPercent * 100))) / 10_000n;
}

function genRefUnits(rng: Rng): bigint {
  switch (rng.weighted([40, 15, 25, 20])) {
    case 0:
      return rng.logUniform(10n ** 8n, 10n ** 13n); // $1 .. $100,000 at 8 decimals
    case 1:
      return rng.between(1n, 10n ** 6n); // sub-cent
    case 2:
      return rng.logUniform(1n, 10n ** 14n);
    default:
      return rng.logUniform(10n ** 13n, 10n ** 14n); // up to 1e24 WAD
  }
}

function genSizeAbs(rng: Rng): bigint {
  switch (rng.weighted([4, 6, 10, 50, 20, 8, 2])) {
    case 0:
      return 1n; // 1 wei of base
    case 1:
      return rng.between(1n, 1000n);
    case 2:
      return rng.logUniform(1000n, 10n ** 14n);
    case 3:
      return rng.logUniform(10n ** 14n, 10n ** 22n);
    case 4:
      return rng.logUniform(10n ** 22n, 10n ** 27n); // up to 1e9 units of base
    case 5:
      return rng.logUniform(10n ** 27n, 10n ** 30n);
    default:
      return 0n;
  }
}

function genOpenNotional(rng: Rng, value: bigint): bigint {
  let on: bigint;
  switch (rng.weighted([30, 15, 15, 15, 10, 15])) {
    case 0:
      on = value + rng.sign() * pct(rng, value, 10); // entry near the reference price
      break;
    case 1:
      on = value + rng.between(-1000n, 1000n); // to the wei
      break;
    case 2:
      on = value + rng.sign() * pct(rng, value, 50);
      break;
    case 3:
      on = pct(rng, value, 300); // far
      break;
    case 4:
      on = 0n;
      break;
    default:
      on = rng.logUniform(0n, 10n ** 36n);
  }
  return on < 0n ? 0n : on;
}

function genMargin(rng: Rng, value: bigint, mmr: bigint): bigint {
  switch (rng.weighted([25, 25, 15, 10, 10, 5, 10])) {
    case 0:
      return pct(rng, value, 60) + 1n; // 1.6x .. very high leverage
    case 1:
      // around the maintenance requirement
      return (value * mmr) / WAD + rng.sign() * pct(rng, value, 2) + rng.between(-1000n, 1000n);
    case 2:
      return -pct(rng, value, 50) - rng.between(0n, 1000n); // negative
    case 3:
      return rng.sign() * rng.logUniform(10n ** 30n, 10n ** 36n); // huge
    case 4:
      return rng.between(-1000n, 1000n); // tiny
    case 5:
      return 0n;
    default:
      return rng.sign() * rng.logUniform(1n, 10n ** 36n);
  }
}

function genIndex(rng: Rng): bigint {
  switch (rng.weighted([25, 30, 45])) {
    case 0:
      return 0n;
    case 1:
      return rng.sign() * rng.logUniform(1n, 10n ** 18n);
    default:
      return rng.sign() * rng.logUniform(10n ** 18n, 10n ** 24n);
  }
}

function genIndexDelta(rng: Rng): bigint {
  switch (rng.weighted([20, 20, 30, 30])) {
    case 0:
      return 0n;
    case 1:
      return rng.sign() * rng.between(1n, 10n ** 6n);
    case 2:
      return rng.sign() * rng.logUniform(10n ** 6n, 10n ** 20n);
    default:
      return rng.sign() * rng.logUniform(10n ** 20n, 10n ** 24n);
  }
}

function generateCase(seed: bigint, index: number, markets: readonly OnChainMarket[]): Case {
  const rng = Rng.forCase(seed, index);
  const market = markets[index % markets.length] ?? markets[0];
  if (!market) throw new Error("no markets");
  const refUnits = genRefUnits(rng);
  const sizeAbs = genSizeAbs(rng);
  const size = rng.chance(0.5) ? sizeAbs : -sizeAbs;
  const value = (sizeAbs * refUnits * market.params.priceScale) / WAD;
  const lastFundingIndex = genIndex(rng);
  return {
    index,
    marketId: market.id,
    refUnits,
    position: {
      size,
      openNotional: genOpenNotional(rng, value),
      margin: genMargin(rng, value, market.params.maintenanceMarginRatio),
      lastFundingIndex,
    },
    fundingIndex: lastFundingIndex + genIndexDelta(rng),
  };
}

/** The prices a case is evaluated at: its exact boundary (from the local L), and random ones. */
function evaluationsOf(seed: bigint, c: Case, market: OnChainMarket): Evaluation[] {
  const rng = Rng.forCase(seed, c.index, 1n);
  const scale = market.params.priceScale;
  const out: Evaluation[] = [];
  const add = (role: Role, price: bigint, units?: bigint) => {
    // generator bounds: keep size * price far from uint256
    if (
      price <= 0n ||
      price >= OVERFLOW_GUARD ||
      (c.position.size < 0n ? -c.position.size : c.position.size) * price >= OVERFLOW_GUARD
    )
      return;
    out.push({ c, role, price, units });
  };
  const l = liquidationPriceUnits(c.position, market.params, c.fundingIndex);
  if (l > 0n) {
    add("L-1", (l - 1n) * scale, l - 1n);
    add("L", l * scale, l);
    add("L+1", (l + 1n) * scale, l + 1n);
  } else {
    add("reference", c.refUnits * scale, c.refUnits);
  }
  // a whole number of units around the reference price, and an arbitrary WAD price (not a multiple of the scale)
  const units = (c.refUnits * rng.between(50n, 150n)) / 100n + rng.between(0n, 3n);
  add("random-units", units * scale, units);
  const far = rng.logUniform(1n, 10n ** 14n);
  add("random-units", far * scale, far);
  add("random-wad", rng.logUniform(scale, 10n ** 24n));
  return out;
}

// ------------------------------------------------------------------ batched eth_call

type CallResult = { readonly ok: true; readonly data: Hex } | { readonly ok: false; readonly error: string };

async function ethCallBatch(
  rpcUrl: string,
  to: Hex,
  datas: readonly Hex[],
  { batchSize = 500, concurrency = 4 } = {},
): Promise<CallResult[]> {
  const results: CallResult[] = new Array(datas.length);
  let next = 0;
  const worker = async () => {
    while (next < datas.length) {
      const start = next;
      next += batchSize;
      const chunk = datas.slice(start, start + batchSize);
      const body = chunk.map((data, i) => ({
        jsonrpc: "2.0",
        id: start + i,
        method: "eth_call",
        params: [{ to, data }, "latest"],
      }));
      const res = await fetch(rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`eth_call batch: HTTP ${res.status}`);
      const answers = (await res.json()) as { id: number; result?: Hex; error?: { message: string; data?: unknown } }[];
      if (!Array.isArray(answers) || answers.length !== chunk.length) {
        throw new Error(
          `eth_call batch: expected ${chunk.length} answers, got ${JSON.stringify(answers).slice(0, 200)}`,
        );
      }
      for (const a of answers) {
        results[a.id] =
          a.result !== undefined
            ? { ok: true, data: a.result }
            : { ok: false, error: `${a.error?.message ?? "no result"} ${JSON.stringify(a.error?.data ?? "")}` };
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

// ------------------------------------------------------------------ the tests

describe("math.ts mirrors PerpEngine exactly", () => {
  it(`previewHealth: ${CASES} seeded positions at their exact boundary and random prices (DIFF_SEED=${SEED})`, async () => {
    const ex = fixture();
    const markets = [await readMarket(ex, 0), await readMarket(ex, 1)];
    // the two markets must differ in maintenance ratio, or half the coverage is a repeat
    expect(markets[0]?.params.maintenanceMarginRatio).not.toBe(markets[1]?.params.maintenanceMarginRatio);
    for (const m of markets) expect(m.params.priceScale).toBe(10n ** 10n);

    const evaluations: Evaluation[] = [];
    for (let i = 0; i < CASES; i++) {
      const c = generateCase(SEED, i, markets);
      const market = markets[c.marketId];
      if (!market) throw new Error(`case ${i}: unknown market`);
      evaluations.push(...evaluationsOf(SEED, c, market));
    }
    expect(evaluations.length).toBeGreaterThanOrEqual(CASES * 3);

    const previewHealth = prepareEncodeFunctionData({ abi: perpEngineAbi, functionName: "previewHealth" });
    const datas = evaluations.map((e) =>
      encodeFunctionData({
        ...previewHealth,
        args: [BigInt(e.c.marketId), e.c.position, e.price, e.c.fundingIndex],
      }),
    );
    const answers = await ethCallBatch(ex.rpcUrl, ex.d.engine, datas);

    const mismatches: string[] = [];
    let mismatchCount = 0;
    const fail = (e: Evaluation, what: string) => {
      mismatchCount++;
      if (mismatches.length < 20) {
        mismatches.push(
          `DIFF_SEED=${SEED} case #${e.c.index} market ${e.c.marketId} ${e.c.position.size > 0n ? "long" : e.c.position.size < 0n ? "short" : "flat"} ` +
            `price ${e.price} (${e.role}) fundingIndex ${e.c.fundingIndex} position ${show(e.c.position)}: ${what}`,
        );
      }
    };
    const stats = {
      compared: 0,
      flat: 0,
      liquidatable: 0,
      healthy: 0,
      longBoundary: [0, 0],
      shortBoundary: [0, 0],
      semantics: 0,
    };
    // contract verdicts by case and role, for the boundary semantics
    const verdicts = new Map<number, Map<Role, boolean>>();

    for (const [i, e] of evaluations.entries()) {
      const answer = answers[i];
      if (!answer?.ok) {
        fail(e, `previewHealth reverted: ${answer?.error ?? "no answer"}`);
        continue;
      }
      const [balance, requirement, liquidatable, lUnits] = decodeFunctionResult({
        abi: previewHealth.abi,
        functionName: "previewHealth",
        data: answer.data,
      });
      const market = markets[e.c.marketId];
      if (!market) throw new Error("unknown market");
      const local = health(e.c.position, market.params.maintenanceMarginRatio, e.price, e.c.fundingIndex);
      const localL = liquidationPriceUnits(e.c.position, market.params, e.c.fundingIndex);
      stats.compared++;
      if (balance !== local.marginBalance) fail(e, `marginBalance contract ${balance} local ${local.marginBalance}`);
      if (requirement !== local.maintenanceRequirement) {
        fail(e, `maintenanceRequirement contract ${requirement} local ${local.maintenanceRequirement}`);
      }
      if (e.c.position.size === 0n) stats.flat++; // nothing to liquidate: both must say so, whatever the margin
      if (liquidatable !== local.liquidatable)
        fail(e, `liquidatable contract ${liquidatable} local ${local.liquidatable}`);
      if (lUnits !== localL) fail(e, `liquidationPriceUnits contract ${lUnits} local ${localL}`);
      if (liquidatable) stats.liquidatable++;
      else stats.healthy++;

      // What L means, on the contract's own verdicts, at every whole-unit price:
      // long: liquidatable iff price <= L (L = 0: at no positive price); short: iff price >= L (L = 0: at every price).
      const { size } = e.c.position;
      if (size !== 0n && e.units !== undefined) {
        const expected = size > 0n ? e.units <= lUnits : e.units >= lUnits;
        stats.semantics++;
        if (liquidatable !== expected) {
          fail(
            e,
            `boundary semantics: contract says liquidatable=${liquidatable} at ${e.units} units with L=${lUnits}`,
          );
        }
      }
      const byRole = verdicts.get(e.c.index) ?? new Map<Role, boolean>();
      verdicts.set(e.c.index, byRole);
      byRole.set(e.role, liquidatable);
    }

    // The explicit boundary: a long with L > 0 is liquidatable at L and not at L+1; a short at L and not at L-1.
    for (const [index, byRole] of verdicts) {
      const atL = byRole.get("L");
      if (atL === undefined) continue;
      const c = generateCase(SEED, index, markets);
      const e: Evaluation = { c, role: "L", price: 0n };
      if (c.position.size > 0n) {
        const above = byRole.get("L+1");
        if (atL !== true || above !== false) fail(e, `long boundary: liquidatable at L=${atL}, at L+1=${above}`);
        stats.longBoundary[c.marketId] = (stats.longBoundary[c.marketId] ?? 0) + 1;
      } else {
        const below = byRole.get("L-1");
        if (atL !== true || below === true) fail(e, `short boundary: liquidatable at L=${atL}, at L-1=${below}`);
        stats.shortBoundary[c.marketId] = (stats.shortBoundary[c.marketId] ?? 0) + 1;
      }
    }

    expect(mismatches, `${mismatchCount} mismatches (reproduce with DIFF_SEED=${SEED})`).toEqual([]);
    expect(stats.compared).toBe(evaluations.length);
    // the generators must actually reach both verdicts and both sides' boundaries in both markets
    const min = Math.floor(CASES / 20);
    expect(stats.liquidatable).toBeGreaterThan(min);
    expect(stats.healthy).toBeGreaterThan(min);
    expect(stats.flat).toBeGreaterThan(0);
    expect(stats.semantics).toBeGreaterThan(CASES * 2);
    for (const id of [0, 1]) {
      expect(stats.longBoundary[id]).toBeGreaterThan(min);
      expect(stats.shortBoundary[id]).toBeGreaterThan(min);
    }
    console.info(
      `differential previewHealth: seed ${SEED}, ${CASES} positions, ${evaluations.length} evaluations, ` +
        `${stats.liquidatable} liquidatable / ${stats.healthy} healthy, boundaries long ${stats.longBoundary} short ${stats.shortBoundary}, ${stats.semantics} whole-unit verdicts checked against L`,
    );
  }, 120_000);

  it("views of ~30 real positions agree with math.ts as the oracle moves, funding accrues and keepers liquidate", async () => {
    const ex = fixture();
    const engine = ex.d.engine;
    const client = createPublicClient({ chain: anvil, transport: http(ex.rpcUrl, { batch: { batchSize: 500 } }) });
    const testClient = createTestClient({ chain: anvil, mode: "anvil", transport: http(ex.rpcUrl) });
    const rng = Rng.forCase(SEED, 0, 2n);
    const initial = [await ex.price(0), await ex.price(1)] as const;

    const setPrices = async (a0: bigint, a1: bigint) => {
      await ex.setPrice(0, a0);
      await ex.setPrice(1, a1);
    };
    const moveTime = async (seconds: number) => testClient.increaseTime({ seconds });
    const setFundingRate = (marketId: number, rate: bigint) =>
      ex.send(ex.owner, {
        address: engine,
        abi: perpEngineAbi,
        functionName: "setFundingRate",
        args: [BigInt(marketId), rate],
      });

    // Funding large enough to move balances by whole dollars between steps: 1e-6 of the price per second.
    await setFundingRate(0, 10n ** 12n);
    await setFundingRate(1, -(10n ** 12n));

    const leverages = [2, 3, 5, 8, 10, 12, 15, 18, 20] as const;
    const specs: PositionSpec[] = [];
    for (let t = 0; t < 30; t++) {
      specs.push({
        trader: 2 + t,
        marketId: t % 2,
        side: Math.floor(t / 2) % 2 === 0 ? "long" : "short",
        margin: String(200 + rng.int(4800)),
        leverage: leverages[rng.int(leverages.length)] ?? 10,
      });
    }
    // two waves at different prices and funding indices
    await openPositions(ex, specs.slice(0, 15));
    await moveTime(600);
    await setPrices((initial[0] * 102n) / 100n, (initial[1] * 98n) / 100n);
    await openPositions(ex, specs.slice(15));
    const traders = specs.map((s) => ({ spec: s, address: ex.trader(s.trader).account.address }));

    let views = 0;
    let liquidatableSeen = 0;
    let healthySeen = 0;
    /** Reads every view at one block and compares it with the local model fed by getPosition + funding state. */
    const compareAll = async (label: string) => {
      const block = await client.getBlock();
      const blockNumber = block.number;
      const perMarket = await Promise.all(
        [0, 1].map(async (id) => {
          const [m, index, price, answer] = await Promise.all([
            readMarket(ex, id, blockNumber),
            client.readContract({
              address: engine,
              abi: perpEngineAbi,
              functionName: "currentFundingIndex",
              args: [BigInt(id)],
              blockNumber,
            }),
            client.readContract({
              address: engine,
              abi: perpEngineAbi,
              functionName: "markPrice",
              args: [BigInt(id)],
              blockNumber,
            }),
            ex.price(id),
          ]);
          return { m, index, price, answer };
        }),
      );
      const problems: string[] = [];
      for (const { m, index, price, answer } of perMarket) {
        if (price !== answer * m.params.priceScale)
          problems.push(`${label} market ${m.id}: markPrice ${price} vs answer ${answer}`);
        const localIndex = fundingIndexAt(m.funding, price, block.timestamp);
        if (localIndex !== index) {
          problems.push(`${label} market ${m.id}: currentFundingIndex contract ${index} local ${localIndex}`);
        }
      }
      const rows = await Promise.all(
        traders.map(async ({ spec, address }) => {
          const args = [address, BigInt(spec.marketId)] as const;
          const read = { address: engine, abi: perpEngineAbi, args, blockNumber } as const;
          const [position, balance, requirement, liquidatable, lPrice] = await Promise.all([
            client.readContract({ ...read, functionName: "getPosition" }),
            client.readContract({ ...read, functionName: "marginBalance" }),
            client.readContract({ ...read, functionName: "maintenanceRequirement" }),
            client.readContract({ ...read, functionName: "isLiquidatable" }),
            client.readContract({ ...read, functionName: "liquidationPrice" }),
          ]);
          return { spec, address, position, balance, requirement, liquidatable, lPrice };
        }),
      );
      for (const r of rows) {
        const market = perMarket[r.spec.marketId];
        if (!market) throw new Error("unknown market");
        const local = health(r.position, market.m.params.maintenanceMarginRatio, market.price, market.index);
        const localL = liquidationPriceUnits(r.position, market.m.params, market.index);
        const where = `DIFF_SEED=${SEED} ${label} block ${blockNumber} trader ${r.spec.trader} (${r.spec.side} market ${r.spec.marketId} ${r.spec.leverage}x) ${show(r.position)}`;
        if (r.position.size === 0n) problems.push(`${where}: position vanished`);
        if (r.balance !== local.marginBalance)
          problems.push(`${where}: marginBalance contract ${r.balance} local ${local.marginBalance}`);
        if (r.requirement !== local.maintenanceRequirement) {
          problems.push(
            `${where}: maintenanceRequirement contract ${r.requirement} local ${local.maintenanceRequirement}`,
          );
        }
        if (r.liquidatable !== local.liquidatable)
          problems.push(`${where}: isLiquidatable contract ${r.liquidatable} local ${local.liquidatable}`);
        if (r.lPrice !== localL) problems.push(`${where}: liquidationPrice contract ${r.lPrice} local ${localL}`);
        views += 5;
        if (r.liquidatable) liquidatableSeen++;
        else healthySeen++;
      }
      expect(problems).toEqual([]);
      return { rows, perMarket, block };
    };

    // 1. the oracle walks, the clock runs, funding accrues
    await compareAll("opened");
    const steps: readonly [number, bigint, bigint][] = [
      [900, 97n, 103n],
      [900, 104n, 96n],
      [1200, 93n, 107n],
      [600, 108n, 92n],
      [1800, 90n, 110n],
      [300, 100n, 100n],
    ];
    for (const [i, [seconds, p0, p1]] of steps.entries()) {
      await moveTime(seconds);
      // a few units of jitter so that prices are not round
      await setPrices(
        (initial[0] * p0) / 100n + rng.between(0n, 999n),
        (initial[1] * p1) / 100n + rng.between(0n, 999n),
      );
      await compareAll(`step ${i} (${p0}%, ${p1}%)`);
    }

    // 2. the exact boundary on chain: with funding frozen, the oracle at L and one unit beyond
    await setFundingRate(0, 0n);
    await setFundingRate(1, 0n);
    const { rows } = await compareAll("funding frozen");
    let boundaryChecks = 0;
    for (const marketId of [0, 1]) {
      for (const side of ["long", "short"] as const) {
        // the most leveraged position of that market and side, whose boundary is nearest
        const candidates = rows
          .filter((r) => r.spec.marketId === marketId && r.spec.side === side)
          .sort((a, b) => b.spec.leverage - a.spec.leverage);
        const target = candidates[0];
        if (!target) throw new Error(`no ${side} in market ${marketId}`);
        const l = await client.readContract({
          address: engine,
          abi: perpEngineAbi,
          functionName: "liquidationPrice",
          args: [target.address, BigInt(marketId)],
        });
        expect(l).toBeGreaterThan(1n);
        const other = marketId === 0 ? 1 : 0;
        const otherAnswer = await ex.price(other);
        const probe = async (answer: bigint, expected: boolean) => {
          await ex.setPrice(marketId, answer);
          await ex.setPrice(other, otherAnswer); // keep the other oracle fresh
          await compareAll(`boundary ${side} market ${marketId} at ${answer} (L=${l})`);
          expect(
            await ex.isLiquidatable(target.address, marketId),
            `${side} market ${marketId} at ${answer}, L=${l}`,
          ).toBe(expected);
          boundaryChecks++;
        };
        await probe(l, true);
        await probe(side === "long" ? l + 1n : l - 1n, false);
      }
    }
    expect(boundaryChecks).toBe(8);

    // 3. liquidations: funding back on, longs of market 0 and shorts of market 1 under water
    await setFundingRate(0, 10n ** 12n);
    await setFundingRate(1, -(10n ** 12n));
    await moveTime(600);
    await setPrices((initial[0] * 91n) / 100n, (initial[1] * 109n) / 100n);
    await compareAll("before liquidations");

    const keeper = ex.trader(1);
    const collateralScale = await client.readContract({
      address: engine,
      abi: perpEngineAbi,
      functionName: "collateralScale",
    });
    const balanceOfKeeper = () =>
      client.readContract({
        address: ex.d.collateral,
        abi: testUSDCAbi,
        functionName: "balanceOf",
        args: [keeper.account.address],
      });
    let liquidated = 0;
    let refused = 0;
    for (const { spec, address } of traders) {
      const marketId = BigInt(spec.marketId);
      const before = await client.getBlock();
      const [position, m, answer, badDebtBefore, keeperBefore] = await Promise.all([
        client.readContract({
          address: engine,
          abi: perpEngineAbi,
          functionName: "getPosition",
          args: [address, marketId],
          blockNumber: before.number,
        }),
        readMarket(ex, spec.marketId, before.number),
        ex.price(spec.marketId),
        client.readContract({
          address: engine,
          abi: perpEngineAbi,
          functionName: "totalBadDebt",
          blockNumber: before.number,
        }),
        balanceOfKeeper(),
      ]);
      // predict the verdict at a timestamp we choose for the liquidation's block
      const ts = before.timestamp + 7n;
      await testClient.setNextBlockTimestamp({ timestamp: ts });
      const price = answer * m.params.priceScale;
      const index = fundingIndexAt(m.funding, price, ts);
      const local = health(position, m.params.maintenanceMarginRatio, price, index);
      const where = `DIFF_SEED=${SEED} liquidate trader ${spec.trader} (${spec.side} market ${spec.marketId} ${spec.leverage}x) ${show(position)}`;

      const hash = await keeper.writeContract({
        address: engine,
        abi: perpEngineAbi,
        functionName: "liquidate",
        args: [address, marketId],
        gas: 1_000_000n,
      });
      const receipt = await client.waitForTransactionReceipt({ hash });
      const mined = await client.getBlock({ blockNumber: receipt.blockNumber });
      expect(mined.timestamp, where).toBe(ts);
      expect(receipt.status, `${where}: local verdict liquidatable=${local.liquidatable}`).toBe(
        local.liquidatable ? "success" : "reverted",
      );
      if (!local.liquidatable) {
        refused++;
        continue;
      }
      liquidated++;
      const reward = keeperReward(position.size, price, m.params.liquidationFeeRatio);
      const remaining = local.marginBalance - reward;
      const badDebt = remaining < 0n ? -remaining : 0n;
      const [event] = parseEventLogs({ abi: perpEngineAbi, logs: receipt.logs, eventName: "PositionLiquidated" });
      expect(event, where).toBeDefined();
      expect(event?.args.price, where).toBe(price);
      expect(event?.args.marginBalance, where).toBe(local.marginBalance);
      expect(event?.args.keeperReward, where).toBe(reward);
      expect(event?.args.badDebt, where).toBe(badDebt);
      const funding = parseEventLogs({ abi: perpEngineAbi, logs: receipt.logs, eventName: "FundingUpdated" });
      if (m.funding.lastFundingTime !== ts) {
        expect(
          funding.map((f) => f.args.cumulativeFundingIndex),
          where,
        ).toEqual([index]);
      }
      const after = await Promise.all([
        client.readContract({ address: engine, abi: perpEngineAbi, functionName: "totalBadDebt" }),
        balanceOfKeeper(),
        ex.position(address, spec.marketId),
      ]);
      expect(after[0] - badDebtBefore, where).toBe(badDebt);
      expect(after[1] - keeperBefore, where).toBe(reward / collateralScale);
      expect(after[2].size, where).toBe(0n);
      // flat now: the contract's verdict and the local one agree that there is nothing to liquidate
      expect(await ex.isLiquidatable(address, spec.marketId), where).toBe(false);
      expect(health(after[2], m.params.maintenanceMarginRatio, price, index).liquidatable, where).toBe(false);
    }

    // an account that never traded: flat, not liquidatable on chain nor locally
    const stranger = ex.trader(39).account.address;
    const strangerPosition = await ex.position(stranger, 0);
    expect(strangerPosition.size).toBe(0n);
    expect(await ex.isLiquidatable(stranger, 0)).toBe(false);
    const market0 = await readMarket(ex, 0);
    const strangerHealth = health(
      strangerPosition,
      market0.params.maintenanceMarginRatio,
      initial[0] * market0.params.priceScale,
      0n,
    );
    expect(strangerHealth.liquidatable).toBe(false);

    // the scenario must have produced both verdicts, and real liquidations as well as refusals
    expect(liquidatableSeen).toBeGreaterThan(0);
    expect(healthySeen).toBeGreaterThan(0);
    expect(liquidated).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    console.info(
      `differential on-chain: ${traders.length} positions, ${views} view reads compared ` +
        `(${liquidatableSeen} liquidatable / ${healthySeen} healthy), ${liquidated} liquidated, ${refused} refused`,
    );
  }, 120_000);
});

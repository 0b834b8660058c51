/**
 * The planning pipeline: candidates with no work under way are prioritised and packed (planner.ts), simulated under a
 * bound (one HTTP request each), priced (fees.ts) and handed to a lane through the executor's dispatch. Positions are
 * claimed for "planning" while here; a refusal frees them with a cooldown (liquidation_skipped), a simulation the RPC
 * did not answer frees them without one. Gas is measured as it goes: per position in a batch, per single call.
 */
import type PQueue from "p-queue";
import { BaseError, type Hex, HttpRequestError } from "viem";
import { classifyRpcError, describeError } from "../chain/errors.ts";
import { big } from "../ops/logger.ts";
import type { Finding } from "../protocol/adapter.ts";
import type { Tick } from "../watcher/watcher.ts";
import type { TargetPlan } from "./attempt.ts";
import type { Attempts } from "./attempts.ts";
import { bid } from "./bidding.ts";
import { currentFees, effectiveTip, expectedProfit, type FeeContext, type FeePlan, planFees } from "./fees.ts";
import { feeFields, quote, revertReason, sumRewards, targetIds } from "./fields.ts";
import { type CallGas, callGas, measuredLimit } from "./gas.ts";
import type { PendingWork } from "./pending.ts";
import { batchCapacity, pack, prioritise, targetPlans } from "./planner.ts";
import type { Races } from "./races.ts";
import {
  type Cooldown,
  type ExecutorOptions,
  type ExecutorStats,
  INITIAL_GAS_PER_POSITION,
  REFUSED_COOLDOWN_BLOCKS,
} from "./types.ts";
import type { PendingPlan, Unit } from "./unit.ts";

/** What planning needs of the executor. */
export interface PlanningHost {
  readonly o: ExecutorOptions;
  readonly stats: ExecutorStats;
  readonly attempts: Attempts;
  readonly cooldown: Cooldown;
  readonly simulations: PQueue;
  pendingWork(): PendingWork;
  closed(): boolean;
  feeContext(tick: Tick): Promise<FeeContext>;
  /** To a lane (or the backlog). */
  dispatch(unit: Unit): void;
  /** Competitors' bids on targets (races.ts). */
  readonly races: Pick<Races, "contest" | "contested">;
}

export class Planning {
  private gasPerPosition = INITIAL_GAS_PER_POSITION;
  private gasMeasured = false;
  /** The gas limit per position of the batches planned so far (the estimate's margin, or the protocol's floor). */
  private limitPerPosition: bigint | undefined;
  /** The latest gas estimate of a single liquidation: the guess for one prepared without a measure. */
  private singleGas: bigint | undefined;

  /** Candidates the last submit left for later under maxPendingGas: planned again once the head's pass has run. */
  private deferred: { readonly candidates: readonly Finding[]; readonly tick: Tick } | undefined;

  constructor(private readonly h: PlanningHost) {}

  /**
   * The gas that may still be planned under maxPendingGas (undefined: no bound): the bound less the gas limits of
   * our transactions not yet mined and a guess for those being planned.
   */
  private room(): { readonly left: bigint; readonly idle: boolean } | undefined {
    const cap = this.h.o.maxPendingGas;
    if (cap === undefined) return undefined;
    let used = 0n;
    for (const a of this.h.attempts.unresolved) if (a.status !== "cancelling") used += a.gas;
    let planning = 0n;
    for (const [, holder] of this.h.attempts.claims.entries()) if (holder === "planning") planning++;
    return { left: cap - used - planning * this.perPositionGuess(), idle: used === 0n && planning === 0n };
  }

  /** A position's gas limit in a batch, as measured so far. */
  private perPositionGuess(): bigint {
    return this.limitPerPosition ?? (this.gasPerPosition * this.h.o.gasLimitMultiplierPercent) / 100n;
  }

  /** What the last submit deferred, submitted again (after the head's pass freed room); those changed since, not. */
  resubmitDeferred(): void {
    const d = this.deferred;
    this.deferred = undefined;
    if (!d) return;
    const same = d.candidates.filter((c) => this.h.o.current(c.target.key) === c.state);
    if (same.length > 0) this.submit(same, d.tick);
  }

  /** Gas of a call the simulation did not measure: the figures measured so far. */
  gasGuess(batch: boolean, positions: bigint): bigint {
    return batch ? this.gasPerPosition * positions : (this.singleGas ?? INITIAL_GAS_PER_POSITION);
  }

  /**
   * Plans liquidations for the candidates that have no work under way, most underwater first. With `pending`, they
   * are prepared on an oracle update still in the mempool (see PendingPlan); `tick` is the last head.
   */
  submit(candidates: readonly Finding[], tick: Tick, pending?: PendingPlan): void {
    if (this.h.closed()) return;
    const fresh: Finding[] = [];
    for (const c of candidates) {
      const key = c.target.key;
      if (this.h.attempts.claims.has(key)) continue;
      // our own receipt settled it and the book does not show that yet: never sent again until it does
      if (this.h.attempts.claims.heldBack(key, c.state)) continue;
      if (this.h.cooldown.holds(key, c.state, tick.blockNumber)) continue;
      if (c.expectedReward < this.h.o.minKeeperReward) {
        this.refuse(c, tick.blockNumber, "reward_below_minimum", { reward: quote(c.expectedReward) });
        continue;
      }
      fresh.push(c);
    }
    if (fresh.length === 0) return;
    let ordered = prioritise(fresh);
    const room = pending ? undefined : this.room();
    if (room !== undefined) {
      // the most urgent first, as many as the bound leaves room for (one at least when nothing is pending of ours)
      const each = this.perPositionGuess();
      let fits = room.left > 0n ? Number(room.left / (each > 0n ? each : 1n)) : 0;
      if (fits === 0 && room.idle) fits = 1;
      this.deferred = fits < ordered.length ? { candidates: ordered.slice(fits), tick } : undefined;
      ordered = ordered.slice(0, fits);
      if (ordered.length === 0) return;
    }
    for (const c of ordered) {
      this.h.attempts.claims.claim([c.target.key], "planning");
      this.h.attempts.claims.plannedOn(c.target.key, c.state);
    }
    void this.h.feeContext(tick).catch(() => {}); // fetched while the simulations run
    if (this.h.o.bidding && !pending) {
      // first out: the targets a competitor already bids for, and the `firstSingles` most valuable of the burst, go
      // first as singles (their own bid each; unsimulated where the protocol knows a single's worst-case gas),
      // before any batch is packed; on a tick nobody contests, with no first singles, nothing is sorted again
      const singles = this.h.o.bidding.firstSingles ?? 0;
      const contested = ordered.filter((c) => this.h.races.contested(c.target.key));
      const byValue = (list: Finding[]) =>
        list.sort((a, b) => (a.expectedReward > b.expectedReward ? -1 : a.expectedReward < b.expectedReward ? 1 : 0));
      const valuable = singles > 0 ? byValue(ordered.filter((c) => !contested.includes(c))).slice(0, singles) : [];
      byValue(contested);
      const first = [...contested, ...valuable];
      if (first.length > 0) {
        for (const c of first) this.simulate([c], tick, undefined, undefined, true);
        ordered = ordered.filter((c) => !first.includes(c));
        if (ordered.length === 0) return;
      }
    }
    if (!(this.h.o.batching && this.h.o.protocol.encodeBatch !== undefined)) {
      for (const c of ordered) this.simulate([c], tick, undefined, pending);
      return;
    }
    // the most urgent go first in a small batch, simulated alone; the rest is packed once that simulation has
    // measured what a position costs in a batch
    const sizing = { baseFeePerGas: tick.baseFeePerGas, priorityFeePerGas: this.h.o.fees.minPriorityFeePerGas };
    const first = ordered.slice(0, Math.max(1, Math.min(this.h.o.firstBatchPositions, this.maxBatchPositions(sizing))));
    const rest = ordered.slice(first.length);
    // the rest waits until the first batch is on its way, so that nothing competes with it for the event loop
    let firstSent: () => void = () => {};
    const probe = new Promise<void>((resolve) => {
      firstSent = resolve;
    });
    this.simulate(first, tick, firstSent, pending);
    if (rest.length === 0) return;
    void probe.then(async () => {
      const max = this.maxBatchPositions(await this.h.feeContext(tick));
      if (this.h.closed()) return this.h.attempts.release(rest.map((c) => c.target.key));
      for (const group of pack(rest, { batching: true, maxPositions: max, firstPositions: max })) {
        this.simulate(group, tick, undefined, pending);
      }
    });
  }

  simulate(group: readonly Finding[], tick: Tick, sent?: () => void, pending?: PendingPlan, firstOut = false): void {
    void this.h.simulations
      .add(
        () =>
          pending
            ? this.h.pendingWork().prepare(group, tick, pending, sent)
            : this.prepare(group, tick, sent, firstOut),
        // first out: ahead of what is queued
        firstOut ? { priority: 1 } : undefined,
      )
      .then(
        (dispatched) => {
          if (!dispatched) sent?.();
        },
        (error: unknown) => {
          this.unexpected(error, group);
          sent?.();
        },
      );
  }

  maxBatchPositions(ctx: FeeContext): number {
    return batchCapacity({
      batchGasLimit: this.h.o.batchGasLimit,
      gasPerPosition: this.limitPerPosition ?? (this.gasPerPosition * this.h.o.gasLimitMultiplierPercent) / 100n,
      maxFeePerGas: currentFees(ctx, this.h.o.fees).maxFeePerGas,
      txFeeCap: this.h.o.fees.txFeeCap,
    });
  }

  /** Simulates a group, prices it and hands it to a lane (true); refused positions are released (false). */
  private async prepare(group: readonly Finding[], tick: Tick, sent?: () => void, firstOut = false): Promise<boolean> {
    if (this.h.closed()) {
      this.h.attempts.release(group.map((c) => c.target.key));
      return false;
    }
    const { protocol } = this.h.o;
    const client = this.h.o.simulationClient ?? this.h.o.client;
    const from = this.h.o.lanes[0]?.address;
    const targets: TargetPlan[] = targetPlans(group);
    const single = targets.length === 1 || !protocol.encodeBatch;
    const kept = targets;
    // single: each call's own gas, never another position's (a larger estimate seen earlier would inflate its gas
    // limit, its worst-case fee and the caps it is held to). A batch: the simulation fails exactly when it would
    // revert (an unusable oracle); a position someone else settled meanwhile is skipped by the contract, not a revert.
    // The rewards are the risk model's exact figures, so this is the batch's only read.
    const data = single ? protocol.encodeSingle(targets[0] as TargetPlan) : (protocol.encodeBatch?.(targets) as Hex);
    const value = protocol.value?.(targets) ?? 0n;
    const floor = protocol.gasFloor?.(targets) ?? 0n;
    // a call whose gas the protocol knows without running it (a batch that skips what it cannot do, on a model that is
    // exact): sent without a simulation's round trip, its limit that worst case
    const planned =
      protocol.plannedGas?.(targets, data) ??
      (firstOut && single ? protocol.firstOutGas?.(targets[0] as TargetPlan) : undefined);
    let measure: CallGas;
    try {
      measure =
        planned !== undefined
          ? { raw: planned, measured: true, planned: true }
          : await callGas(client, protocol, from, data, tick, this.h.o.batchGasLimit * 2n, value);
    } catch (error) {
      if (this.simulationUnanswered(error, group)) return false;
      const reason = revertReason(error, protocol);
      for (const c of single ? group.slice(0, 1) : group) {
        this.refuse(c, tick.blockNumber, reason, { error: describeError(error) });
      }
      return false;
    }
    // a planned call's worst case counts every close already; a simulation at the head does not
    const raw = measure.raw + (measure.planned ? 0n : (protocol.gasExtra?.(targets) ?? 0n));
    // measured: the call's own gas with a small margin; estimated: the estimate with its margin, or the protocol's
    // floor (a worst case with its own margin) where that is more
    const estimate = measure.measured || raw >= floor ? raw : floor;
    const padded = (raw * this.h.o.gasLimitMultiplierPercent) / 100n;
    const gas = measure.planned ? raw : measure.measured ? measuredLimit(raw) : padded < floor ? floor : padded;
    if (single) this.singleGas = estimate;
    else {
      const measured = estimate / BigInt(targets.length);
      this.gasPerPosition = this.gasMeasured ? (this.gasPerPosition + measured) / 2n : measured;
      this.gasMeasured = true;
    }
    const reward = sumRewards(kept);
    if (!single) {
      const limit = gas / BigInt(targets.length);
      this.limitPerPosition = this.limitPerPosition === undefined ? limit : (this.limitPerPosition + limit) / 2n;
      if (gas > this.h.o.batchGasLimit && group.length > 1) {
        // more than a batch may take (targets that need several calls): its halves are planned apart
        const half = Math.ceil(group.length / 2);
        for (const part of [group.slice(0, half), group.slice(half)]) this.simulate(part, tick);
        return false;
      }
    }
    const ctx = await this.h.feeContext(tick);
    const contest = this.h.o.bidding ? this.h.races.contest(kept, ctx.baseFeePerGas) : undefined;
    const fee: FeePlan =
      this.h.o.bidding === undefined
        ? planFees(ctx, this.h.o.fees, { reward, gas: estimate, gasLimit: gas, value })
        : bid(ctx, this.h.o.fees, this.h.o.bidding, { reward, gas: estimate, gasLimit: gas, value }, contest);
    if (contest && single && fee.ok && this.h.o.bidding?.ordering === "priority") {
      if (effectiveTip(fee, ctx.baseFeePerGas) <= contest.competitorTip) {
        // a competitor's pending bid pays more than this liquidation can: it would only pay gas to skip
        this.refuse(group[0], tick.blockNumber, "outbid_by_competitor", {
          competitor: contest.bid.from,
          competitorTip: big(contest.competitorTip),
        });
        return false;
      }
    }
    const price = this.h.o.fees.gasTokenPrice;
    const profit =
      price === undefined
        ? undefined
        : expectedProfit(reward, estimate, ctx.baseFeePerGas, ctx.priorityFeePerGas, price, value);
    const plan = {
      positions: kept.length,
      reward: quote(reward),
      valueWei: value > 0n ? big(value) : undefined,
      expectedProfit: profit === undefined ? undefined : quote(profit),
      gas: big(gas),
      baseFeePerGas: big(ctx.baseFeePerGas),
    };
    if (!fee.ok && fee.reason === "tx_fee_above_cap" && group.length > 1) {
      // too much gas for the node's fee cap at this base fee: its halves are planned apart
      const half = Math.ceil(group.length / 2);
      for (const part of [group.slice(0, half), group.slice(half)]) this.simulate(part, tick);
      return false;
    }
    if (!fee.ok) {
      for (const t of kept) {
        this.refuse(
          group.find((g) => g.target.key === t.key),
          tick.blockNumber,
          fee.reason,
          plan,
        );
      }
      return false;
    }
    const kind = single ? "single" : "batch";
    const call = { to: protocol.address, data, gas, ...(value > 0n ? { value } : {}) };
    if (this.h.o.dryRun) {
      this.h.o.log.info(
        {
          event: "liquidation_dry_run",
          kind,
          ...(kept.length === 1 ? targetIds(kept[0] as TargetPlan) : {}),
          targets: kept.map(targetIds),
          ...plan,
          ...feeFields(fee),
        },
        `dry run: ${kind} liquidation of ${kept.length} position(s) not sent`,
      );
      for (const c of group) this.h.cooldown.set(c.target.key, c.state, BigInt(Number.MAX_SAFE_INTEGER));
      this.h.attempts.release(kept.map((t) => t.key));
      return false;
    }
    if (this.h.closed()) {
      this.h.attempts.release(kept.map((t) => t.key));
      return false;
    }
    this.h.dispatch({ kind, targets: kept, call, fees: fee, head: tick.blockNumber, tries: 0, sent });
    return true;
  }

  refuse(finding: Finding | undefined, block: bigint, reason: string, detail: Record<string, unknown>): void {
    if (!finding) return;
    const t = finding.target;
    this.h.stats.skipped++;
    this.h.attempts.claims.release([t.key], "planning");
    this.h.cooldown.set(t.key, finding.state, block + REFUSED_COOLDOWN_BLOCKS);
    this.h.o.log.info(
      { event: "liquidation_skipped", trader: t.trader, marketId: t.marketId, reason, ...detail },
      `not liquidating ${this.h.o.marketName(t.marketId)} position of ${t.trader}: ${reason}`,
    );
  }

  /**
   * A simulation the RPC did not answer (transport failure, timeout) is no verdict on the liquidation: the positions
   * are freed with no cooldown, to be planned again at the next head, and the failure is an rpc_error.
   */
  private simulationUnanswered(error: unknown, group: readonly Finding[]): boolean {
    if (
      classifyRpcError(error) !== "timeout" &&
      !(error instanceof BaseError && error.walk((e) => e instanceof HttpRequestError))
    )
      return false;
    this.h.attempts.release(group.map((c) => c.target.key));
    this.h.o.log.warn(
      { event: "rpc_error", step: "simulate", positions: group.length, error: describeError(error) },
      "simulation got no answer from the RPC; the positions are planned again at the next head",
    );
    return true;
  }

  private unexpected(error: unknown, group: readonly Finding[]): void {
    this.h.o.log.error(
      { event: "executor_error", positions: group.length, error: describeError(error) },
      "planning a liquidation failed unexpectedly",
    );
    this.h.attempts.release(group.map((c) => c.target.key));
  }
}

/**
 * The executor's work on pending oracle updates (issue 9, keeper.precompute): liquidations prepared on an update
 * still in the mempool. `prepare` simulates a group after the update (the plan's `simulate`), leaves out what the
 * batch would skip, prices it (backrun: one wei under the update's fees, the profit checked at that tip), then holds
 * it for the update's block (on-block) or hands it to a lane tied to the update (backrun). `fire` sends what was held
 * once the update's block is here; `discard`, `untie` and `unwind` end the other ways. The nonce lanes, the journal
 * and the inclusion pass are the executor's parts (executor.ts), reached through PendingHost.
 */
import type { Address, Hex } from "viem";
import { describeError } from "../chain/errors.ts";
import { big } from "../ops/logger.ts";
import type { Finding } from "../protocol/adapter.ts";
import type { Tick } from "../watcher/watcher.ts";
import { type Attempt, latestTx, type SignedTx, type TargetPlan } from "./attempt.ts";
import {
  CANCEL_GAS,
  ceilingFor,
  currentFees,
  expectedProfit,
  type FeeContext,
  type FeePlan,
  type Fees,
  feeCeiling,
  planFees,
} from "./fees.ts";
import { feeFields, quote, sumRewards, targetIds } from "./fields.ts";
import type { NonceLane } from "./lane.ts";
import { targetPlans } from "./planner.ts";
import type { ExecutorOptions, UpdateStats } from "./types.ts";
import type { PendingCallResult, PendingPlan, PreparedUnit, Unit } from "./unit.ts";

/** What the pending-update work needs of the executor. */
export interface PendingHost {
  readonly o: ExecutorOptions;
  readonly updateStats: UpdateStats;
  closed(): boolean;
  head(): Tick | undefined;
  setHead(tick: Tick): void;
  /** Gas of a call the simulation did not measure: the executor's measured figures. */
  gasGuess(batch: boolean, positions: bigint): bigint;
  feeContext(tick: Tick): Promise<FeeContext>;
  release(keys: readonly string[]): void;
  /** To a lane (or the backlog). */
  dispatch(unit: Unit): void;
  /** Resolves when the signing and broadcasts under way have finished. */
  broadcastsDone(): Promise<void>;
  cancel(lane: NonceLane, a: Attempt, latest: SignedTx, now: Fees, head: Tick): Promise<void>;
  /** Runs a job in the executor's per-head queue, after and before its inclusion passes. */
  serial(job: () => Promise<void>): void;
}

export class PendingWork {
  constructor(private readonly h: PendingHost) {}

  /**
   * Prepares a group on a pending update: simulated after it (PendingPlan.simulate), the targets the simulation
   * skipped left out, priced (backrun: under the update's fees), then sent tied to the update (backrun) or held
   * for its block (on-block). A refusal here puts no cooldown on a position: the mined block is judged afresh.
   */
  async prepare(group: readonly Finding[], tick: Tick, pending: PendingPlan, sent?: () => void): Promise<boolean> {
    const { protocol, log } = this.h.o;
    let keys = group.map((c) => c.target.key);
    if (this.h.closed() || pending.state === "gone") {
      this.h.release(keys);
      return false;
    }
    const from = this.h.o.lanes[0]?.address as Address;
    let targets: TargetPlan[] = targetPlans(group);
    const encodeBatch = protocol.encodeBatch?.bind(protocol);
    const batch = targets.length > 1 && encodeBatch !== undefined;
    let data = batch ? encodeBatch(targets) : protocol.encodeSingle(targets[0] as TargetPlan);
    const refused = (reason: string, detail: Record<string, unknown> = {}) => {
      this.h.release(keys);
      log.info(
        { event: "liquidation_prepare_failed", update: pending.id, positions: group.length, reason, ...detail },
        `not preparing ${group.length} liquidation(s) on pending update ${pending.id}: ${reason}`,
      );
      return false;
    };
    let result: PendingCallResult | undefined;
    try {
      [result] = await pending.simulate([{ from, to: protocol.address, data }]);
    } catch (error) {
      return refused(
        error instanceof Error && error.name === "UpdateWouldFailError" ? "update_would_fail" : "rpc_error",
        {
          error: describeError(error),
        },
      );
    }
    if (!result) return refused("simulation_failed");
    if (!result.ok) {
      return refused(protocol.revertName(result.revertData) ?? "simulation_failed", { error: result.error });
    }
    if (batch && result.logs) {
      // what the batch would skip after the update (the risk model said liquidatable; the chain has the last word)
      const outcomes = protocol.outcomes(result.logs);
      const kept = targets.filter((t) => outcomes.get(t.key)?.kind === "liquidated");
      if (kept.length < targets.length) {
        this.h.release(targets.filter((t) => !kept.includes(t)).map((t) => t.key));
        keys = kept.map((t) => t.key); // the others are free: never released again from here
        if (kept.length === 0) return refused("simulation_skipped_all");
        targets = kept;
        data = encodeBatch(kept);
      }
    }
    const n = BigInt(targets.length);
    const estimate = result.gasUsed ?? this.h.gasGuess(batch, n);
    const reward = sumRewards(targets);
    const gas = (estimate * this.h.o.gasLimitMultiplierPercent) / 100n;
    const ctx = await this.h.feeContext(tick);
    const value = { reward, gas: estimate, gasLimit: gas };
    let fee: FeePlan | { ok: false; reason: string } = planFees(ctx, this.h.o.fees, value);
    if (fee.ok && pending.fees) {
      fee = pending.fees(feeCeiling(this.h.o.fees, value), ctx.baseFeePerGas, {
        cap: ceilingFor(this.h.o.fees, { gas: CANCEL_GAS }), // a cancel's own ceiling, txFeeCap included
        bumpBps: this.h.o.fees.replacementBumpBps,
      });
      const price = this.h.o.fees.gasTokenPrice;
      if (fee.ok && price !== undefined && price > 0n) {
        // the profit check again at the tip the update sets, not the policy's
        const profit = expectedProfit(reward, estimate, ctx.baseFeePerGas, fee.maxPriorityFeePerGas, price);
        if (profit < this.h.o.fees.minProfit) return refused("unprofitable", { expectedProfit: quote(profit) });
      }
    }
    if (!fee.ok) return refused(fee.reason);
    const kind = batch ? "batch" : "single";
    const unit: Unit = {
      kind,
      targets,
      call: { to: protocol.address, data, gas },
      fees: fee,
      head: tick.blockNumber,
      tries: 0,
      sent,
      after: pending.mode === "backrun" ? pending.id : undefined,
      seenAt: pending.seenAt,
      plan: pending,
    };
    this.h.updateStats.prepared += targets.length;
    log.info(
      {
        event: "liquidation_prepared",
        update: pending.id,
        mode: pending.mode,
        kind,
        positions: targets.length,
        ...(targets.length === 1 ? targetIds(targets[0] as TargetPlan) : { targets: targets.map(targetIds) }),
        reward: quote(reward),
        gas: big(gas),
        ...feeFields(fee),
        dryRun: this.h.o.dryRun || undefined,
        msSinceUpdateSeen: Math.round((performance.now() - pending.seenAt) * 10) / 10,
      },
      `prepared ${kind} liquidation of ${targets.length} position(s) on pending update ${pending.id} (${pending.mode})`,
    );
    if (this.h.o.dryRun || this.h.closed() || (pending.state as PendingPlan["state"]) === "gone") {
      this.h.release(targets.map((t) => t.key));
      return false;
    }
    if (pending.state === "pending" && pending.mode === "on-block") {
      pending.held.push(unit);
      return false;
    }
    if (pending.state === "landed") {
      // its update's block is here already: sent as a held unit would be, what is still liquidatable at this head
      const head = this.h.head();
      if (!head) {
        this.h.release(targets.map((t) => t.key));
        return false;
      }
      return this.fire([unit], head) > 0;
    }
    this.h.dispatch(unit);
    return true;
  }

  /**
   * On-block: sends the units held for an update whose block is this head, at this head's fees. Targets no longer
   * liquidatable here (closed, topped up, liquidated by someone else) are left out; nothing waits on a simulation.
   * Returns the positions sent for.
   */
  fire(units: readonly PreparedUnit[], tick: Tick): number {
    this.h.setHead(tick);
    let positions = 0;
    for (const unit of units) {
      const live = unit.targets.filter((t) => this.h.o.stillLiquidatable(t.key) === true);
      this.h.release(unit.targets.filter((t) => !live.includes(t)).map((t) => t.key));
      if (live.length === 0) continue;
      if (this.h.closed()) {
        this.h.release(live.map((t) => t.key));
        continue;
      }
      const data =
        live.length === unit.targets.length
          ? unit.call.data
          : (this.h.o.protocol.encodeBatch?.(live) ?? this.h.o.protocol.encodeSingle(live[0] as TargetPlan));
      const reward = sumRewards(live);
      const estimate = (unit.call.gas * 100n) / this.h.o.gasLimitMultiplierPercent;
      const fee = planFees(
        { baseFeePerGas: tick.baseFeePerGas, priorityFeePerGas: unit.fees.maxPriorityFeePerGas },
        this.h.o.fees,
        { reward, gas: estimate, gasLimit: unit.call.gas },
      );
      if (!fee.ok) {
        this.h.release(live.map((t) => t.key));
        this.h.o.log.info(
          { event: "liquidation_prepare_failed", positions: live.length, reason: fee.reason },
          `not sending ${live.length} prepared liquidation(s) at block ${tick.blockNumber}: ${fee.reason}`,
        );
        continue;
      }
      this.h.dispatch({
        ...unit,
        targets: live,
        call: { ...unit.call, data },
        fees: fee,
        head: tick.blockNumber,
        tries: 0,
        after: undefined,
      });
      positions += live.length;
    }
    return positions;
  }

  /** Frees the positions of held units whose update is gone (on-block: nothing was signed, no nonce was taken). */
  discard(units: readonly PreparedUnit[]): void {
    for (const unit of units) this.h.release(unit.targets.map((t) => t.key));
  }

  /** The update landed: what was tied to it is judged as any other attempt from now on. */
  untie(id: Hex): void {
    for (const lane of this.h.o.lanes) for (const a of lane.live.values()) if (a.after === id) a.after = undefined;
  }

  /**
   * The update attempts were tied to is gone (dropped, replaced, expired): each one sent is replaced by a cancel at
   * its nonce now, not at the next head, which could mine it without its update.
   */
  unwind(id: Hex): void {
    this.h.serial(async () => {
      try {
        await this.unwindNow(id);
      } catch (error) {
        this.h.o.log.error(
          { event: "executor_error", step: "unwind", error: describeError(error) },
          `cancelling what was sent on pending update ${id} failed; judged again at the next head`,
        );
      }
    });
  }

  private async unwindNow(id: Hex): Promise<void> {
    // what is being signed or broadcast finishes first: then every attempt tied to the update is pending
    await this.h.broadcastsDone();
    const head = this.h.head();
    const tied = this.h.o.lanes.flatMap((lane) =>
      [...lane.live.values()].filter((a) => a.after === id).map((a) => ({ lane, a })),
    );
    if (!head || tied.length === 0) return;
    const ctx = await this.h.feeContext(head);
    const nowFees: Fees = currentFees(ctx, this.h.o.fees); // capped; the cancel is held to its own caps
    await Promise.all(
      tied.map(async ({ lane, a }) => {
        const latest = latestTx(a);
        if (a.status !== "pending" || !latest || latest.purpose !== "liquidate") return; // the next head judges it
        a.after = undefined;
        await this.h.cancel(lane, a, latest, nowFees, head);
      }),
    );
  }
}

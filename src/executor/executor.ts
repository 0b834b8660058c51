/**
 * Turns confirmed candidates into liquidations and sees every one of them to a terminal state: the composition of
 * the executor's parts (README.md), each with one job.
 *
 * - planning.ts: candidates prioritised, packed, simulated under a bound and priced;
 * - dispatch (here): each unit to the funded lane with the most room, or the backlog;
 * - sender.ts: one sender per key signs at its nonces, journals, then broadcasts;
 * - attempts.ts: the attempts and the claims ledger; one function changes a status and journals it;
 * - per head (here, serialized): the inclusion pass (inclusion.ts) settles what was mined, then the monitor
 *   (monitor.ts) judges what was not, by the pure rules of pendingDecision.ts;
 * - pending.ts: work prepared on pending oracle updates.
 *
 * Nothing waits for a receipt; time is counted in blocks.
 */
import PQueue from "p-queue";
import type { Address, Hex, PublicClient } from "viem";
import { describeError } from "../chain/errors.ts";
import { big } from "../ops/logger.ts";
import type { Finding } from "../protocol/adapter.ts";
import type { Tick } from "../watcher/watcher.ts";
import type { Attempt } from "./attempt.ts";
import { Attempts } from "./attempts.ts";
import { type FeeContext, pickTip } from "./fees.ts";
import { describeTargets } from "./fields.ts";
import { SignerFunds } from "./funds.ts";
import { observedTip } from "./goingTip.ts";
import { Inclusion } from "./inclusion.ts";
import type { NonceLane } from "./lane.ts";
import { Monitor } from "./monitor.ts";
import { PendingWork } from "./pending.ts";
import { Planning } from "./planning.ts";
import { netProfit, Races } from "./races.ts";
import { resumeLane } from "./resume.ts";
import { Sender } from "./sender.ts";
import {
  Cooldown,
  type ExecutorOptions,
  type ExecutorStats,
  newStats,
  REFUSED_COOLDOWN_BLOCKS,
  type UpdateStats,
} from "./types.ts";
import type { PendingPlan, PreparedUnit, Unit } from "./unit.ts";

export { SignerError } from "./signers.ts";
export type { ExecutorOptions, ExecutorStats, UpdateStats } from "./types.ts";
export type { PendingCallResult, PendingPlan, PreparedUnit } from "./unit.ts";

export class Executor {
  readonly stats: ExecutorStats = newStats();
  readonly updateStats: UpdateStats = { distance: { "0": 0, "1": 0, "2": 0, "3": 0 }, prepared: 0 };
  private readonly lanesByAddress = new Map<string, NonceLane>();
  /** The attempts of every lane, and who holds each position (claims). */
  private readonly attempts: Attempts;
  /** Position states not to try again yet: refused by the simulation, or liquidated by us (dry run: priced). */
  private readonly cooldown = new Cooldown();
  private readonly senders = new Map<NonceLane, Sender>();
  /** Units no lane had room for; dispatched again at the next head. */
  private backlog: Unit[] = [];
  private readonly simulations: PQueue;
  private readonly blockWork = new PQueue({ concurrency: 1 });
  private readonly pumps = new Set<Promise<void>>();
  private closed = false;
  private passQueued = false;
  /** Between a reorganisation and the next head: the book is being rebuilt and says nothing about positions. */
  private rebuilding = false;
  private head: Tick | undefined;
  private feeCache: { block: bigint; ctx: Promise<FeeContext> } | undefined;
  private readonly funds: SignerFunds;
  private readonly planning: Planning;
  private readonly pendingWork: PendingWork;
  private readonly inclusion: Inclusion;
  private readonly monitor: Monitor;
  /** Races for contested targets: answers to competitors' bids, and their outcomes (races.ts). */
  readonly races: Races;

  constructor(private readonly o: ExecutorOptions) {
    if (o.lanes.length === 0) throw new Error("the executor needs at least one signer");
    for (const lane of o.lanes) this.lanesByAddress.set(lane.address.toLowerCase(), lane);
    this.attempts = new Attempts(this.lanesByAddress, o.log);
    this.funds = new SignerFunds(o);
    const broadcastClients: readonly PublicClient[] = o.broadcastClients?.length ? o.broadcastClients : [o.client];
    this.simulations = new PQueue({ concurrency: o.maxConcurrentSimulations });
    const shared = { o, stats: this.stats, attempts: this.attempts, cooldown: this.cooldown };
    const senderHost = {
      ...shared,
      broadcastClients,
      head: () => this.head,
      closed: () => this.closed,
      dispatch: (unit: Unit) => this.dispatch(unit),
      markLow: (lane: NonceLane, balance: bigint, error?: string) => this.funds.markLow(lane, balance, error),
    };
    for (const lane of o.lanes) this.senders.set(lane, new Sender(lane, senderHost));
    this.inclusion = new Inclusion({
      o,
      stats: this.stats,
      updateStats: this.updateStats,
      attempts: this.attempts,
      rebuilding: () => this.rebuilding,
      settled: (key, block) => this.attempts.claims.settledAt(key, block, this.o.current(key)),
      refreshBalance: (lane) => this.funds.refresh(lane),
      coolDown: (key, fromBlock) => this.cooldown.set(key, this.o.current(key), fromBlock + REFUSED_COOLDOWN_BLOCKS),
      describeTargets: (a) => describeTargets(a, o.marketName),
      raced: (t, result, txHash) => this.races.settled(t, result, txHash),
      withdrawn: (a) => this.races.wasWithdrawn(a),
    });
    this.races = new Races({
      ...shared,
      senderOf: (lane) => this.senderOf(lane),
      closed: () => this.closed,
      head: () => this.head,
      feeContext: (tick) => this.feeContext(tick),
      isOurs: (address) => this.isOurs(address),
      serial: (job) => void this.blockWork.add(job),
    });
    this.monitor = new Monitor({
      ...shared,
      inclusion: this.inclusion,
      senderOf: (lane) => this.senderOf(lane),
      closed: () => this.closed,
      rebuilding: () => this.rebuilding,
      head: () => this.head,
      feeContext: (tick) => this.feeContext(tick),
    });
    this.planning = new Planning({
      ...shared,
      simulations: this.simulations,
      pendingWork: () => this.pendingWork,
      closed: () => this.closed,
      feeContext: (tick) => this.feeContext(tick),
      dispatch: (unit) => this.dispatch(unit),
      races: this.races,
    });
    this.pendingWork = new PendingWork({
      o,
      updateStats: this.updateStats,
      closed: () => this.closed,
      head: () => this.head,
      setHead: (tick) => {
        this.head = tick;
      },
      gasGuess: (batch, positions) => this.planning.gasGuess(batch, positions),
      feeContext: (tick) => this.feeContext(tick),
      release: (keys) => this.attempts.release(keys),
      dispatch: (unit) => this.dispatch(unit),
      broadcastsDone: async () => {
        const running = [...this.pumps];
        if (running.length > 0) await Promise.allSettled(running);
      },
      cancel: (lane, a, latest, now, head) => this.monitor.cancel(lane, a, latest, now, head),
      serial: (job) => void this.blockWork.add(job),
    });
  }

  /** The signers' addresses. */
  get accounts(): readonly Address[] {
    return this.o.lanes.map((l) => l.address);
  }

  isOurs(address: Address): boolean {
    const liquidator = this.o.protocol.liquidator;
    if (liquidator !== undefined && address.toLowerCase() === liquidator.toLowerCase()) return true;
    return this.lanesByAddress.has(address.toLowerCase());
  }

  /** Attempts not yet terminal (pending, cancelling, being signed). */
  get pendingAttempts(): readonly Attempt[] {
    return this.attempts.unresolved;
  }

  private senderOf(lane: NonceLane): Sender {
    return this.senders.get(lane) as Sender;
  }

  // ---------------------------------------------------------------------------------------------------- start

  /**
   * Reconciles each lane's journal with the chain and initialises its nonce: attempts mined while the keeper was
   * down are settled, those still in the pool are tracked again, those the node lost are re-sent or filled when a
   * later nonce needs them and given back otherwise. Then checks each signer can pay for a liquidation.
   */
  async start(
    recovered: ReadonlyMap<NonceLane, readonly Attempt[]>,
    tick: { blockNumber: bigint; baseFeePerGas: bigint },
  ) {
    this.inclusion.startAt(tick.blockNumber);
    const deps = { o: this.o, attempts: this.attempts, anyKnown: (a: Attempt) => this.inclusion.anyKnown(a) };
    for (const lane of this.o.lanes) await resumeLane(lane, recovered.get(lane) ?? [], deps);
    if (this.o.dryRun) return;
    this.funds.check(await this.feeContext(tick));
  }

  // --------------------------------------------------------------------------------------------------- submit

  /**
   * Plans liquidations for the candidates that have no work under way, most underwater first. With `pending`, they
   * are prepared on an oracle update still in the mempool (see PendingPlan); `tick` is the last head.
   */
  submit(candidates: readonly Finding[], tick: Tick, pending?: PendingPlan): void {
    if (this.closed) return;
    if (!pending) this.head = tick;
    this.planning.submit(candidates, tick, pending);
  }

  // ----------------------------------------------------------------------------------- pending oracle updates

  /** On-block: sends the units held for an update whose block is this head (see PendingWork.fire). */
  fire(units: readonly PreparedUnit[], tick: Tick): number {
    return this.pendingWork.fire(units, tick);
  }

  /** Frees the positions of held units whose update is gone (on-block: nothing was signed, no nonce was taken). */
  discard(units: readonly PreparedUnit[]): void {
    this.pendingWork.discard(units);
  }

  /** The update landed: what was tied to it is judged as any other attempt from now on. */
  untie(id: Hex): void {
    this.pendingWork.untie(id);
  }

  /** The update attempts were tied to is gone: each one sent is replaced by a cancel at its nonce now. */
  unwind(id: Hex): void {
    this.pendingWork.unwind(id);
  }

  /** Whether the lane has an attempt (or a unit queued for signing) waiting for a pending update (backrun). */
  private holdsTied(lane: NonceLane): boolean {
    for (const a of lane.live.values()) if (a.after !== undefined) return true;
    // one queued for signing holds the lane as soon as it is signed: later nonces would wait behind it too
    return this.senderOf(lane).queue.some((u) => u.after !== undefined && u.plan?.state !== "gone");
  }

  // ------------------------------------------------------------------------------------------------- sending

  /** Gives a unit to the lane with the most room, or keeps it for the next head when none has any. */
  private dispatch(unit: Unit): void {
    let best: NonceLane | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (const lane of this.o.lanes) {
      if (lane.lowBalance || !lane.initialised) continue;
      const load = lane.live.size + this.senderOf(lane).queue.length;
      // a lane holding a backrun waits for its update: later nonces there would wait too, so others go first (only
      // looked for when pending updates are acted on at all)
      const penalty =
        unit.after === undefined && this.o.tiedVerdict !== undefined && this.holdsTied(lane)
          ? this.o.maxPendingPerSigner
          : 0;
      if (load < this.o.maxPendingPerSigner && load + penalty < bestLoad) {
        best = lane;
        bestLoad = load + penalty;
      }
    }
    if (!best) {
      this.backlog.push(unit);
      unit.sent?.();
      return;
    }
    const run = this.senderOf(best).enqueue(unit);
    if (run) {
      this.pumps.add(run);
      void run.finally(() => {
        this.pumps.delete(run);
        // a competitor's bid seen while these were being signed found nothing pending to answer: answered now (all
        // of them: the pump sent whatever its lane had queued, not only this unit)
        this.races.afterSend();
      });
    }
  }

  private retryBacklog(): void {
    if (this.closed || this.backlog.length === 0) return;
    const units = this.backlog;
    this.backlog = [];
    for (const unit of units) {
      if (unit.plan?.state === "gone" && unit.after !== undefined) {
        this.attempts.release(unit.targets.map((t) => t.key));
        continue;
      }
      // planned at an earlier head: a single call whose position is settled would revert; a batch skips what is
      // gone, so it goes while any of its positions is still liquidatable
      const gone = unit.targets.map((t) => this.o.stillLiquidatable(t.key) === false);
      if (unit.kind === "single" ? gone[0] : gone.every(Boolean)) {
        this.attempts.release(unit.targets.map((t) => t.key));
        continue;
      }
      this.dispatch(unit);
    }
  }

  // ------------------------------------------------------------------------------------------------ per head

  /**
   * One inclusion pass per new head, serialized: settles what was mined, then judges what was not. A head that
   * arrives while a pass runs is folded into the next one.
   */
  onHead(tick: Tick): void {
    this.head = tick;
    this.rebuilding = false; // a head after a reorganisation's rebuild: the book can be judged again
    if (this.closed) return; // stopping: nothing more is signed, pending transactions stay in the journal
    if (this.passQueued) return; // one pass queued already: it reads the newest head when it runs
    this.passQueued = true;
    void this.blockWork.add(async () => {
      this.passQueued = false;
      const head = this.head as Tick;
      try {
        await this.monitor.recheck(); // what a reorganisation left unknown is settled or tracked again first
        await this.inclusion.settle(head);
        this.monitor.checkBookAgainstReceipts(head);
        // what this pass freed is planned again now: the normal path planned this head before the pass ran
        const freed = this.inclusion.takeFreed().filter((key) => !this.attempts.claims.has(key));
        if (freed.length > 0 && !this.closed) this.o.replan?.(freed);
        await this.monitor.judge(head);
        this.races.onHead(head.blockNumber);
        await this.races.answer(); // what is still contested, and bids seen while the pass ran
        this.retryBacklog();
        // what maxPendingGas held back at this head, now that the head's receipts freed room
        if (!this.closed) this.planning.resubmitDeferred();
        await this.monitor.maybeCompact();
      } catch (error) {
        this.o.log.warn(
          { event: "rpc_error", step: "inclusion", error: describeError(error), blockNumber: big(head.blockNumber) },
          "inclusion pass failed; retried at the next head",
        );
      }
    });
  }

  /** Whether liquidations of ours are being planned or are unresolved (a race may be on). */
  get busy(): boolean {
    return this.attempts.claims.size > 0 || this.attempts.unresolved.length > 0;
  }

  /** Rewards of what we liquidated less gas and oracle fees paid, WAD collateral; undefined: no gas token price. */
  netProfit(): bigint | undefined {
    return netProfit(this.stats, this.o.fees.gasTokenPrice);
  }

  /** Follows the book: a changed or closed position may be tried again. */
  onTargetChanged(key: string): void {
    this.cooldown.delete(key);
    this.attempts.claims.bookChanged(key);
  }

  /**
   * The chain reorganised: our attempts mined in the removed blocks go back to pending, and are re-sent at their
   * own nonces (or cancelled) at the next head if the node dropped them; the lanes resync.
   */
  onReorg(): void {
    this.rebuilding = true;
    this.attempts.claims.forgetSettled();
    // what we mined lately may be open again in the rebuilt book: its positions stay ours until it is re-checked
    // (never taken from a live attempt that holds one now)
    for (const a of this.inclusion.recentAttempts()) this.attempts.reserve(a.targets, a);
    void this.blockWork.add(async () => {
      await this.monitor.reorged(this.inclusion.takeRecent());
      this.inclusion.startAt(undefined);
      await Promise.all(this.o.lanes.map((lane) => this.senderOf(lane).resync("reorg")));
    });
  }

  /**
   * A cause of refusals and reverts is gone (the pull oracle's fee was re-read after it changed): the targets they
   * hold back are planned again at the next tick, not after their cooldown.
   */
  retryRefused(reason: string): void {
    const lifted = this.cooldown.lift();
    if (lifted > 0) {
      this.o.log.info(
        { event: "liquidations_retried", reason, positions: lifted },
        `${lifted} refused liquidation(s) planned again: ${reason}`,
      );
    }
  }

  /**
   * Reads this head's fees ahead of any work (eth_feeHistory, once a block): where work may come between heads (a
   * pull oracle's price), its first broadcast does not wait for the read.
   */
  warmFees(tick: { blockNumber: bigint; baseFeePerGas: bigint }): void {
    if (this.closed) return;
    void this.feeContext(tick).catch(() => {});
  }

  private async feeContext(tick: { blockNumber: bigint; baseFeePerGas: bigint }): Promise<FeeContext> {
    if (this.feeCache?.block === tick.blockNumber) return this.feeCache.ctx;
    const ctx = (async (): Promise<FeeContext> => {
      const observed =
        this.o.tipSource === "feeHistory"
          ? await observedTip(this.o.client, tick.blockNumber, this.o.tipPercentile)
          : undefined;
      return { baseFeePerGas: tick.baseFeePerGas, priorityFeePerGas: pickTip(this.o.fees, observed) };
    })();
    this.feeCache = { block: tick.blockNumber, ctx };
    return ctx;
  }

  // ------------------------------------------------------------------------------------------------- stopping

  /** Stops taking work: queued simulations are dropped, nothing new is signed. Idempotent. */
  close(): void {
    this.closed = true;
    this.simulations.clear();
    for (const unit of this.backlog) this.attempts.release(unit.targets.map((t) => t.key));
    this.backlog = [];
  }

  /**
   * Resolves when the broadcasts under way have finished, or after `graceMs`. Pending transactions stay in the
   * journal for the next start.
   */
  async idle(graceMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    const settled = (async () => {
      await this.simulations.onIdle();
      while (this.pumps.size > 0) await Promise.allSettled([...this.pumps]);
      await this.blockWork.onIdle();
      return true;
    })();
    if (!Number.isFinite(graceMs)) return settled;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), graceMs);
    });
    try {
      return await Promise.race([settled, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the journals (after idle). */
  async shutdown(): Promise<void> {
    await Promise.all(this.o.lanes.map((l) => l.journal.close().catch(() => {})));
  }
}

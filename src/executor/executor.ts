/**
 * Turns confirmed candidates into liquidations and sees every one of them to a terminal state.
 *
 * Sending is decoupled from inclusion: a crash's candidates are planned (most underwater first, packed into
 * batches), simulated in parallel under a bound, then signed, journaled and broadcast back to back from each
 * signer's nonce lane. Nothing waits for a receipt. Once per new head, one inclusion pass (the head's block
 * receipts and each busy lane's nonce) settles every pending transaction of ours; what is not mined is judged by
 * the pure rules of decide.ts: bumped when stuck, cancelled when no longer wanted, re-sent when dropped, and any
 * nonce hole filled, so that no transaction ever wedges the lane. Every status change is journaled.
 */
import PQueue from "p-queue";
import { type Address, BaseError, type Hex, HttpRequestError, type PublicClient } from "viem";
import type { Endpoints } from "../chain/endpoints.ts";
import { classifyRpcError, describeError } from "../chain/errors.ts";
import { big, type Logger } from "../ops/logger.ts";
import type { LiquidationProtocol } from "../protocol/adapter.ts";
import type { Candidate } from "../risk/scan.ts";
import type { BookChange, TrackedPosition } from "../state/book.ts";
import type { Tick } from "../watcher/watcher.ts";
import { type Attempt, isTerminal, latestTx, type SignedTx, type TargetPlan, transition } from "./attempt.ts";
import { broadcastAll, type SendResult } from "./broadcast.ts";
import { Claims, type Holder } from "./claims.ts";
import { decidePending, decideStuck } from "./decide.ts";
import {
  CANCEL_GAS,
  checkFees,
  currentFees,
  expectedProfit,
  type FeeContext,
  type FeePolicy,
  type Fees,
  pickTip,
  planFees,
} from "./fees.ts";
import { attemptIds, feeFields, quote, revertReason, sumRewards, targetIds } from "./fields.ts";
import { Inclusion } from "./inclusion.ts";
import { attemptRecord, type JournalRecord, recordsOf, statusRecord, txRecord } from "./journal.ts";
import { NonceLane } from "./lane.ts";
import { PendingWork } from "./pending.ts";
import { batchCapacity, pack, prioritise, targetPlans } from "./planner.ts";
import { planRecovery } from "./recovery.ts";
import { excludeUnfunded } from "./signers.ts";
import type { PendingPlan, PreparedUnit, Unit } from "./unit.ts";

export type { PendingCallResult, PendingPlan, PreparedUnit } from "./unit.ts";

export interface ExecutorOptions {
  /** Inclusion passes and broadcasts (calls made together may share one HTTP request). */
  readonly client: PublicClient;
  /** Broadcasts go to each of these (one per RPC endpoint); default: `client` alone. */
  readonly broadcastClients?: readonly PublicClient[];
  /** Simulations: one HTTP request each, so the first batch of a burst never waits behind the others. */
  readonly simulationClient?: PublicClient;
  readonly protocol: LiquidationProtocol;
  readonly lanes: readonly NonceLane[];
  readonly log: Logger;
  /** Simulate and log, never send. */
  readonly dryRun: boolean;
  readonly fees: FeePolicy;
  /** Tip source: the policy's floor, or the floor raised to a percentile of the last block's tips. */
  readonly tipSource: "fixed" | "feeHistory";
  readonly tipPercentile: number;
  /** Smallest keeper reward worth liquidating a position for, WAD collateral. */
  readonly minKeeperReward: bigint;
  /** Gas limit = estimate * gasLimitMultiplierPercent / 100. */
  readonly gasLimitMultiplierPercent: bigint;
  /** Batch candidates into the protocol's batch call (when it has one). */
  readonly batching: boolean;
  /** Most gas one batch may be given (gas limit), well under the block gas limit. */
  readonly batchGasLimit: bigint;
  /** Positions in the first batch of a burst (small, so the most urgent go out at once). */
  readonly firstBatchPositions: number;
  /** Simulations in flight at once. */
  readonly maxConcurrentSimulations: number;
  /** Transactions one signer may have unresolved at once (the node's per-account pool limit). */
  readonly maxPendingPerSigner: number;
  /** Blocks without inclusion after which a transaction counts as stuck. */
  readonly stuckBlocks: bigint;
  /** A signer below this balance (wei) takes no new work. */
  readonly minSignerBalance: bigint;
  /** A market's display name for log messages. */
  readonly marketName: (marketId: number) => string;
  /** The book's current state of a position. */
  readonly current: (key: string) => TrackedPosition | undefined;
  /** Whether the position is still below maintenance at the last head (undefined: no valid price to judge). */
  readonly stillLiquidatable: (key: string) => boolean | undefined;
  /**
   * For an attempt tied to a pending oracle update (Attempt.after): "hold" while the update is pending and a target
   * is liquidatable at its price, "cancel" when none is any more; undefined: not tied (any more), judged as usual.
   */
  readonly tiedVerdict?: (a: Attempt) => "hold" | "cancel" | undefined;
  /** The block at which a market's mark price last moved: how far behind its price update a liquidation landed. */
  readonly priceMovedAt?: (marketId: number) => bigint | undefined;
  /**
   * Positions an inclusion pass freed (our cancel or another sender took the nonce): planned again at once if they
   * are still liquidatable at the head, not a block later.
   */
  readonly replan?: (keys: readonly string[]) => void;
  /**
   * The book still shows a position unchanged after the block in which our own receipt settled it: the log answers
   * for that block are refuted (the watcher indexes it again from another endpoint).
   */
  readonly contradicted?: (blockNumber: bigint, detail: string) => void;
  /**
   * Every endpoint on its own: receipts and transaction lookups ask them in turn, and one that denies what another
   * has (a block under the head, a transaction of ours) is demoted. Default: `client` alone.
   */
  readonly endpoints?: Endpoints;
}

export interface ExecutorStats {
  /** Liquidation transactions broadcast (first sends; replacements are counted apart). */
  sent: number;
  /** Positions liquidated by us. */
  confirmed: number;
  /** Positions a competitor (or the trader) settled first while ours was on its way. */
  lostRace: number;
  /** Transactions mined reverted for another reason. */
  reverted: number;
  cancelled: number;
  replaced: number;
  resent: number;
  /** Positions not sent for: the simulation refused, the reward or the fees did not pay. */
  skipped: number;
  /** Transactions the node refused outright. */
  failed: number;
  /** Gas paid by our mined transactions, wei. */
  gasPaidWei: bigint;
}

/** How soon after their price update our liquidations land, and what was prepared ahead of updates (issue 9). */
export interface UpdateStats {
  /** Positions liquidated by us, by blocks between the market's price update and our liquidation ("3": 3 or more). */
  readonly distance: Record<"0" | "1" | "2" | "3", number>;
  /** Positions prepared on pending oracle updates (simulated after the update and priced). */
  prepared: number;
}

/** Blocks a position state the simulation refused waits before it is simulated again. */
const REFUSED_COOLDOWN_BLOCKS = 3n;
/** Sends of one unit across nonce conflicts before it is given up. */
const MAX_SEND_TRIES = 3;
/** Gas a position adds to a batch before it has been measured, and a single liquidation's guess. */
const INITIAL_GAS_PER_POSITION = 80_000n;
/** One single-call simulation in this many re-measures the gas (eth_estimateGas); the others are an eth_call. */
const SINGLE_GAS_RESAMPLE = 32;
/** Journal records after which it is compacted to its live attempts. */
const COMPACT_AFTER_RECORDS = 20_000;

type Busy = Holder;

export class Executor {
  readonly stats: ExecutorStats = {
    sent: 0,
    confirmed: 0,
    lostRace: 0,
    reverted: 0,
    cancelled: 0,
    replaced: 0,
    resent: 0,
    skipped: 0,
    failed: 0,
    gasPaidWei: 0n,
  };
  readonly updateStats: UpdateStats = { distance: { "0": 0, "1": 0, "2": 0, "3": 0 }, prepared: 0 };
  /** Every position with work under way: never a second attempt at the same time. */
  /** Who holds each position (claims.ts): one owner at a time, freed only by its holder. */
  private readonly busy = new Claims();
  /** Position states not to try again yet: refused by the simulation, or liquidated by us (dry run: priced). */
  private readonly cooldown = new Map<string, { readonly position: TrackedPosition | undefined; until: bigint }>();
  private readonly attempts = new Map<string, Attempt>();
  private readonly lanesByAddress = new Map<string, NonceLane>();
  private readonly queues = new Map<NonceLane, Unit[]>();
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
  /** Transactions a node refused for its own fee cap (tx_fee_cap): never broadcast again as they are. */
  private readonly overNodeCap = new Set<Hex>();
  private gasPerPosition = INITIAL_GAS_PER_POSITION;
  private gasMeasured = false;
  /** The largest gas estimate of a single liquidation seen, and how many single calls were simulated. */
  private singleGas: bigint | undefined;
  private singleCalls = 0;
  /** Balance (wei) under which a signer takes no new work: the configured floor, at least one liquidation's cost. */
  private floor = 0n;
  private seq = 0;
  private readonly runId = Date.now().toString(36);
  private readonly broadcastClients: readonly PublicClient[];
  private readonly pendingWork: PendingWork;
  private readonly inclusion: Inclusion;

  constructor(private readonly o: ExecutorOptions) {
    this.inclusion = new Inclusion({
      o,
      stats: this.stats,
      updateStats: this.updateStats,
      lanesByAddress: this.lanesByAddress,
      rebuilding: () => this.rebuilding,
      releaseFrom: (a) => this.releaseFrom(a),
      settled: (key, block) => this.busy.settledAt(key, block, this.o.current(key)),
      untrack: (lane, a) => this.untrack(lane, a),
      record: (lane, records) => this.record(lane, records),
      refreshBalance: (lane) => this.refreshBalance(lane),
      coolDown: (key, fromBlock) =>
        this.cooldown.set(key, { position: this.o.current(key), until: fromBlock + REFUSED_COOLDOWN_BLOCKS }),
      describeTargets: (a) => this.describeTargets(a),
    });
    this.pendingWork = new PendingWork({
      o,
      updateStats: this.updateStats,
      closed: () => this.closed,
      head: () => this.head,
      setHead: (tick) => {
        this.head = tick;
      },
      gasGuess: (batch, positions) =>
        batch ? this.gasPerPosition * positions : (this.singleGas ?? INITIAL_GAS_PER_POSITION),
      feeContext: (tick) => this.feeContext(tick),
      release: (keys) => this.release(keys),
      dispatch: (unit) => this.dispatch(unit),
      broadcastsDone: async () => {
        const running = [...this.pumps];
        if (running.length > 0) await Promise.allSettled(running);
      },
      cancel: (lane, a, latest, now, head) => this.cancel(lane, a, latest, now, head),
      serial: (job) => void this.blockWork.add(job),
    });
    if (o.lanes.length === 0) throw new Error("the executor needs at least one signer");
    this.broadcastClients = o.broadcastClients?.length ? o.broadcastClients : [o.client];
    this.simulations = new PQueue({ concurrency: o.maxConcurrentSimulations });
    for (const lane of o.lanes) {
      this.lanesByAddress.set(lane.address.toLowerCase(), lane);
      this.queues.set(lane, []);
    }
  }

  /** The signers' addresses. */
  get accounts(): readonly Address[] {
    return this.o.lanes.map((l) => l.address);
  }

  isOurs(address: Address): boolean {
    return this.lanesByAddress.has(address.toLowerCase());
  }

  /** Attempts not yet terminal (pending, cancelling, being signed). */
  get pendingAttempts(): readonly Attempt[] {
    return [...this.attempts.values()].filter((a) => !isTerminal(a.status));
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
    const { client, log } = this.o;
    this.inclusion.startAt(tick.blockNumber);
    for (const lane of this.o.lanes) {
      const [{ latest, pending }, balance] = await Promise.all([
        NonceLane.chainNonces(client, lane.address),
        client.getBalance({ address: lane.address }),
        lane.warmUp(),
      ]);
      lane.balance = balance;
      lane.chainNonce = latest;
      const attempts = recovered.get(lane) ?? [];
      const answers = new Map<Attempt, boolean | undefined>();
      await Promise.all(
        attempts.filter((a) => a.nonce >= latest).map(async (a) => answers.set(a, await this.inclusion.anyKnown(a))),
      );
      const plan = planRecovery(attempts, { latest, pending }, (a) => answers.get(a));
      for (const a of [...plan.mined, ...plan.pending, ...plan.lost]) {
        this.attempts.set(a.id, a);
        if (a.status === "signed") transition(a, "pending");
        this.track(lane, a);
      }
      for (const a of plan.lost) for (const tx of a.txs) tx.sentAtBlock = 0n; // checked at the first head
      for (const a of plan.abandoned) {
        transition(a, "failed");
        this.record(lane, [statusRecord(a)]);
      }
      lane.init(plan.nextNonce);
      const settled = plan.mined.length;
      const tracked = plan.pending.length + plan.lost.length;
      const abandoned = plan.abandoned.length;
      if (attempts.length > 0) {
        log.info(
          {
            event: "executor_recovered",
            signer: lane.address,
            journaled: attempts.length,
            settled,
            tracked,
            abandoned,
            nextNonce: lane.nextNonce,
          },
          `journal of ${lane.address}: ${settled} settled, ${tracked} still pending, ${abandoned} never reached the chain`,
        );
      }
    }
    if (this.o.dryRun) return;
    const ctx = await this.feeContext(tick);
    const plan = planFees(ctx, this.o.fees);
    const oneLiquidation = INITIAL_GAS_PER_POSITION * 2n * (plan.ok ? plan.maxFeePerGas : ctx.baseFeePerGas * 2n);
    const floor = this.o.minSignerBalance > oneLiquidation ? this.o.minSignerBalance : oneLiquidation;
    this.floor = floor;
    excludeUnfunded(this.o.lanes, floor, log);
  }

  // --------------------------------------------------------------------------------------------------- submit

  /**
   * Plans liquidations for the candidates that have no work under way, most underwater first. With `pending`, they
   * are prepared on an oracle update still in the mempool (see PendingPlan); `tick` is the last head.
   */
  submit(candidates: readonly Candidate[], tick: Tick, pending?: PendingPlan): void {
    if (this.closed) return;
    if (!pending) this.head = tick;
    const fresh: Candidate[] = [];
    for (const c of candidates) {
      const key = c.position.key;
      if (this.busy.has(key)) continue;
      // our own receipt settled it and the book does not show that yet: never sent again until it does
      if (this.busy.heldBack(key, c.position)) continue;
      const cool = this.cooldown.get(key);
      if (cool && cool.position === c.position && tick.blockNumber < cool.until) continue;
      if (c.keeperReward < this.o.minKeeperReward) {
        this.refuse(c.position, tick.blockNumber, "reward_below_minimum", { reward: quote(c.keeperReward) });
        continue;
      }
      fresh.push(c);
    }
    if (fresh.length === 0) return;
    for (const c of fresh) this.busy.claim([c.position.key], "planning");
    void this.feeContext(tick).catch(() => {}); // fetched while the simulations run
    const ordered = prioritise(fresh);
    if (!(this.o.batching && this.o.protocol.encodeBatch !== undefined)) {
      for (const c of ordered) this.simulate([c], tick, undefined, pending);
      return;
    }
    // the most urgent go first in a small batch, simulated alone; the rest is packed once that simulation has
    // measured what a position costs in a batch
    const sizing = { baseFeePerGas: tick.baseFeePerGas, priorityFeePerGas: this.o.fees.minPriorityFeePerGas };
    const first = ordered.slice(0, Math.max(1, Math.min(this.o.firstBatchPositions, this.maxBatchPositions(sizing))));
    const rest = ordered.slice(first.length);
    // the rest waits until the first batch is on its way, so that nothing competes with it for the event loop
    let firstSent: () => void = () => {};
    const probe = new Promise<void>((resolve) => {
      firstSent = resolve;
    });
    this.simulate(first, tick, firstSent, pending);
    if (rest.length === 0) return;
    void probe.then(async () => {
      const max = this.maxBatchPositions(await this.feeContext(tick));
      if (this.closed) return this.release(rest.map((c) => c.position.key));
      for (const group of pack(rest, { batching: true, maxPositions: max, firstPositions: max })) {
        this.simulate(group, tick, undefined, pending);
      }
    });
  }

  private simulate(group: readonly Candidate[], tick: Tick, sent?: () => void, pending?: PendingPlan): void {
    void this.simulations
      .add(() => (pending ? this.pendingWork.prepare(group, tick, pending, sent) : this.prepare(group, tick, sent)))
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

  private maxBatchPositions(ctx: FeeContext): number {
    return batchCapacity({
      batchGasLimit: this.o.batchGasLimit,
      gasPerPosition: (this.gasPerPosition * this.o.gasLimitMultiplierPercent) / 100n,
      maxFeePerGas: currentFees(ctx, this.o.fees).maxFeePerGas,
      txFeeCap: this.o.fees.txFeeCap,
    });
  }

  /** Simulates a group, prices it and hands it to a lane (true); refused positions are released (false). */
  private async prepare(group: readonly Candidate[], tick: Tick, sent?: () => void): Promise<boolean> {
    if (this.closed) {
      this.release(group.map((c) => c.position.key));
      return false;
    }
    const { protocol } = this.o;
    const client = this.o.simulationClient ?? this.o.client;
    const from = this.o.lanes[0]?.address;
    const targets: TargetPlan[] = targetPlans(group);
    const single = targets.length === 1 || !protocol.encodeBatch;
    const kept = targets;
    let data: Hex;
    let estimate: bigint;
    if (single) {
      const target = targets[0] as TargetPlan;
      data = protocol.encodeSingle(target);
      try {
        // every single call is simulated; the gas search (eth_estimateGas: many executions) runs for the first and
        // then one in SINGLE_GAS_RESAMPLE, the others take the largest estimate seen (a plain eth_call: one)
        const known = this.singleGas;
        if (known === undefined || ++this.singleCalls % SINGLE_GAS_RESAMPLE === 0) {
          estimate = await client.estimateGas({ account: from, to: protocol.address, data });
          if (known === undefined || estimate > known) this.singleGas = estimate;
        } else {
          await client.call({ account: from, to: protocol.address, data });
          estimate = known;
        }
      } catch (error) {
        if (this.simulationUnanswered(error, group)) return false;
        this.refuse(group[0]?.position, tick.blockNumber, revertReason(error, protocol), {
          error: describeError(error),
        });
        return false;
      }
    } else {
      // the gas estimate is the simulation: it fails exactly when liquidateMany would revert (an unusable
      // oracle); a position someone else settled meanwhile is skipped by the contract, not a revert. The rewards
      // are the risk model's exact figures, so this is the batch's only read.
      data = protocol.encodeBatch?.(targets) as Hex;
      try {
        estimate = await client.estimateGas({ account: from, to: protocol.address, data });
      } catch (error) {
        if (this.simulationUnanswered(error, group)) return false;
        const reason = revertReason(error, protocol);
        for (const c of group) this.refuse(c.position, tick.blockNumber, reason, { error: describeError(error) });
        return false;
      }
      const measured = estimate / BigInt(targets.length);
      this.gasPerPosition = this.gasMeasured ? (this.gasPerPosition + measured) / 2n : measured;
      this.gasMeasured = true;
    }
    const reward = sumRewards(kept);
    const gas = (estimate * this.o.gasLimitMultiplierPercent) / 100n;
    const ctx = await this.feeContext(tick);
    const fee = planFees(ctx, this.o.fees, { reward, gas: estimate, gasLimit: gas });
    const price = this.o.fees.gasTokenPrice;
    const profit =
      price === undefined
        ? undefined
        : expectedProfit(reward, estimate, ctx.baseFeePerGas, ctx.priorityFeePerGas, price);
    const plan = {
      positions: kept.length,
      reward: quote(reward),
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
        const c = group.find((g) => g.position.key === t.key);
        this.refuse(c?.position, tick.blockNumber, fee.reason, plan);
      }
      return false;
    }
    const kind = single ? "single" : "batch";
    const call = { to: protocol.address, data, gas };
    if (this.o.dryRun) {
      this.o.log.info(
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
      for (const c of group)
        this.cooldown.set(c.position.key, { position: c.position, until: BigInt(Number.MAX_SAFE_INTEGER) });
      this.release(kept.map((t) => t.key));
      return false;
    }
    if (this.closed) {
      this.release(kept.map((t) => t.key));
      return false;
    }
    this.dispatch({ kind, targets: kept, call, fees: fee, head: tick.blockNumber, tries: 0, sent });
    return true;
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

  /** Whether the lane has an attempt waiting for a pending update (backrun). */
  private holdsTied(lane: NonceLane): boolean {
    for (const a of lane.live.values()) if (a.after !== undefined) return true;
    return false;
  }

  // ------------------------------------------------------------------------------------------------- sending

  /** Gives a unit to the lane with the most room, or keeps it for the next head when none has any. */
  private dispatch(unit: Unit): void {
    let best: NonceLane | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (const lane of this.o.lanes) {
      if (lane.lowBalance || !lane.initialised) continue;
      const load = lane.live.size + (this.queues.get(lane)?.length ?? 0);
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
    this.queues.get(best)?.push(unit);
    this.pump(best);
  }

  /** Signs, journals (one fsync per group) and broadcasts everything queued on the lane, in nonce order. */
  private pump(lane: NonceLane): void {
    if (lane.busy) return;
    lane.busy = true;
    let units: Unit[] = [];
    let signed: { attempt: Attempt; tx: SignedTx; unit: Unit }[] = [];
    const run = (async () => {
      try {
        const queue = this.queues.get(lane) as Unit[];
        while (queue.length > 0) {
          units = queue.splice(0, queue.length);
          signed = [];
          if (this.closed) {
            for (const u of units) {
              this.release(u.targets.map((t) => t.key));
              u.sent?.();
            }
            continue;
          }
          for (const unit of units) {
            if (unit.plan?.state === "gone" && unit.after !== undefined) {
              // its update was dropped or replaced while it waited for the lane: it must not go without it
              this.release(unit.targets.map((t) => t.key));
              unit.sent?.();
              continue;
            }
            if (this.closed) {
              // stopping: what is signed goes out, nothing new is signed
              this.release(unit.targets.map((t) => t.key));
              unit.sent?.();
              continue;
            }
            // one owner per position: a unit whose position a live attempt of ours holds is never signed
            const taken = unit.targets.filter((t) => this.busy.heldByOther(t.key));
            if (taken.length > 0) {
              this.o.log.warn(
                { event: "claim_refused", signer: lane.address, positions: taken.map(targetIds) },
                `not sending: ${taken.length} of its positions are held by a transaction of ours already`,
              );
              this.release(unit.targets.map((t) => t.key));
              unit.sent?.();
              continue;
            }
            const nonce = lane.take();
            const attempt: Attempt = {
              id: `${this.runId}-${++this.seq}`,
              signer: lane.address,
              nonce,
              kind: unit.kind,
              targets: unit.targets,
              to: unit.call.to,
              data: unit.call.data,
              gas: unit.call.gas,
              txs: [],
              status: "signed",
              createdAtBlock: unit.head,
              after: unit.plan?.state === "pending" ? unit.after : undefined,
            };
            this.attempts.set(attempt.id, attempt);
            this.track(lane, attempt);
            let tx: SignedTx | undefined;
            try {
              tx = await this.signTx(lane, attempt, "liquidate", unit.fees);
            } catch (error) {
              // nothing signed at this nonce: it is given back (the newest taken), never left taken and empty
              transition(attempt, "failed");
              this.untrack(lane, attempt);
              lane.giveBack(nonce);
              this.releaseFrom(attempt);
              throw error;
            }
            if (!tx) {
              // its fees break a cap (logged): nothing signed, its nonce and positions given back
              transition(attempt, "failed");
              this.untrack(lane, attempt);
              lane.giveBack(nonce);
              this.releaseFrom(attempt);
              this.release(unit.targets.map((t) => t.key));
              unit.sent?.();
              continue;
            }
            signed.push({ attempt, tx, unit });
          }
          await lane.journal.append(
            signed.flatMap(({ attempt, tx }) => [attemptRecord(attempt), txRecord(attempt, tx)]),
          );
          const results = await Promise.all(
            signed.map(({ tx }) => broadcastAll(this.broadcastClients, tx.raw, tx.hash)),
          );
          // highest nonce first, so that failed nonces at the top can be given back
          const order = signed.map((s, i) => ({ ...s, result: results[i] as SendResult })).reverse();
          const records: JournalRecord[] = [];
          const retry: Unit[] = [];
          for (const s of order) this.afterFirstSend(lane, s.attempt, s.tx, s.unit, s.result, records, retry);
          for (const s of signed) s.unit.sent?.();
          units = [];
          signed = [];
          await lane.journal.append(records);
          if (retry.length > 0) {
            // another transaction of this key holds those nonces: read the chain's count before sending again
            await this.resync(lane, "nonce_conflict");
            for (const unit of retry.reverse()) this.dispatch(unit);
          }
        }
      } catch (error) {
        // signing or the journal failed before anything of this group was broadcast: nothing of it reached the
        // node, so its nonces are given back (highest first) and its positions freed for a later head
        const stranded = signed.filter((x) => x.attempt.status === "signed").reverse();
        for (const { attempt } of stranded) {
          transition(attempt, "failed");
          this.untrack(lane, attempt);
          lane.giveBack(attempt.nonce);
          this.releaseFrom(attempt);
        }
        const onTheirWay = new Set(signed.filter((x) => x.attempt.status !== "failed").map((x) => x.unit));
        for (const unit of units) {
          if (!onTheirWay.has(unit)) this.release(unit.targets.map((t) => t.key));
          unit.sent?.();
        }
        this.o.log.error(
          { event: "executor_error", signer: lane.address, error: describeError(error), unsent: stranded.length },
          "signing or journaling failed; nothing of that group was sent, its positions are tried again later",
        );
      } finally {
        lane.busy = false;
      }
    })();
    this.pumps.add(run);
    void run.finally(() => this.pumps.delete(run));
  }

  /** Signs at the attempt's nonce, if the fees pass checkFees (tip <= max fee <= every cap); else undefined, logged. */
  private async signTx(
    lane: NonceLane,
    a: Attempt,
    purpose: SignedTx["purpose"],
    fees: Fees,
  ): Promise<SignedTx | undefined> {
    const call = purpose === "cancel" ? { to: lane.address, data: "0x" as Hex, gas: CANCEL_GAS } : a;
    const reward = purpose === "cancel" ? undefined : sumRewards(a.targets);
    const check = checkFees(fees, { gas: call.gas, reward }, this.o.fees);
    if (!check.ok) {
      this.o.log.error(
        {
          event: "fees_refused",
          ...attemptIds(a),
          purpose,
          reason: check.reason,
          gas: big(call.gas),
          ...feeFields(fees),
        },
        `not signing the ${purpose} at nonce ${a.nonce}: its fees break a cap (${check.reason})`,
      );
      return undefined;
    }
    const { raw, hash } = await lane.sign(call, a.nonce, fees);
    const tx: SignedTx = { hash, raw, purpose, ...fees, sentAtBlock: this.head?.blockNumber ?? a.createdAtBlock };
    a.txs.push(tx);
    return tx;
  }

  /** What a first broadcast's answer means for the attempt, its nonce and its targets. */
  private afterFirstSend(
    lane: NonceLane,
    a: Attempt,
    tx: SignedTx,
    unit: Unit,
    result: SendResult,
    records: JournalRecord[],
    retry: Unit[],
  ): void {
    const { log } = this.o;
    const fields = { ...attemptIds(a), txHash: tx.hash, ...feeFields(tx) };
    if (result.kind === "accepted" || result.kind === "uncertain") {
      // a slow answer may come after the inclusion pass already settled it: then it stays settled
      if (a.status === "signed") {
        transition(a, "pending");
        records.push(statusRecord(a));
      }
      this.stats.sent++;
      if (result.kind === "uncertain") {
        log.warn(
          { event: "liquidation_send_uncertain", ...fields, error: result.error },
          "no clear answer to the broadcast and the node does not know the hash yet; tracked as pending",
        );
      }
      log.info(
        {
          event: "liquidation_sent",
          ...fields,
          targets: a.kind === "batch" ? a.targets.map(targetIds) : undefined,
          reward: quote(sumRewards(a.targets)),
          gas: big(a.gas),
          afterUpdate: unit.after,
          msSinceUpdateSeen:
            unit.seenAt === undefined ? undefined : Math.round((performance.now() - unit.seenAt) * 10) / 10,
        },
        `liquidating ${this.describeTargets(a)} (nonce ${a.nonce}) for a reward of ${quote(sumRewards(a.targets))}`,
      );
      return;
    }
    if (a.status !== "signed") return; // mined meanwhile: the refusal was of a duplicate
    // the node refused it: this nonce holds nothing of ours
    transition(a, "failed");
    records.push(statusRecord(a));
    this.untrack(lane, a);
    lane.giveBack(a.nonce); // the lane's top nonce is given back; one below others is a hole, filled by judge()
    if (result.kind === "nonce_too_low" || result.kind === "underpriced") {
      // another transaction of this key holds the nonce: sent again at a fresh one after a resync
      if (++unit.tries < MAX_SEND_TRIES) {
        this.reserve(unit.targets, "planning");
        retry.push(unit);
        return;
      }
    } else if (result.kind === "insufficient_funds") {
      this.markLow(lane, lane.balance ?? 0n, result.error);
      if (++unit.tries < MAX_SEND_TRIES) {
        this.reserve(unit.targets, "planning");
        this.dispatch(unit);
        return;
      }
    }
    this.stats.failed++;
    log.warn(
      { event: "liquidation_failed", ...fields, reason: result.kind, error: result.error },
      `the node refused the liquidation of ${this.describeTargets(a)}: ${result.error}`,
    );
    this.releaseFrom(a);
    const block = this.head?.blockNumber ?? a.createdAtBlock;
    for (const t of a.targets) {
      this.cooldown.set(t.key, { position: this.o.current(t.key), until: block + REFUSED_COOLDOWN_BLOCKS });
    }
  }

  private async resync(lane: NonceLane, reason: string): Promise<void> {
    try {
      const { latest, pending } = await NonceLane.chainNonces(this.o.client, lane.address);
      lane.chainNonce = latest;
      const before = lane.nextNonce;
      if (lane.catchUp(pending)) {
        this.o.log.info(
          { event: "nonce_resynced", signer: lane.address, reason, from: before, to: lane.nextNonce },
          `nonce of ${lane.address} resynced from ${before} to ${lane.nextNonce} (${reason})`,
        );
      }
    } catch (error) {
      this.o.log.warn({ event: "rpc_error", step: "nonce_resync", error: describeError(error) }, "nonce resync failed");
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
        await this.inclusion.settle(head);
        this.checkBookAgainstReceipts(head);
        // what this pass freed is planned again now: the normal path planned this head before the pass ran
        const freed = this.inclusion.takeFreed().filter((key) => !this.busy.has(key));
        if (freed.length > 0 && !this.closed) this.o.replan?.(freed);
        await this.judge(head);
        this.retryBacklog();
        await this.maybeCompact();
      } catch (error) {
        this.o.log.warn(
          { event: "rpc_error", step: "inclusion", error: describeError(error), blockNumber: big(head.blockNumber) },
          "inclusion pass failed; retried at the next head",
        );
      }
    });
  }

  /**
   * Positions our receipts settled that the book, having processed their block, still shows unchanged: evidence that
   * a log answer left events out. Said once each (book_contradicts_receipt), and handed to the watcher.
   */
  private checkBookAgainstReceipts(head: Tick): void {
    for (const c of this.busy.contradictions(head.blockNumber, (key) => this.o.current(key))) {
      this.o.log.warn(
        { event: "book_contradicts_receipt", position: c.key, blockNumber: big(c.block), head: big(head.blockNumber) },
        `our receipt in block ${c.block} settled ${c.key}, but the book still shows it open: not sent again; ` +
          "indexing that block again",
      );
      this.o.contradicted?.(c.block, `position ${c.key} settled by our receipt`);
    }
  }

  /** Follows the book: a changed or closed position may be tried again. */
  onBookChange(change: BookChange): void {
    if (change.type !== "position") return;
    this.cooldown.delete(change.key);
    this.busy.bookChanged(change.key);
  }

  /**
   * The chain reorganised: our attempts mined in the removed blocks go back to pending, and are re-sent at their
   * own nonces (or cancelled) at the next head if the node dropped them; the lanes resync.
   */
  onReorg(): void {
    this.rebuilding = true;
    this.busy.forgetSettled();
    // what we mined lately may be open again in the rebuilt book: its positions stay ours until it is re-checked
    // (never taken from a live attempt that holds one now)
    for (const a of this.inclusion.recentAttempts()) this.reserve(a.targets, a);
    void this.blockWork.add(async () => {
      const recent = this.inclusion.takeRecent();
      const checks = await Promise.all(
        recent.map((a) =>
          this.o.client.getTransactionReceipt({ hash: a.minedHash as Hex }).then(
            (receipt) => receipt,
            (error: unknown) =>
              error instanceof BaseError && error.name === "TransactionReceiptNotFoundError" ? null : "unknown",
          ),
        ),
      );
      recent.forEach((a, i) => {
        const receipt = checks[i];
        const lane = this.lanesByAddress.get(a.signer.toLowerCase());
        if (receipt !== null || !lane) {
          // still mined (or the node cannot say now): settled as it was
          this.inclusion.keep(a);
          this.releaseFrom(a);
          return;
        }
        this.o.log.warn(
          { event: "liquidation_reorged", ...attemptIds(a), txHash: a.minedHash, blockNumber: big(a.minedBlock ?? 0n) },
          `the block holding our transaction at nonce ${a.nonce} was reorganised away; tracking it again`,
        );
        this.inclusion.untally(a);
        transition(a, "pending");
        for (const tx of a.txs) tx.sentAtBlock = 0n;
        this.track(lane, a);
        this.record(lane, recordsOf(a)); // whole: a compaction may have dropped it from the file
      });
      this.inclusion.startAt(undefined);
      await Promise.all(this.o.lanes.map((lane) => this.resync(lane, "reorg")));
    });
  }

  /** Judges every unmined attempt at this head (decide.ts) and fills nonce holes. */
  private async judge(head: Tick): Promise<void> {
    if (this.closed || this.o.lanes.every((lane) => lane.live.size === 0)) return; // idle: not even a fee read
    const ctx = await this.feeContext(head);
    // capped, never 2x base over the ceiling; each transaction is held to its own caps in decideStuck
    const nowFees = currentFees(ctx, this.o.fees);
    const work: Promise<void>[] = [];
    for (const lane of this.o.lanes) {
      for (const a of [...lane.live.values()]) {
        const latest = latestTx(a);
        if (!latest || (a.status !== "pending" && a.status !== "cancelling")) continue;
        // tied to a pending update: judged at its price; tied to one nobody follows any more (gone, or the keeper
        // restarted): cancelled, a landed update having untied its attempts first
        const tied = a.after === undefined ? undefined : (this.o.tiedVerdict?.(a) ?? "cancel");
        if (tied === "cancel") a.after = undefined;
        const wanted = tied === undefined ? this.wanted(a) : undefined;
        const decision = decidePending({
          status: a.status,
          head: head.blockNumber,
          latest,
          wanted,
          stuckBlocks: this.o.stuckBlocks,
          tied,
        });
        if (decision.type === "cancel") work.push(this.cancel(lane, a, latest, nowFees, head));
        else if (decision.type === "check") work.push(this.unstick(lane, a, latest, wanted, nowFees, head));
      }
      // not while the pump hands out nonces: a nonce being signed is no hole
      if (lane.chainNonce !== undefined && !lane.busy) {
        for (const nonce of lane.gaps(lane.chainNonce))
          work.push(this.fillGap(lane, nonce, currentFees(ctx, this.o.fees, CANCEL_GAS), head));
      }
    }
    await Promise.all(work);
  }

  private wanted(a: Attempt): boolean | undefined {
    if (a.targets.length === 0) return false;
    if (this.rebuilding) return undefined;
    let unknown = false;
    for (const t of a.targets) {
      const verdict = this.o.stillLiquidatable(t.key);
      if (verdict === true) return true;
      if (verdict === undefined) unknown = true;
    }
    return unknown ? undefined : false;
  }

  private async cancel(lane: NonceLane, a: Attempt, latest: SignedTx, now: Fees, head: Tick): Promise<void> {
    const resend = decideStuck(latest, true, false, now, this.o.fees, { gas: a.gas, reward: sumRewards(a.targets) });
    if (resend.type !== "replace") return this.holdAtCap(a, latest);
    const tx = await this.signTx(lane, a, "cancel", resend.fees);
    if (!tx) return;
    transition(a, "cancelling");
    await lane.journal.append([txRecord(a, tx), statusRecord(a)]);
    const result = await this.send(tx);
    this.o.log.info(
      {
        event: "liquidation_cancelling",
        ...attemptIds(a),
        txHash: tx.hash,
        replaces: latest.hash,
        ...feeFields(tx),
        result: result.kind,
      },
      `no position of nonce ${a.nonce} is liquidatable any more at block ${head.blockNumber}; replacing it by a cancel`,
    );
  }

  /** A transaction stuck for stuckBlocks: bumped if the node has it, re-sent (or cancelled) if it lost it. */
  private async unstick(
    lane: NonceLane,
    a: Attempt,
    latest: SignedTx,
    wanted: boolean | undefined,
    now: Fees,
    head: Tick,
  ): Promise<void> {
    const isKnown = await this.inclusion.anyKnown(a);
    if (isKnown === undefined) return; // the node cannot be asked now: judged again at the next head
    // a liquidation's bids are held to what its reward and gas allow, as its first fees were
    const resend = decideStuck(latest, isKnown, wanted, now, this.o.fees, {
      gas: a.gas,
      reward: sumRewards(a.targets),
    });
    if (resend.type === "hold") return this.holdAtCap(a, latest);
    if (!isKnown) {
      this.o.log.warn(
        { event: "liquidation_dropped", ...attemptIds(a), txHash: latest.hash, sentAtBlock: big(latest.sentAtBlock) },
        `the node no longer has our transaction at nonce ${a.nonce}; sending it again`,
      );
    }
    if (resend.type === "rebroadcast" && this.overNodeCap.has(latest.hash)) return this.holdAtCap(a, latest);
    if (resend.type === "rebroadcast") {
      latest.sentAtBlock = head.blockNumber;
      await lane.journal.append([txRecord(a, latest)]);
      const result = await broadcastAll(this.broadcastClients, latest.raw, latest.hash);
      this.stats.resent++;
      this.o.log.info(
        { event: "liquidation_resent", ...attemptIds(a), txHash: latest.hash, result: result.kind },
        `re-sent the same transaction at nonce ${a.nonce}`,
      );
      return;
    }
    const tx = await this.signTx(lane, a, resend.purpose, resend.fees);
    if (!tx) return;
    if (resend.purpose === "cancel" && a.status !== "cancelling") transition(a, "cancelling");
    await lane.journal.append([txRecord(a, tx), statusRecord(a)]);
    const result = await this.send(tx);
    const taken = result.kind === "accepted" || result.kind === "uncertain";
    if (taken && resend.type === "resign") this.stats.resent++;
    else if (taken) this.stats.replaced++;
    const event =
      resend.purpose === "cancel" && latest.purpose === "liquidate"
        ? "liquidation_cancelling"
        : resend.type === "resign"
          ? "liquidation_resent"
          : "liquidation_replaced";
    this.o.log.info(
      {
        event,
        ...attemptIds(a),
        txHash: tx.hash,
        replaces: latest.hash,
        purpose: tx.purpose,
        ...feeFields(tx),
        previousMaxFeePerGas: big(latest.maxFeePerGas),
        previousMaxPriorityFeePerGas: big(latest.maxPriorityFeePerGas),
        stuckBlocks: big(head.blockNumber - latest.sentAtBlock),
        result: result.kind,
      },
      `${tx.purpose === "cancel" ? "cancel" : "liquidation"} at nonce ${a.nonce} ${
        resend.type === "resign" ? "signed again" : "replaced with higher fees"
      } (max fee ${tx.maxFeePerGas}, tip ${tx.maxPriorityFeePerGas})`,
    );
  }

  /** A per-head broadcast; what a node refused for its fee cap is remembered, so the same bytes are not sent again. */
  private async send(tx: SignedTx): Promise<SendResult> {
    const result = await broadcastAll(this.broadcastClients, tx.raw, tx.hash);
    if (result.kind === "tx_fee_cap") this.overNodeCap.add(tx.hash);
    return result;
  }

  private holdAtCap(a: Attempt, latest: SignedTx): void {
    this.o.log.warn(
      { event: "liquidation_stuck", ...attemptIds(a), txHash: latest.hash, reason: "at_fee_cap", ...feeFields(latest) },
      `transaction at nonce ${a.nonce} is stuck and the fee ceiling allows no higher bid; waiting`,
    );
  }

  /** A nonce below our pending ones that holds nothing of ours: a cancel fills it so the later ones can land. */
  private async fillGap(lane: NonceLane, nonce: number, now: Fees, head: Tick): Promise<void> {
    const filler: Attempt = {
      id: `${this.runId}-${++this.seq}`,
      signer: lane.address,
      nonce,
      kind: "single",
      targets: [],
      to: lane.address,
      data: "0x",
      gas: 21_000n,
      txs: [],
      status: "signed",
      createdAtBlock: head.blockNumber,
    };
    this.attempts.set(filler.id, filler);
    this.track(lane, filler);
    const tx = await this.signTx(lane, filler, "cancel", now);
    if (!tx) {
      transition(filler, "failed");
      this.untrack(lane, filler);
      return;
    }
    await lane.journal.append([attemptRecord(filler), txRecord(filler, tx)]);
    const result = await this.send(tx);
    transition(filler, "pending");
    await lane.journal.append([statusRecord(filler)]);
    this.o.log.info(
      { event: "nonce_gap_filled", signer: lane.address, nonce, txHash: tx.hash, result: result.kind },
      `nonce ${nonce} of ${lane.address} held nothing of ours below pending ones; filled with a cancel`,
    );
  }

  private retryBacklog(): void {
    if (this.closed || this.backlog.length === 0) return;
    const units = this.backlog;
    this.backlog = [];
    for (const unit of units) {
      if (unit.plan?.state === "gone" && unit.after !== undefined) {
        this.release(unit.targets.map((t) => t.key));
        continue;
      }
      // planned at an earlier head: a single call whose position is settled would revert; a batch skips what is
      // gone, so it goes while any of its positions is still liquidatable
      const gone = unit.targets.map((t) => this.o.stillLiquidatable(t.key) === false);
      if (unit.kind === "single" ? gone[0] : gone.every(Boolean)) {
        this.release(unit.targets.map((t) => t.key));
        continue;
      }
      this.dispatch(unit);
    }
  }

  private async refreshBalance(lane: NonceLane): Promise<void> {
    const balance = await this.o.client.getBalance({ address: lane.address });
    lane.balance = balance;
    if (balance < this.floor) this.markLow(lane, balance);
    else if (lane.lowBalance) {
      lane.lowBalance = false;
      this.o.log.info(
        { event: "signer_balance_ok", signer: lane.address, balanceWei: big(balance) },
        `signer ${lane.address} is funded again and takes work`,
      );
    }
  }

  private markLow(lane: NonceLane, balance: bigint, error?: string): void {
    if (lane.lowBalance) return;
    lane.lowBalance = true;
    const others = this.o.lanes.filter((l) => !l.lowBalance).length;
    this.o.log.warn(
      {
        event: "signer_low_balance",
        signer: lane.address,
        balanceWei: big(balance),
        floorWei: big(this.floor),
        error,
        signersLeft: others,
      },
      `signer ${lane.address} is low on funds and is skipped; ${others} other signer(s) take over`,
    );
  }

  private async maybeCompact(): Promise<void> {
    for (const lane of this.o.lanes) {
      if (lane.journal.recordsWritten < COMPACT_AFTER_RECORDS || lane.busy) continue;
      await lane.journal.compact(() => [...lane.live.values(), ...this.inclusion.recentAttempts(lane.address)]);
    }
    for (const [id, a] of this.attempts) if (isTerminal(a.status)) this.attempts.delete(id);
  }

  // -------------------------------------------------------------------------------------------- bookkeeping

  /** A journal write whose failure is logged, never left unhandled (the records are also in memory). */
  private record(lane: NonceLane, records: readonly JournalRecord[]): void {
    lane.journal.append(records).catch((error: unknown) => {
      this.o.log.error(
        { event: "executor_error", signer: lane.address, step: "journal", error: describeError(error) },
        `writing the journal of ${lane.address} failed`,
      );
    });
  }

  private track(lane: NonceLane, a: Attempt): void {
    lane.live.set(a.nonce, a);
    this.reserve(a.targets, a);
  }

  private untrack(lane: NonceLane, a: Attempt): void {
    if (lane.live.get(a.nonce) === a) lane.live.delete(a.nonce);
  }

  /** Claims the positions for `by`; those a live attempt of ours already holds are never taken (returned). */
  private reserve(targets: readonly TargetPlan[], by: Busy): string[] {
    return this.busy.claim(
      targets.map((t) => t.key),
      by,
    );
  }

  /** Frees the attempt's positions that it (still) holds. */
  private releaseFrom(a: Attempt): void {
    this.busy.release(
      a.targets.map((t) => t.key),
      a,
    );
  }

  /** Frees positions the planning pipeline holds (an attempt's are freed by releaseFrom only). */
  private release(keys: readonly string[]): void {
    this.busy.release(keys, "planning");
  }

  private refuse(
    position: TrackedPosition | undefined,
    block: bigint,
    reason: string,
    detail: Record<string, unknown>,
  ): void {
    if (!position) return;
    this.stats.skipped++;
    this.busy.release([position.key], "planning");
    this.cooldown.set(position.key, { position, until: block + REFUSED_COOLDOWN_BLOCKS });
    this.o.log.info(
      { event: "liquidation_skipped", trader: position.trader, marketId: position.marketId, reason, ...detail },
      `not liquidating ${this.o.marketName(position.marketId)} position of ${position.trader}: ${reason}`,
    );
  }

  /**
   * A simulation the RPC did not answer (transport failure, timeout) is no verdict on the liquidation: the positions
   * are freed with no cooldown, to be planned again at the next head, and the failure is an rpc_error.
   */
  private simulationUnanswered(error: unknown, group: readonly Candidate[]): boolean {
    if (
      classifyRpcError(error) !== "timeout" &&
      !(error instanceof BaseError && error.walk((e) => e instanceof HttpRequestError))
    )
      return false;
    this.release(group.map((c) => c.position.key));
    this.o.log.warn(
      { event: "rpc_error", step: "simulate", positions: group.length, error: describeError(error) },
      "simulation got no answer from the RPC; the positions are planned again at the next head",
    );
    return true;
  }

  private unexpected(error: unknown, group: readonly Candidate[]): void {
    this.o.log.error(
      { event: "executor_error", positions: group.length, error: describeError(error) },
      "planning a liquidation failed unexpectedly",
    );
    this.release(group.map((c) => c.position.key));
  }

  private async feeContext(tick: { blockNumber: bigint; baseFeePerGas: bigint }): Promise<FeeContext> {
    if (this.feeCache?.block === tick.blockNumber) return this.feeCache.ctx;
    const ctx = (async (): Promise<FeeContext> => {
      let observed: bigint | undefined;
      if (this.o.tipSource === "feeHistory") {
        try {
          const history = await this.o.client.getFeeHistory({
            blockCount: 1,
            blockNumber: tick.blockNumber,
            rewardPercentiles: [this.o.tipPercentile],
          });
          observed = history.reward?.[0]?.[0];
        } catch {
          observed = undefined;
        }
      }
      return { baseFeePerGas: tick.baseFeePerGas, priorityFeePerGas: pickTip(this.o.fees, observed) };
    })();
    this.feeCache = { block: tick.blockNumber, ctx };
    return ctx;
  }

  private describeTargets(a: Attempt): string {
    if (a.targets.length !== 1) return `${a.targets.length} positions`;
    const t = a.targets[0] as TargetPlan;
    return `${this.o.marketName(t.marketId)} position of ${t.trader}`;
  }

  // ------------------------------------------------------------------------------------------------- stopping

  /** Stops taking work: queued simulations are dropped, nothing new is signed. Idempotent. */
  close(): void {
    this.closed = true;
    this.simulations.clear();
    for (const unit of this.backlog) this.release(unit.targets.map((t) => t.key));
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

export { SignerError } from "./signers.ts";

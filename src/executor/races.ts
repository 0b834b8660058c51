/**
 * Races for contested liquidations (issue 18): what the executor does when another sender's pending liquidation of
 * one of our targets is seen in the pool (competitors.ts), and what it remembers of the races it ran.
 *
 * - At planning: a contested target bids (bidding.ts `bid`), and is sent first, as a single (planning.ts).
 * - When a competitor's bid on a target of a pending liquidation of ours appears (at once, in the executor's
 *   serial queue, and again at every head for what is still contested): on a chain ordered by priority fee, ours is
 *   replaced at its nonce by one that outbids it (`outbid`: the node's replacement rule, a tip above the
 *   competitor's, never below minProfit), `liquidation_outbid`; when that does not pay and every target of ours is
 *   contested, it is withdrawn: cancelled at its nonce before it is mined, `liquidation_withdrawn`. A batch with
 *   uncontested targets stays: the contract skips what the competitor took, and the rest is still ours. On a
 *   first-come chain a higher tip buys nothing, and nothing is replaced.
 * - Outcomes: each contested target's result (won or lost, by competitor), and a short list of the last races for
 *   the status view. Gas of transactions that liquidated nothing, and of cancels that withdrew, is gas wasted on
 *   lost races (ExecutorStats.lostRaceGasWei).
 */
import type { Address } from "viem";
import { describeError } from "../chain/errors.ts";
import { big } from "../ops/logger.ts";
import type { Tick } from "../watcher/watcher.ts";
import { type Attempt, latestTx, type TargetPlan } from "./attempt.ts";
import type { Attempts } from "./attempts.ts";
import { type Contest, outbid } from "./bidding.ts";
import { type CompetitorBid, CompetitorWatch } from "./competitors.ts";
import { currentFees, effectiveTip, type FeeContext } from "./fees.ts";
import { attemptIds, feeFields, sumRewards } from "./fields.ts";
import { txRecord } from "./journal.ts";
import type { NonceLane } from "./lane.ts";
import { decideStuck } from "./pendingDecision.ts";
import type { Sender } from "./sender.ts";
import type { ExecutorOptions, ExecutorStats } from "./types.ts";

/** Where competitors' pending bids are read: CompetitorWatch. */
export interface ContestSource {
  /** The highest live competing bid on a target, by tip. */
  contest(key: string): CompetitorBid | undefined;
  /** At each head: old bids forgotten. */
  onHead(blockNumber: bigint): void;
  /** Targets with a live competing bid. */
  readonly contested: number;
}

/** One race, as the status view shows it. */
export interface RaceRecord {
  /** ISO time it was decided. */
  readonly at: string;
  readonly trader: string;
  readonly marketId: number;
  /** won/lost: mined; outbid: our bid raised over the competitor's; withdrawn: ours cancelled before it was mined. */
  readonly result: "won" | "lost" | "outbid" | "withdrawn";
  /** The competitor (lower-case sender), "unknown" when its transaction was never seen in the pool. */
  readonly competitor: string;
  readonly competitorTipWei?: string;
  readonly ourTipWei?: string;
  readonly txHash?: string;
}

/** Races by competitor. */
export interface RaceTally {
  won: number;
  lost: number;
}

const RECENT = 20;

export interface RacesHost {
  readonly o: ExecutorOptions;
  readonly stats: ExecutorStats;
  readonly attempts: Attempts;
  senderOf(lane: NonceLane): Sender;
  closed(): boolean;
  head(): Tick | undefined;
  feeContext(tick: Tick): Promise<FeeContext>;
  /** Our signers and liquidator contract: never competitors. */
  isOurs(address: Address): boolean;
  /** Runs a job in the executor's per-head queue, never beside a head's pass. */
  serial(job: () => Promise<void>): void;
}

export class Races {
  /** Wins and losses of contested targets, by competitor. */
  readonly byCompetitor = new Map<string, RaceTally>();
  /** The last races, newest last. */
  readonly recent: RaceRecord[] = [];
  /** Attempts withdrawn (their cancel's gas is gas lost to a race). */
  private readonly withdrawn = new WeakSet<Attempt>();

  /**
   * The pool watch (with bidding on, and an adapter that decodes competitors' calls), for the run to start and stop;
   * undefined when the options bring their own source (tests) or bidding is off.
   */
  readonly watch: CompetitorWatch | undefined;

  constructor(private readonly h: RacesHost) {
    const { o } = h;
    this.watch =
      o.competitors === undefined && o.bidding !== undefined && o.protocol.competitorTargets !== undefined
        ? new CompetitorWatch({
            protocol: o.protocol,
            log: o.log,
            ours: (address) => h.isOurs(address),
            head: () => h.head()?.blockNumber ?? 0n,
            onBid: (keys) => this.bidsSeen(keys),
          })
        : undefined;
  }

  private get source(): ContestSource | undefined {
    return this.h.o.competitors ?? this.watch;
  }

  /**
   * A competitor's pending bid on these targets was just seen: our pending liquidations of them are outbid or
   * withdrawn now, in the serial queue, not at the next head.
   */
  bidsSeen(keys: readonly string[]): void {
    if (this.h.closed() || !this.h.o.bidding) return;
    const ours = keys.filter((k) => this.h.attempts.claims.has(k));
    if (ours.length > 0) this.answerSoon(new Set(ours));
  }

  /**
   * A lane's pump has sent what it had: a bid seen while those were being signed found nothing pending to answer,
   * answered now (all of them, not only the pump's first unit).
   */
  afterSend(): void {
    if (this.h.o.bidding && (this.source?.contested ?? 0) > 0 && !this.h.closed()) this.answerSoon();
  }

  private answerSoon(keys?: ReadonlySet<string>): void {
    this.h.serial(() =>
      this.answer(keys).catch((error: unknown) => {
        this.h.o.log.warn(
          { event: "rpc_error", step: "outbid", error: describeError(error) },
          "answering a competitor's bid failed; answered again at the next head",
        );
      }),
    );
  }

  /** A head: bids older than their ttl are forgotten. */
  onHead(blockNumber: bigint): void {
    this.source?.onHead(blockNumber);
  }

  /**
   * The highest competing bid over these targets (undefined: none is contested, or nobody watches the pool); its tip
   * is what it pays at `baseFee` (min(tip, max fee - base fee)), when given.
   */
  contest(
    targets: readonly Pick<TargetPlan, "key">[],
    baseFee?: bigint,
  ): (Contest & { readonly bid: CompetitorBid }) | undefined {
    const source = this.source;
    if (!source) return undefined;
    let best: { bid: CompetitorBid; tip: bigint } | undefined;
    for (const t of targets) {
      const bid = source.contest(t.key);
      if (!bid) continue;
      const tip = baseFee === undefined ? bid.maxPriorityFeePerGas : effectiveTip(bid, baseFee);
      if (!best || tip > best.tip) best = { bid, tip };
    }
    return best ? { competitorTip: best.tip, bid: best.bid } : undefined;
  }

  contested(key: string): boolean {
    return this.source?.contest(key) !== undefined;
  }

  /**
   * Answers the competing bids on our pending liquidations: all of them (at a head), or those holding one of `keys`
   * (a bid just seen). Run in the executor's serial queue, never beside a head's pass.
   */
  async answer(keys?: ReadonlySet<string>): Promise<void> {
    const { o } = this.h;
    const head = this.h.head();
    // without a gas token price no profit is known: nothing is bid, and nothing judged lost on a guess
    if (!head || this.h.closed() || !this.source || !o.bidding || o.fees.gasTokenPrice === undefined) return;
    const work: Promise<void>[] = [];
    let ctx: Promise<FeeContext> | undefined;
    for (const lane of o.lanes) {
      for (const a of lane.live.values()) {
        const latest = latestTx(a);
        if (a.status !== "pending" || latest?.purpose !== "liquidate") continue;
        if (keys && !a.targets.some((t) => keys.has(t.key))) continue;
        const contest = this.contest(a.targets, head.baseFeePerGas);
        if (!contest) continue;
        const ours = effectiveTip(latest, head.baseFeePerGas);
        if (ours > contest.competitorTip || o.bidding.ordering === "fcfs") continue; // ahead, or a tip buys nothing
        ctx ??= this.h.feeContext(head);
        work.push(ctx.then((c) => this.answerOne(lane, a, contest, c, head)));
      }
    }
    await Promise.all(work);
  }

  private async answerOne(
    lane: NonceLane,
    a: Attempt,
    contest: Contest & { readonly bid: CompetitorBid },
    ctx: FeeContext,
    head: Tick,
  ): Promise<void> {
    const { o, attempts } = this.h;
    const latest = latestTx(a);
    if (a.status !== "pending" || !latest || latest.purpose !== "liquidate" || !o.bidding) return;
    const value = { reward: sumRewards(a.targets), gas: a.gas, gasLimit: a.gas, value: a.value };
    const plan = outbid(latest, contest.competitorTip, ctx, o.fees, o.bidding, value);
    const sender = this.h.senderOf(lane);
    const competitor = {
      competitor: contest.bid.from,
      competitorTx: contest.bid.hash,
      competitorTip: big(contest.competitorTip),
    };
    if (plan.ok) {
      const tx = await sender.sign(a, "liquidate", plan);
      if (!tx) return;
      await attempts.setStatus(a, a.status, { also: [txRecord(a, tx)] });
      const result = await sender.send(tx);
      this.h.stats.outbid++;
      for (const t of a.targets) {
        if (this.contested(t.key)) this.remember(t, "outbid", contest.bid.from, contest.competitorTip, tx.hash, tx);
      }
      o.log.info(
        {
          event: "liquidation_outbid",
          ...attemptIds(a),
          txHash: tx.hash,
          replaces: latest.hash,
          ...competitor,
          ...feeFields(tx),
          result: result.kind,
        },
        `a competitor (${contest.bid.from}) bids a tip of ${contest.competitorTip} wei for our target(s): nonce ` +
          `${a.nonce} replaced with a tip of ${tx.maxPriorityFeePerGas} wei`,
      );
      return;
    }
    // outbidding it does not pay. A tie (both at what the reward pays: two copies of this keeper) is kept by the
    // lower sender address and left by the other, the same rule on both sides: one wins, neither pays to skip.
    const ours = effectiveTip(latest, head.baseFeePerGas);
    if (ours === contest.competitorTip && a.signer.toLowerCase() < contest.bid.from.toLowerCase()) return;
    // withdrawn when every target is contested; a batch keeps its uncontested ones
    if (!a.targets.every((t) => this.contested(t.key))) {
      o.log.debug(
        { event: "liquidation_contested", ...attemptIds(a), ...competitor, reason: plan.reason },
        `part of nonce ${a.nonce} is contested beyond what it pays to bid; the rest is still ours`,
      );
      return;
    }
    const now = currentFees(ctx, o.fees);
    const cancel = decideStuck(latest, true, false, now, o.fees, { gas: a.gas, reward: value.reward, value: a.value });
    if (cancel.type !== "replace") return;
    const tx = await sender.sign(a, "cancel", cancel.fees);
    if (!tx) return;
    await attempts.setStatus(a, "cancelling", { also: [txRecord(a, tx)] });
    const result = await sender.send(tx);
    this.withdrawn.add(a);
    this.h.stats.withdrawn++;
    for (const t of a.targets) this.remember(t, "withdrawn", contest.bid.from, contest.competitorTip, tx.hash);
    o.log.info(
      {
        event: "liquidation_withdrawn",
        ...attemptIds(a),
        txHash: tx.hash,
        replaces: latest.hash,
        ...competitor,
        reason: plan.reason,
        ...feeFields(tx),
        result: result.kind,
        blockNumber: big(head.blockNumber),
      },
      `a competitor (${contest.bid.from}) outbids what nonce ${a.nonce} can pay (${plan.reason}): cancelled before ` +
        "it is mined",
    );
  }

  /** A contested target's outcome, mined: counted for its competitor (a target nobody contested is no race). */
  settled(t: TargetPlan, result: "won" | "lost", txHash: string): void {
    const bid = this.source?.contest(t.key);
    if (!bid && result === "won") return;
    const competitor = bid?.from ?? "unknown";
    const tally = this.byCompetitor.get(competitor) ?? { won: 0, lost: 0 };
    tally[result]++;
    this.byCompetitor.set(competitor, tally);
    this.remember(t, result, competitor, bid?.maxPriorityFeePerGas, txHash);
  }

  /** Whether the attempt's cancel withdrew it from a race. */
  wasWithdrawn(a: Attempt): boolean {
    return this.withdrawn.has(a);
  }

  private remember(
    t: TargetPlan,
    result: RaceRecord["result"],
    competitor: string,
    competitorTip: bigint | undefined,
    txHash: string,
    ours?: { readonly maxPriorityFeePerGas: bigint },
  ): void {
    this.recent.push({
      at: new Date().toISOString(),
      trader: t.trader,
      marketId: t.marketId,
      result,
      competitor,
      competitorTipWei: competitorTip === undefined ? undefined : competitorTip.toString(),
      ourTipWei: ours?.maxPriorityFeePerGas.toString(),
      txHash,
    });
    if (this.recent.length > RECENT) this.recent.splice(0, this.recent.length - RECENT);
  }
}

/** Rewards of what we liquidated less gas and oracle fees paid, WAD collateral; undefined: no gas token price. */
export function netProfit(stats: ExecutorStats, gasTokenPrice: bigint | undefined): bigint | undefined {
  if (gasTokenPrice === undefined) return undefined;
  return stats.rewardsWad - ((stats.gasPaidWei + stats.valuePaidWei) * gasTokenPrice) / 10n ** 18n;
}

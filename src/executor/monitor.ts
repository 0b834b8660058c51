/**
 * The per-head monitor: after the inclusion pass (inclusion.ts) settled what was mined, each unmined attempt is
 * judged by the pure rules of pendingDecision.ts and acted on: cancelled when no target is wanted any more, bumped
 * when stuck, re-sent when the node lost it, held at the fee ceiling; a nonce hole under pending ones is filled by a
 * cancel. After a reorganisation it re-checks the attempts mined lately (`reorged`). Signing and broadcasting go
 * through each key's sender.
 */
import { BaseError, type Hex, type TransactionReceipt } from "viem";
import { describeError } from "../chain/errors.ts";
import { big } from "../ops/logger.ts";
import type { Tick } from "../watcher/watcher.ts";
import { type Attempt, latestTx, type SignedTx } from "./attempt.ts";
import type { Attempts } from "./attempts.ts";
import { CANCEL_GAS, currentFees, type FeeContext, type Fees } from "./fees.ts";
import { attemptIds, feeFields, sumRewards } from "./fields.ts";
import type { Inclusion } from "./inclusion.ts";
import { txRecord } from "./journal.ts";
import type { NonceLane } from "./lane.ts";
import { decidePending, decideStuck } from "./pendingDecision.ts";
import type { Sender } from "./sender.ts";
import { COMPACT_AFTER_RECORDS, type ExecutorOptions, type ExecutorStats } from "./types.ts";

/** What the monitor needs of the executor. */
export interface MonitorHost {
  readonly o: ExecutorOptions;
  readonly stats: ExecutorStats;
  readonly attempts: Attempts;
  readonly inclusion: Inclusion;
  senderOf(lane: NonceLane): Sender;
  closed(): boolean;
  /** Between a reorganisation and the next head: the book is being rebuilt and says nothing about positions. */
  rebuilding(): boolean;
  /** The last head the executor saw. */
  head(): Tick | undefined;
  feeContext(tick: Tick): Promise<FeeContext>;
}

export class Monitor {
  /** Attempts mined before a reorganisation whose receipt could not be looked up: asked again at the next head. */
  private unsure: Attempt[] = [];

  constructor(private readonly h: MonitorHost) {}

  /** Looks up again the attempts whose re-check after a reorganisation got no answer. */
  async recheck(): Promise<void> {
    if (this.unsure.length === 0) return;
    const again = this.unsure;
    this.unsure = [];
    await this.reorged(again);
  }

  /** Judges every unmined attempt at this head (pendingDecision.ts) and fills nonce holes. */
  async judge(head: Tick): Promise<void> {
    const { o } = this.h;
    if (this.h.closed() || o.lanes.every((lane) => lane.live.size === 0)) return; // idle: not even a fee read
    const ctx = await this.h.feeContext(head);
    // capped, never 2x base over the ceiling; each transaction is held to its own caps in decideStuck
    const nowFees = currentFees(ctx, o.fees);
    const work: Promise<void>[] = [];
    for (const lane of o.lanes) {
      for (const a of [...lane.live.values()]) {
        const latest = latestTx(a);
        if (!latest || (a.status !== "pending" && a.status !== "cancelling")) continue;
        // tied to a pending update: judged at its price; tied to one nobody follows any more (gone, or the keeper
        // restarted): cancelled, a landed update having untied its attempts first
        const tied = a.after === undefined ? undefined : (o.tiedVerdict?.(a) ?? "cancel");
        if (tied === "cancel") a.after = undefined;
        const wanted = tied === undefined ? this.wanted(a) : undefined;
        const decision = decidePending({
          status: a.status,
          head: head.blockNumber,
          latest,
          wanted,
          stuckBlocks: o.stuckBlocks,
          tied,
        });
        if (decision.type === "cancel") work.push(this.cancel(lane, a, latest, nowFees, head));
        else if (decision.type === "check") work.push(this.unstick(lane, a, latest, wanted, nowFees, head));
      }
      // not while the pump hands out nonces: a nonce being signed is no hole
      if (lane.chainNonce !== undefined && !lane.busy) {
        for (const nonce of lane.gaps(lane.chainNonce))
          work.push(this.fillGap(lane, nonce, currentFees(ctx, o.fees, CANCEL_GAS), head));
      }
    }
    await Promise.all(work);
  }

  private wanted(a: Attempt): boolean | undefined {
    if (a.targets.length === 0) return false;
    if (this.h.o.protocol.priceExpired?.(a.data) === true) {
      // its attached prices are too old for the next block: it would revert there; cancelled, planned again fresh
      this.h.o.log.info(
        { event: "liquidation_price_expired", ...attemptIds(a) },
        `the prices nonce ${a.nonce} carries are too old for the next block: cancelled, planned again with fresh ones`,
      );
      return false;
    }
    if (this.h.rebuilding()) return undefined;
    let unknown = false;
    for (const t of a.targets) {
      const verdict = this.h.o.stillLiquidatable(t.key);
      if (verdict === true) return true;
      if (verdict === undefined) unknown = true;
    }
    return unknown ? undefined : false;
  }

  /** Replaces the attempt's liquidation by a cancel at its nonce (no target is wanted any more). */
  async cancel(lane: NonceLane, a: Attempt, latest: SignedTx, now: Fees, head: Tick): Promise<void> {
    const resend = decideStuck(latest, true, false, now, this.h.o.fees, {
      gas: a.gas,
      reward: sumRewards(a.targets),
      value: a.value,
    });
    if (resend.type !== "replace") return this.holdAtCap(a, latest);
    const sender = this.h.senderOf(lane);
    const tx = await sender.sign(a, "cancel", resend.fees);
    if (!tx) return;
    await this.h.attempts.setStatus(a, "cancelling", { also: [txRecord(a, tx)] });
    const result = await sender.send(tx);
    this.h.o.log.info(
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
    const { o, stats, attempts } = this.h;
    const sender = this.h.senderOf(lane);
    const isKnown = await this.h.inclusion.anyKnown(a);
    if (isKnown === undefined) return; // the node cannot be asked now: judged again at the next head
    // a liquidation's bids are held to what its reward and gas allow, as its first fees were
    const resend = decideStuck(latest, isKnown, wanted, now, o.fees, {
      gas: a.gas,
      reward: sumRewards(a.targets),
      value: a.value,
    });
    if (resend.type === "hold") return this.holdAtCap(a, latest);
    if (!isKnown) {
      o.log.warn(
        { event: "liquidation_dropped", ...attemptIds(a), txHash: latest.hash, sentAtBlock: big(latest.sentAtBlock) },
        `the node no longer has our transaction at nonce ${a.nonce}; sending it again`,
      );
    }
    if (resend.type === "rebroadcast" && sender.refusedForCap(latest.hash)) return this.holdAtCap(a, latest);
    if (resend.type === "rebroadcast") {
      latest.sentAtBlock = head.blockNumber;
      await attempts.journalTx(lane, a, latest);
      const result = await sender.broadcast(latest);
      stats.resent++;
      o.log.info(
        { event: "liquidation_resent", ...attemptIds(a), txHash: latest.hash, result: result.kind },
        `re-sent the same transaction at nonce ${a.nonce}`,
      );
      return;
    }
    const tx = await sender.sign(a, resend.purpose, resend.fees);
    if (!tx) return;
    const to = resend.purpose === "cancel" && a.status !== "cancelling" ? "cancelling" : a.status;
    await attempts.setStatus(a, to, { also: [txRecord(a, tx)] });
    const result = await sender.send(tx);
    const taken = result.kind === "accepted" || result.kind === "uncertain";
    if (taken && resend.type === "resign") stats.resent++;
    else if (taken) stats.replaced++;
    const event =
      resend.purpose === "cancel" && latest.purpose === "liquidate"
        ? "liquidation_cancelling"
        : resend.type === "resign"
          ? "liquidation_resent"
          : "liquidation_replaced";
    o.log.info(
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

  private holdAtCap(a: Attempt, latest: SignedTx): void {
    this.h.o.log.warn(
      { event: "liquidation_stuck", ...attemptIds(a), txHash: latest.hash, reason: "at_fee_cap", ...feeFields(latest) },
      `transaction at nonce ${a.nonce} is stuck and the fee ceiling allows no higher bid; waiting`,
    );
  }

  /** A nonce below our pending ones that holds nothing of ours: a cancel fills it so the later ones can land. */
  private async fillGap(lane: NonceLane, nonce: number, now: Fees, head: Tick): Promise<void> {
    const { attempts } = this.h;
    const filler = attempts.open(lane, {
      nonce,
      kind: "single",
      targets: [],
      to: lane.address,
      data: "0x",
      gas: 21_000n,
      createdAtBlock: head.blockNumber,
    });
    const sender = this.h.senderOf(lane);
    const tx = await sender.sign(filler, "cancel", now);
    if (!tx) {
      await attempts.setStatus(filler, "failed");
      return;
    }
    await attempts.journalIntents(lane, [{ attempt: filler, tx }]);
    const result = await sender.send(tx);
    await attempts.setStatus(filler, "pending");
    this.h.o.log.info(
      { event: "nonce_gap_filled", signer: lane.address, nonce, txHash: tx.hash, result: result.kind },
      `nonce ${nonce} of ${lane.address} held nothing of ours below pending ones; filled with a cancel`,
    );
  }

  /**
   * After a reorganisation: each attempt mined lately is looked up again. One whose receipt is gone goes back to
   * pending (liquidation_reorged), tracked and journaled whole, to be re-sent or cancelled at the next head. One whose
   * carried prices the next block would refuse is cancelled now: the node keeps a reorganised transaction in its pool,
   * and the next block would mine it again, to revert there, before the next head's pass judged it.
   */
  async reorged(recent: readonly Attempt[]): Promise<void> {
    const { o, attempts, inclusion } = this.h;
    const checks = await Promise.all(
      recent.map((a) =>
        o.client.getTransactionReceipt({ hash: a.minedHash as Hex }).then(
          (receipt): TransactionReceipt | null | "unknown" => receipt,
          (error: unknown) =>
            error instanceof BaseError && error.name === "TransactionReceiptNotFoundError" ? null : "unknown",
        ),
      ),
    );
    const expired: [NonceLane, Attempt][] = [];
    recent.forEach((a, i) => {
      const receipt = checks[i];
      const lane = attempts.laneOf(a);
      if (receipt === "unknown" && lane) {
        // the node cannot say now: neither settled nor freed on a guess; its positions stay held, asked again
        this.unsure.push(a);
        o.log.warn(
          { event: "rpc_error", step: "reorg_check", ...attemptIds(a), txHash: a.minedHash },
          `could not look up whether our transaction at nonce ${a.nonce} is still mined; asked again at the next head`,
        );
        return;
      }
      if (receipt !== null || !lane) {
        // still mined: settled as it was
        inclusion.keep(a);
        attempts.releaseFrom(a);
        return;
      }
      o.log.warn(
        { event: "liquidation_reorged", ...attemptIds(a), txHash: a.minedHash, blockNumber: big(a.minedBlock ?? 0n) },
        `the block holding our transaction at nonce ${a.nonce} was reorganised away; tracking it again`,
      );
      inclusion.untally(a);
      for (const tx of a.txs) tx.sentAtBlock = 0n;
      // whole: a compaction may have dropped it from the file
      void attempts.setStatus(a, "pending", { whole: true, background: true });
      attempts.track(lane, a);
      if (o.protocol.priceExpired?.(a.data) === true) expired.push([lane, a]);
    });
    await this.cancelExpired(expired);
  }

  /**
   * Cancels at once the un-mined attempts whose carried prices are too old for the next block. A failure (the fee
   * read, a signature, the broadcast) is logged and left to the next head's pass, which judges them the same way.
   */
  private async cancelExpired(expired: readonly (readonly [NonceLane, Attempt])[]): Promise<void> {
    const head = this.h.head();
    if (expired.length === 0 || !head || this.h.closed()) return;
    try {
      await this.cancelNow(expired, head);
    } catch (error) {
      this.h.o.log.warn(
        { event: "rpc_error", step: "reorg_cancel", error: describeError(error) },
        "could not cancel the reorganised liquidations whose prices went stale; the next head's pass judges them",
      );
    }
  }

  private async cancelNow(expired: readonly (readonly [NonceLane, Attempt])[], head: Tick): Promise<void> {
    const nowFees = currentFees(await this.h.feeContext(head), this.h.o.fees);
    await Promise.all(
      expired.map(([lane, a]) => {
        const latest = latestTx(a);
        if (!latest) return Promise.resolve();
        this.h.o.log.info(
          { event: "liquidation_price_expired", ...attemptIds(a) },
          `the prices nonce ${a.nonce} carries are too old for the next block, and a reorganisation put it back in ` +
            "the pool: cancelled now, planned again with fresh ones",
        );
        return this.cancel(lane, a, latest, nowFees, head);
      }),
    );
  }

  /**
   * Positions our receipts settled that the book, having processed their block, still shows unchanged: evidence that
   * a log answer left events out. Said once each (book_contradicts_receipt), and handed to the watcher.
   */
  checkBookAgainstReceipts(head: Tick): void {
    for (const c of this.h.attempts.claims.contradictions(head.blockNumber, (key) => this.h.o.current(key))) {
      this.h.o.log.warn(
        { event: "book_contradicts_receipt", position: c.key, blockNumber: big(c.block), head: big(head.blockNumber) },
        `our receipt in block ${c.block} settled ${c.key}, but the book still shows it open: not sent again; ` +
          "indexing that block again",
      );
      this.h.o.contradicted?.(c.block, `position ${c.key} settled by our receipt`);
    }
  }

  /** Compacts a journal past COMPACT_AFTER_RECORDS to its live attempts and those kept for a reorganisation. */
  async maybeCompact(): Promise<void> {
    for (const lane of this.h.o.lanes) {
      if (lane.journal.recordsWritten < COMPACT_AFTER_RECORDS || lane.busy) continue;
      await lane.journal.compact(() => [...lane.live.values(), ...this.h.inclusion.recentAttempts(lane.address)]);
    }
    this.h.attempts.prune();
  }
}

/**
 * One sender per key: it alone hands out its lane's nonces and signs at them. Its pump takes everything queued,
 * signs each unit at the next nonce, journals the group (intents and transactions, one fsync) and only then
 * broadcasts it; the first answer settles each attempt's first status (afterFirstSend). The per-head monitor signs
 * its cancels and replacements through `sign` and broadcasts them through `send`.
 */
import type { Hex, PublicClient } from "viem";
import { describeError } from "../chain/errors.ts";
import { big } from "../ops/logger.ts";
import type { Tick } from "../watcher/watcher.ts";
import type { Attempt, SignedTx } from "./attempt.ts";
import type { Attempts } from "./attempts.ts";
import { broadcastAll, type SendResult } from "./broadcast.ts";
import { CANCEL_GAS, checkFees, type Fees } from "./fees.ts";
import { attemptIds, describeTargets, feeFields, quote, sumRewards, targetIds } from "./fields.ts";
import type { JournalRecord } from "./journal.ts";
import { NonceLane } from "./lane.ts";
import {
  type Cooldown,
  type ExecutorOptions,
  type ExecutorStats,
  MAX_SEND_TRIES,
  REFUSED_COOLDOWN_BLOCKS,
} from "./types.ts";
import type { Unit } from "./unit.ts";

/** What a sender needs of the executor. */
export interface SenderHost {
  readonly o: ExecutorOptions;
  readonly stats: ExecutorStats;
  readonly attempts: Attempts;
  readonly cooldown: Cooldown;
  readonly broadcastClients: readonly PublicClient[];
  head(): Tick | undefined;
  closed(): boolean;
  /** To a lane (or the backlog): a unit sent again after a refusal. */
  dispatch(unit: Unit): void;
  markLow(lane: NonceLane, balance: bigint, error?: string): void;
}

interface Signed {
  readonly attempt: Attempt;
  readonly tx: SignedTx;
  readonly unit: Unit;
}

export class Sender {
  /** Units waiting for the pump, in order. */
  readonly queue: Unit[] = [];
  /** Transactions a node refused for its own fee cap (tx_fee_cap): never broadcast again as they are. */
  private readonly overNodeCap = new Set<Hex>();

  constructor(
    readonly lane: NonceLane,
    private readonly h: SenderHost,
  ) {}

  /** Queues a unit and runs the pump; returns the pump's run when one was started. */
  enqueue(unit: Unit): Promise<void> | undefined {
    this.queue.push(unit);
    return this.pump();
  }

  /** Signs, journals (one fsync per group) and broadcasts everything queued, in nonce order. */
  pump(): Promise<void> | undefined {
    const { lane, h } = this;
    if (lane.busy) return undefined;
    lane.busy = true;
    let units: Unit[] = [];
    let signed: Signed[] = [];
    return (async () => {
      try {
        while (this.queue.length > 0) {
          units = this.queue.splice(0, this.queue.length);
          signed = [];
          for (const unit of units) {
            const s = await this.signUnit(unit);
            if (s) signed.push(s);
          }
          if (signed.length === 0) continue;
          await h.attempts.journalIntents(lane, signed);
          const results = await Promise.all(signed.map(({ tx }) => broadcastAll(h.broadcastClients, tx.raw, tx.hash)));
          // highest nonce first, so that failed nonces at the top can be given back
          const order = signed.map((s, i) => ({ ...s, result: results[i] as SendResult })).reverse();
          const records: JournalRecord[] = [];
          const retry: Unit[] = [];
          for (const s of order) this.afterFirstSend(s.attempt, s.tx, s.unit, s.result, records, retry);
          for (const s of signed) s.unit.sent?.();
          units = [];
          signed = [];
          await lane.journal.append(records);
          if (retry.length > 0) {
            // another transaction of this key holds those nonces: read the chain's count before sending again
            await this.resync("nonce_conflict");
            for (const unit of retry.reverse()) h.dispatch(unit);
          }
        }
      } catch (error) {
        // signing or the journal failed before anything of this group was broadcast: nothing of it reached the
        // node, so its nonces are given back (highest first) and its positions freed for a later head
        const stranded = signed.filter((x) => x.attempt.status === "signed").reverse();
        for (const { attempt } of stranded) {
          void h.attempts.setStatus(attempt, "failed", { background: true });
          lane.giveBack(attempt.nonce);
          h.attempts.releaseFrom(attempt);
        }
        const onTheirWay = new Set(signed.filter((x) => x.attempt.status !== "failed").map((x) => x.unit));
        for (const unit of units) {
          if (!onTheirWay.has(unit)) h.attempts.release(unit.targets.map((t) => t.key));
          unit.sent?.();
        }
        h.o.log.error(
          { event: "executor_error", signer: lane.address, error: describeError(error), unsent: stranded.length },
          "signing or journaling failed; nothing of that group was sent, its positions are tried again later",
        );
      } finally {
        lane.busy = false;
      }
    })();
  }

  /** A unit signed at the lane's next nonce, or undefined when it must not go (its positions freed). */
  private async signUnit(unit: Unit): Promise<Signed | undefined> {
    const { lane, h } = this;
    const drop = () => {
      h.attempts.release(unit.targets.map((t) => t.key));
      unit.sent?.();
      return undefined;
    };
    // its update was dropped or replaced while it waited for the lane: it must not go without it
    if (unit.plan?.state === "gone" && unit.after !== undefined) return drop();
    // stopping: what is signed goes out, nothing new is signed
    if (h.closed()) return drop();
    // one owner per position: a unit whose position a live attempt of ours holds is never signed
    const taken = unit.targets.filter((t) => h.attempts.claims.heldByOther(t.key));
    if (taken.length > 0) {
      h.o.log.warn(
        { event: "claim_refused", signer: lane.address, positions: taken.map(targetIds) },
        `not sending: ${taken.length} of its positions are held by a transaction of ours already`,
      );
      return drop();
    }
    const nonce = lane.take();
    const attempt = h.attempts.open(lane, {
      nonce,
      kind: unit.kind,
      targets: unit.targets,
      to: unit.call.to,
      data: unit.call.data,
      gas: unit.call.gas,
      ...(unit.call.value ? { value: unit.call.value } : {}),
      createdAtBlock: unit.head,
      after: unit.plan?.state === "pending" ? unit.after : undefined,
    });
    let tx: SignedTx | undefined;
    try {
      tx = await this.sign(attempt, "liquidate", unit.fees);
    } catch (error) {
      // nothing signed at this nonce: it is given back (the newest taken), never left taken and empty
      void h.attempts.setStatus(attempt, "failed");
      lane.giveBack(nonce);
      h.attempts.releaseFrom(attempt);
      throw error;
    }
    if (!tx) {
      // its fees break a cap (logged): nothing signed, its nonce and positions given back
      void h.attempts.setStatus(attempt, "failed");
      lane.giveBack(nonce);
      h.attempts.releaseFrom(attempt);
      return drop();
    }
    return { attempt, tx, unit };
  }

  /** Signs at the attempt's nonce, if the fees pass checkFees (tip <= max fee <= every cap); else undefined, logged. */
  async sign(a: Attempt, purpose: SignedTx["purpose"], fees: Fees): Promise<SignedTx | undefined> {
    const { lane, h } = this;
    const call = purpose === "cancel" ? { to: lane.address, data: "0x" as Hex, gas: CANCEL_GAS } : a;
    const reward = purpose === "cancel" ? undefined : sumRewards(a.targets);
    const check = checkFees(
      fees,
      { gas: call.gas, reward, value: purpose === "cancel" ? undefined : a.value },
      h.o.fees,
    );
    if (!check.ok) {
      h.o.log.error(
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
    const tx: SignedTx = { hash, raw, purpose, ...fees, sentAtBlock: h.head()?.blockNumber ?? a.createdAtBlock };
    a.txs.push(tx);
    return tx;
  }

  /** Broadcasts the bytes to every endpoint (a re-send of the same transaction). */
  broadcast(tx: SignedTx): Promise<SendResult> {
    return broadcastAll(this.h.broadcastClients, tx.raw, tx.hash);
  }

  /** A per-head broadcast; what a node refused for its fee cap is remembered, so the same bytes are not sent again. */
  async send(tx: SignedTx): Promise<SendResult> {
    const result = await broadcastAll(this.h.broadcastClients, tx.raw, tx.hash);
    if (result.kind === "tx_fee_cap") this.overNodeCap.add(tx.hash);
    return result;
  }

  /** Whether a node refused these bytes for its fee cap. */
  refusedForCap(hash: Hex): boolean {
    return this.overNodeCap.has(hash);
  }

  /** What a first broadcast's answer means for the attempt, its nonce and its targets. */
  private afterFirstSend(
    a: Attempt,
    tx: SignedTx,
    unit: Unit,
    result: SendResult,
    records: JournalRecord[],
    retry: Unit[],
  ): void {
    const { lane, h } = this;
    const { log } = h.o;
    const fields = { ...attemptIds(a), txHash: tx.hash, ...feeFields(tx) };
    if (result.kind === "accepted" || result.kind === "uncertain") {
      // a slow answer may come after the inclusion pass already settled it: then it stays settled
      if (a.status === "signed") void h.attempts.setStatus(a, "pending", { into: records });
      h.stats.sent++;
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
          valueWei: a.value ? big(a.value) : undefined,
          afterUpdate: unit.after,
          msSinceUpdateSeen:
            unit.seenAt === undefined ? undefined : Math.round((performance.now() - unit.seenAt) * 10) / 10,
        },
        `liquidating ${describeTargets(a, h.o.marketName)} (nonce ${a.nonce}) for a reward of ${quote(sumRewards(a.targets))}`,
      );
      return;
    }
    if (a.status !== "signed") return; // mined meanwhile: the refusal was of a duplicate
    // the node refused it: this nonce holds nothing of ours
    void h.attempts.setStatus(a, "failed", { into: records });
    lane.giveBack(a.nonce); // the lane's top nonce is given back; one below others is a hole, filled by judge()
    if (result.kind === "nonce_too_low" || result.kind === "underpriced") {
      // another transaction of this key holds the nonce: sent again at a fresh one after a resync
      if (++unit.tries < MAX_SEND_TRIES) {
        h.attempts.reserve(unit.targets, "planning");
        retry.push(unit);
        return;
      }
    } else if (result.kind === "insufficient_funds") {
      h.markLow(lane, lane.balance ?? 0n, result.error);
      if (++unit.tries < MAX_SEND_TRIES) {
        h.attempts.reserve(unit.targets, "planning");
        h.dispatch(unit);
        return;
      }
    }
    h.stats.failed++;
    log.warn(
      { event: "liquidation_failed", ...fields, reason: result.kind, error: result.error },
      `the node refused the liquidation of ${describeTargets(a, h.o.marketName)}: ${result.error}`,
    );
    h.attempts.releaseFrom(a);
    const block = h.head()?.blockNumber ?? a.createdAtBlock;
    for (const t of a.targets) h.cooldown.set(t.key, h.o.current(t.key), block + REFUSED_COOLDOWN_BLOCKS);
  }

  /** Reads the chain's nonces of this key and moves the counter up to them if another sender used some. */
  async resync(reason: string): Promise<void> {
    const { lane, h } = this;
    try {
      const { latest, pending } = await NonceLane.chainNonces(h.o.client, lane.address);
      lane.chainNonce = latest;
      const before = lane.nextNonce;
      if (lane.catchUp(pending)) {
        h.o.log.info(
          { event: "nonce_resynced", signer: lane.address, reason, from: before, to: lane.nextNonce },
          `nonce of ${lane.address} resynced from ${before} to ${lane.nextNonce} (${reason})`,
        );
      }
    } catch (error) {
      h.o.log.warn({ event: "rpc_error", step: "nonce_resync", error: describeError(error) }, "nonce resync failed");
    }
  }
}

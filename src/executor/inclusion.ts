/**
 * The inclusion pass: once per head, the new blocks' receipts (eth_getBlockReceipts) and each busy lane's nonce
 * settle every transaction of ours they decide: confirmed, lost to a competitor, reverted, cancelled, or superseded
 * (the nonce used by a transaction that is not ours). It keeps the mined attempts of the watcher's window (reorgWindowBlocks),
 * with what each added to the counters, so that a reorganisation can put them back. Judging what is not mined is
 * pendingDecision.ts's and the monitor's (monitor.ts); statuses change and are journaled through attempts.ts.
 */
import {
  formatTransactionReceipt,
  type Hex,
  type PublicClient,
  type RpcTransactionReceipt,
  type TransactionReceipt,
  toHex,
} from "viem";
import { big } from "../ops/logger.ts";
import type { Tick } from "../watcher/watcher.ts";
import { type Attempt, isTerminal, type TargetPlan } from "./attempt.ts";
import type { Attempts } from "./attempts.ts";
import { known } from "./broadcast.ts";
import { attemptIds, quote } from "./fields.ts";
import type { NonceLane } from "./lane.ts";
import { type ExecutorOptions, type ExecutorStats, REORG_WINDOW_BLOCKS, type UpdateStats } from "./types.ts";

/** Blocks of receipts one inclusion pass reads; past that, receipts are looked up per transaction. */
const MAX_RECEIPT_BLOCKS = 16n;

/** What the inclusion pass needs of the executor. */
export interface InclusionHost {
  readonly o: ExecutorOptions;
  readonly stats: ExecutorStats;
  readonly updateStats: UpdateStats;
  /** The attempts: their statuses change (and are journaled) there, and their claims are freed there. */
  readonly attempts: Attempts;
  /** Between a reorganisation and the next head: the book says nothing about positions. */
  rebuilding(): boolean;
  /** Our receipt at `block` settled the position (liquidated, or found gone): held back until the book agrees. */
  settled(key: string, block: bigint): void;
  refreshBalance(lane: NonceLane): Promise<void>;
  /** A position state our mined liquidation reverted on is not tried again for a few blocks. */
  coolDown(key: string, fromBlock: bigint): void;
  describeTargets(a: Attempt): string;
  /** A target's race decided by this receipt (races.ts): ours, or taken by another. */
  raced(t: TargetPlan, result: "won" | "lost", txHash: string): void;
  /** Whether the attempt's cancel withdrew it from a race (its gas is lost to the race). */
  withdrawn(a: Attempt): boolean;
}

export class Inclusion {
  /** The last block whose receipts were read. */
  private checkedBlock: bigint | undefined;
  /** Mined attempts within the watcher's window (reorgWindowBlocks), re-checked after a reorganisation. */
  private recent: Attempt[] = [];
  /** What each settled attempt added to the counters. */
  private readonly tallies = new WeakMap<Attempt, Tally>();
  /**
   * What an attempt a reorganisation un-mined had counted: the counters never fall, so settling it again adds only
   * what it did not count before (the same outcome: nothing).
   */
  private readonly counted = new WeakMap<Attempt, Tally>();
  /** Positions freed in this pass without being liquidated (our cancel mined, the nonce superseded). */
  private freed: string[] = [];

  constructor(private readonly h: InclusionHost) {}

  /** Receipts are read from the block after this one. */
  startAt(block: bigint | undefined): void {
    this.checkedBlock = block;
  }

  /** The positions the last pass freed without liquidating them; cleared. */
  takeFreed(): string[] {
    const freed = this.freed;
    this.freed = [];
    return freed;
  }

  /** The mined attempts kept for a reorganisation (all, or one signer's). */
  recentAttempts(signer?: string): Attempt[] {
    return signer === undefined ? [...this.recent] : this.recent.filter((a) => a.signer === signer);
  }

  /** Takes the kept attempts out, to be re-checked after a reorganisation; `keep` puts back those still mined. */
  takeRecent(): Attempt[] {
    const recent = this.recent;
    this.recent = [];
    return recent;
  }

  keep(a: Attempt): void {
    this.recent.push(a);
  }

  /** Reads the new blocks' receipts and each busy lane's nonce; settles every attempt they decide. */
  async settle(head: Tick): Promise<void> {
    this.freed = [];
    const { client } = this.h.o;
    // a signer skipped for its balance is re-read at every head, so that funding it is noticed even while idle
    await Promise.all(this.h.o.lanes.filter((l) => l.lowBalance).map((l) => this.h.refreshBalance(l)));
    const lanes = this.h.o.lanes.filter((l) => l.live.size > 0);
    const from = this.checkedBlock === undefined ? head.blockNumber : this.checkedBlock + 1n;
    if (lanes.length === 0) {
      this.checkedBlock = head.blockNumber;
      this.forgetOld(head.blockNumber);
      return;
    }
    const blocks: bigint[] = [];
    if (head.blockNumber - from < MAX_RECEIPT_BLOCKS) for (let b = from; b <= head.blockNumber; b++) blocks.push(b);
    const byHash = new Map<string, Attempt>();
    for (const lane of lanes) for (const a of lane.live.values()) for (const tx of a.txs) byHash.set(tx.hash, a);
    const [receiptLists, nonces] = await Promise.all([
      Promise.all(blocks.map((b) => this.blockReceipts(b))),
      Promise.all(lanes.map((l) => client.getTransactionCount({ address: l.address, blockTag: "latest" }))),
    ]);
    const minedLanes = new Set<NonceLane>();
    for (const receipts of receiptLists) {
      if (receipts === undefined) continue;
      for (const r of receipts) {
        const a = byHash.get(r.transactionHash);
        if (a && !isTerminal(a.status)) {
          this.settleMined(a, r);
          const lane = this.h.attempts.laneOf(a);
          if (lane) minedLanes.add(lane);
        }
      }
    }
    const lookups: Promise<void>[] = [];
    lanes.forEach((lane, i) => {
      const chainNonce = nonces[i] as number;
      lane.chainNonce = chainNonce;
      for (const a of lane.live.values()) {
        if (a.nonce < chainNonce && !isTerminal(a.status)) {
          minedLanes.add(lane);
          lookups.push(this.settleByLookup(a));
        }
      }
      const before = lane.nextNonce;
      if (lane.catchUp(chainNonce)) {
        this.h.o.log.info(
          {
            event: "nonce_resynced",
            signer: lane.address,
            reason: "external_transaction",
            from: before,
            to: chainNonce,
          },
          `another sender used nonces of ${lane.address}; resynced from ${before} to ${chainNonce}`,
        );
      }
    });
    await Promise.all(lookups);
    await Promise.all([...minedLanes].map((lane) => this.h.refreshBalance(lane)));
    this.checkedBlock = head.blockNumber;
    this.forgetOld(head.blockNumber);
  }

  /** Mined attempts below the watcher's window cannot be reorganised away any more: forgotten. */
  private forgetOld(head: bigint): void {
    const window = this.h.o.reorgWindowBlocks?.(head) ?? REORG_WINDOW_BLOCKS;
    this.recent = this.recent.filter((a) => (a.minedBlock ?? 0n) + window >= head);
  }

  /** The block's receipts (eth_getBlockReceipts), or undefined when the node does not serve them. */
  private async blockReceipts(blockNumber: bigint): Promise<TransactionReceipt[] | undefined> {
    try {
      const ask = (client: PublicClient) =>
        client.request({
          method: "eth_getBlockReceipts" as never,
          params: [toHex(blockNumber)] as never,
        }) as Promise<RpcTransactionReceipt[] | null>;
      // a block under the head the watcher verified exists: an endpoint that says it does not is asked no more
      const raw = this.h.o.endpoints
        ? await this.h.o.endpoints.firstKnown(`eth_getBlockReceipts(${blockNumber})`, ask, () => blockNumber)
        : await ask(this.h.o.client);
      return raw?.map((r) => formatTransactionReceipt(r));
    } catch {
      // not served (unsupported, not allowed, too large) or failed: the nonce check and receipt lookups settle it
      return undefined;
    }
  }

  /** Settles an attempt whose nonce is used: one of its hashes has a receipt, or someone else took the nonce. */
  private async settleByLookup(a: Attempt): Promise<void> {
    let unanswered = false;
    for (const tx of [...a.txs].reverse()) {
      const receipt = await this.receipt(tx.hash).catch(() => {
        unanswered = true;
        return undefined;
      });
      if (receipt) return this.settleMined(a, receipt);
    }
    if (unanswered) return; // a lookup failed: settled at a later head, never guessed
    if ((await this.anyKnown(a)) !== false) return; // the node has it (receipt not yet), or cannot say: next head
    void this.h.attempts.setStatus(a, "superseded", { background: true });
    for (const t of a.targets) this.freed.push(t.key);
    this.h.o.log.warn(
      { event: "liquidation_superseded", ...attemptIds(a) },
      `nonce ${a.nonce} of ${a.signer} was used by a transaction that is not ours; its targets are free again`,
    );
    this.h.attempts.releaseFrom(a);
  }

  /** Whether the node has any of the attempt's transactions; undefined when it could not be asked. */
  /** A transaction's receipt, from the first endpoint that has it (see Endpoints.firstKnown); undefined: none has. */
  private async receipt(hash: Hex): Promise<TransactionReceipt | undefined> {
    const ask = (client: PublicClient) =>
      client.request({ method: "eth_getTransactionReceipt", params: [hash] }) as Promise<RpcTransactionReceipt | null>;
    const raw = this.h.o.endpoints
      ? await this.h.o.endpoints.firstKnown(`eth_getTransactionReceipt(${hash})`, ask, (r) => BigInt(r.blockNumber))
      : await ask(this.h.o.client);
    return raw ? formatTransactionReceipt(raw) : undefined;
  }

  async anyKnown(a: Attempt): Promise<boolean | undefined> {
    const endpoints = this.h.o.endpoints;
    const lookup = (hash: Hex) =>
      endpoints
        ? endpoints
            .firstKnown(`eth_getTransactionByHash(${hash})`, (c) =>
              c.request({ method: "eth_getTransactionByHash", params: [hash] }),
            )
            .then(
              (tx) => tx !== null,
              () => undefined,
            )
        : known(this.h.o.client, hash);
    const answers = await Promise.all(a.txs.map((t) => lookup(t.hash)));
    if (answers.includes(true)) return true;
    return answers.includes(undefined) ? undefined : false;
  }

  /** One of the attempt's transactions was mined: what it did, per target. */
  private settleMined(a: Attempt, receipt: TransactionReceipt): void {
    const stats = this.h.stats as unknown as Record<string, bigint | number>;
    const before = { ...stats };
    this.settleMinedCounting(a, receipt);
    const earlier = this.counted.get(a) ?? {};
    const tally: Tally = {};
    for (const key of Object.keys(stats)) {
      const delta = sub(stats[key] as bigint | number, before[key] as bigint | number);
      if (!delta) continue;
      // counted already before the reorganisation: not again
      const again = earlier[key];
      if (again !== undefined) stats[key] = sub(stats[key] as bigint | number, min(delta, again));
      tally[key] = again === undefined ? delta : max(delta, again);
    }
    this.counted.delete(a);
    this.tallies.set(a, tally);
  }

  /**
   * A settlement's block was reorganised away. Its counts stay (the counters never fall) and are remembered, so
   * that settling the attempt again counts only what differs.
   */
  untally(a: Attempt): void {
    const tally = this.tallies.get(a);
    if (!tally) return;
    const earlier = this.counted.get(a) ?? {};
    for (const [key, n] of Object.entries(tally)) earlier[key] = earlier[key] === undefined ? n : max(earlier[key], n);
    this.counted.set(a, earlier);
    this.tallies.delete(a);
  }

  private settleMinedCounting(a: Attempt, receipt: TransactionReceipt): void {
    const { log, protocol } = this.h.o;
    const tx = a.txs.find((t) => t.hash === receipt.transactionHash);
    const gasPaid = receipt.gasUsed * receipt.effectiveGasPrice;
    this.h.stats.gasPaidWei += gasPaid;
    const figures = {
      ...attemptIds(a),
      txHash: receipt.transactionHash,
      blockNumber: big(receipt.blockNumber),
      gasUsed: big(receipt.gasUsed),
      effectiveGasPrice: big(receipt.effectiveGasPrice),
      gasPaidWei: big(gasPaid),
      valueWei: a.value && tx?.purpose !== "cancel" ? big(a.value) : undefined,
    };
    let status: Attempt["status"];
    if (tx?.purpose === "cancel" || a.targets.length === 0) {
      status = "cancelled";
      for (const t of a.targets) this.freed.push(t.key);
      this.h.stats.cancelled++;
      if (this.h.withdrawn(a)) this.h.stats.lostRaceGasWei += gasPaid;
      log.info({ event: "liquidation_cancelled", ...figures }, `nonce ${a.nonce} of ${a.signer} filled by our cancel`);
    } else if (receipt.status === "success") {
      // the value a liquidation sends (a pull oracle's fee) is spent once it succeeds; a revert gives it back
      if (a.value) this.h.stats.valuePaidWei += a.value;
      const outcomes = protocol.outcomes(receipt.logs, receipt.from);
      let won = 0;
      let closed = 0;
      for (const t of a.targets) {
        const outcome = outcomes.get(t.key);
        if (outcome?.kind === "closed" || outcome?.kind === "close_refused") {
          // upkeep of the keeper's own position (Perp v2's inventory): no reward, no race; a refusal is said by the
          // adapter and tried again at a later head
          if (outcome.kind === "closed") {
            this.h.settled(t.key, receipt.blockNumber);
            closed++;
            log.info(
              { event: "inventory_close_confirmed", ...figures, marketId: t.marketId },
              `closed the keeper's own ${this.h.o.marketName(t.marketId)} position in block ${receipt.blockNumber}`,
            );
          }
          continue;
        }
        // settled on chain, by us or by another first: never sent again until the book shows it
        if (outcome?.kind === "liquidated" || (outcome?.kind === "skipped" && outcome.reason === "no_position")) {
          this.h.settled(t.key, receipt.blockNumber);
        }
        if (
          outcome?.kind === "liquidated" &&
          outcome.keeper.toLowerCase() === (protocol.liquidator ?? a.signer).toLowerCase()
        ) {
          won++;
          this.h.stats.rewardsWad += outcome.reward;
          this.h.raced(t, "won", receipt.transactionHash);
          const moved = this.h.o.priceMovedAt?.(t.marketId);
          const distance = moved === undefined || moved > receipt.blockNumber ? undefined : receipt.blockNumber - moved;
          if (distance !== undefined) this.h.updateStats.distance[distance >= 3n ? "3" : (String(distance) as "0")]++;
          log.info(
            {
              event: "liquidation_confirmed",
              ...figures,
              trader: t.trader,
              marketId: t.marketId,
              reward: quote(outcome.reward),
              badDebt: quote(outcome.badDebt),
              blocksAfterPriceUpdate: distance === undefined ? undefined : Number(distance),
            },
            `liquidated ${this.h.o.marketName(t.marketId)} position of ${t.trader} in block ${receipt.blockNumber} ` +
              `for ${quote(outcome.reward)}`,
          );
        } else {
          this.lostRace(a, t, outcome?.kind === "skipped" ? outcome.reason : "skipped", receipt);
        }
      }
      status = won > 0 || closed > 0 ? "confirmed" : "lost_race";
      this.h.stats.confirmed += won;
      if (status === "lost_race") this.h.stats.lostRaceGasWei += gasPaid;
    } else {
      // reverted: a position gone from the book was settled by someone else first
      const gone = !this.h.rebuilding() && a.targets.every((t) => this.h.o.current(t.key) === undefined);
      if (gone) {
        status = "lost_race";
        this.h.stats.lostRaceGasWei += gasPaid;
        for (const t of a.targets) this.lostRace(a, t, "reverted", receipt);
      } else {
        status = "reverted";
        this.h.stats.reverted++;
        log.warn(
          { event: "liquidation_reverted", ...figures },
          `our liquidation of ${this.h.describeTargets(a)} reverted on chain`,
        );
        // too little value for the oracle's fee as it stands now: planned again at once with the new fee
        if (!protocol.underpaid?.(a.targets, a.value ?? 0n)) {
          for (const t of a.targets) this.h.coolDown(t.key, receipt.blockNumber);
        }
      }
    }
    void this.h.attempts.setStatus(a, status, {
      mined: { block: receipt.blockNumber, hash: receipt.transactionHash },
      background: true,
    });
    this.recent.push(a);
    this.h.attempts.releaseFrom(a);
  }

  private lostRace(a: Attempt, t: TargetPlan, how: string, receipt: TransactionReceipt): void {
    this.h.stats.lostRace++;
    if (how !== "liquidator_capacity" && how !== "not_liquidatable") this.h.raced(t, "lost", receipt.transactionHash);
    this.h.o.log.info(
      {
        event: "liquidation_lost_race",
        signer: a.signer,
        nonce: a.nonce,
        trader: t.trader,
        marketId: t.marketId,
        how,
        txHash: receipt.transactionHash,
        blockNumber: big(receipt.blockNumber),
      },
      how === "liquidator_capacity"
        ? `${this.h.o.marketName(t.marketId)} position of ${t.trader} was more than the liquidator could take over ` +
            "when our call ran (its free collateral): it is planned again within what is left"
        : how === "not_liquidatable"
          ? `${this.h.o.marketName(t.marketId)} position of ${t.trader} was not liquidatable when our call ran ` +
            "(settled or topped up first, or sent for a block its forecast came early for)"
          : `${this.h.o.marketName(t.marketId)} position of ${t.trader} was settled by someone else first`,
    );
  }
}

type Tally = Record<string, bigint | number>;

function sub(a: bigint | number, b: bigint | number): bigint | number {
  return typeof a === "bigint" ? a - (b as bigint) : a - (b as number);
}

function min(a: bigint | number, b: bigint | number): bigint | number {
  return a < b ? a : b;
}

function max(a: bigint | number, b: bigint | number): bigint | number {
  return a > b ? a : b;
}

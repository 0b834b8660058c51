/**
 * Same-block liquidations (issue 9): acts on an oracle update while it is still in the mempool.
 *
 * For each pending update to a market's aggregator (pendingSource.ts): its answer is validated as the watcher
 * validates an on-chain one, the risk model finds the positions below maintenance at that price and the next block's
 * expected time, and the executor prepares their liquidations: simulated after the update (simulate.ts), priced, and
 * then, per `mode`:
 * - `on-block`: held, and sent the instant the head that carries the update is seen (before anything else is planned
 *   at that head); nothing is signed before, so no nonce waits on an update that may never land;
 * - `backrun`: signed and sent at once with fees just under the update's (backrunFees.ts), so that a fee-ordered
 *   block puts them right after it, and never bumped while it is pending.
 *
 * Each update is followed to an end (lifecycle.ts): `landed` (the head's price is the update's, or the node says it
 * is mined), or unwound: `replaced` (same sender and nonce, another hash), `dropped` (the node no longer has it) or
 * `expired` (pending for maxWaitBlocks heads). Unwinding discards what was held and cancels what was sent, at its own
 * nonce, so no nonce is left unused. A backrun whose position changed meanwhile is judged again at the update's price
 * at each head, and cancelled when nothing of it is liquidatable there any more. The normal path (react to the mined
 * block) always runs as well; a position with work under way is never planned twice.
 */
import type { Address, Hex } from "viem";
import { BlockClock } from "../chain/blockClock.ts";
import type { Attempt } from "../executor/attempt.ts";
import type { Executor, PendingPlan } from "../executor/executor.ts";
import type { TickHook } from "../keeper.ts";
import { big, type Logger } from "../ops/logger.ts";
import { formatAnswer } from "../prices/chainlink/markPrices.ts";
import { type ChainlinkMarket, markPriceOf } from "../prices/chainlink/oracle.ts";
import type { Finding } from "../protocol/adapter.ts";
import type { Tick } from "../watcher/watcher.ts";
import { backrunFees, updateTip } from "./backrunFees.ts";
import { judgeUpdate, replaces } from "./lifecycle.ts";
import type { PendingSource } from "./pendingSource.ts";
import type { AggregatorMap, PendingUpdate } from "./pendingUpdates.ts";
import type { PendingSimulator } from "./simulate.ts";

export type PrecomputeMode = "on-block" | "backrun";

/** The keeper's view the precomputer needs (src/keeper.ts). */
export interface RiskView {
  readonly tick: Tick | undefined;
  /** What to liquidate of the market's positions below maintenance at a price and time (a pending update's). */
  liquidatableAt(marketId: number, markPrice: bigint, timestamp: bigint): readonly Finding[];
  liquidatableAtPrice(key: string, markPrice: bigint, timestamp: bigint): boolean;
}

export interface PrecomputerOptions {
  readonly mode: PrecomputeMode;
  /** An update still pending after this many heads is unwound. */
  readonly maxWaitBlocks: bigint;
  /** How often the node is asked about each pending update (dropped, replaced, mined). */
  readonly checkIntervalMs: number;
  /** The exchange's markets priced by push oracles, as of now. */
  readonly book: { readonly markets: ReadonlyMap<number, ChainlinkMarket> };
  readonly keeper: RiskView;
  readonly executor: Executor;
  readonly simulator: PendingSimulator;
  readonly log: Logger;
  /** Each market's aggregator as the watcher resolved it (proxies followed); a market absent: its oracle. */
  readonly oracleSources: () => ReadonlyMap<number, Address>;
}

interface Tracked {
  /** The update as last seen: a sender's replacement setting the same answers (a gas bump) takes its place. */
  update: PendingUpdate;
  /** Every hash this update was known by (its replacements' too): attempts tied to any of them are tied to it. */
  readonly hashes: Hex[];
  readonly plan: PendingPlan;
  readonly seenAtBlock: bigint;
  /** By market fed, the mark price (WAD) the update sets. */
  readonly prices: Map<number, bigint>;
  /** The next block's expected timestamp: what it was evaluated and simulated at. */
  readonly timestamp: bigint;
  /** The block the node said it is mined in: landed at the head that reaches it. */
  minedAt: bigint | undefined;
  /** Checks in a row that found the node without it (one answer from a load-balanced RPC is not trusted). */
  unknown: number;
}

export interface PrecomputeStats {
  seen: number;
  landed: number;
  replaced: number;
  dropped: number;
  expired: number;
}

/** Checks in a row that must find the node without an update before it counts as dropped. */
const UNKNOWN_CHECKS = 2;

export class Precomputer implements TickHook {
  readonly stats: PrecomputeStats = { seen: 0, landed: 0, replaced: 0, dropped: 0, expired: 0 };
  private readonly tracked = new Map<Hex, Tracked>();
  /** Hashes an update was known by before a same-answer replacement took its place (see adopt). */
  private readonly aliases = new Map<Hex, Tracked>();
  private readonly clock = new BlockClock();
  private timer: ReturnType<typeof setInterval> | undefined;
  private checking = false;
  private source: PendingSource | undefined;
  private aggregatorMap: AggregatorMap | undefined;

  constructor(private readonly o: PrecomputerOptions) {}

  /** How liquidations are simulated after an update (the method the node serves). */
  get simulation(): string {
    return this.o.simulator.method;
  }

  /** Lower-cased aggregator -> markets it feeds, as of the last head (asked for every pending transaction). */
  aggregators(): AggregatorMap {
    this.aggregatorMap ??= this.buildAggregators();
    return this.aggregatorMap;
  }

  private buildAggregators(): AggregatorMap {
    const sources = this.o.oracleSources();
    const out = new Map<string, number[]>();
    for (const market of this.o.book.markets.values()) {
      const at = (sources.get(market.id) ?? market.oracle).toLowerCase();
      const ids = out.get(at) ?? [];
      ids.push(market.id);
      out.set(at, ids);
    }
    return out;
  }

  start(source: PendingSource): void {
    this.source = source;
    source.start();
    this.timer = setInterval(() => void this.check(), this.o.checkIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.source?.stop();
    // what was sent stays in the pool and the journal, as any pending transaction at a stop; what was held goes
    for (const t of this.tracked.values()) {
      t.plan.state = "gone";
      this.o.executor.discard(t.plan.held.splice(0));
    }
    this.tracked.clear();
    this.aliases.clear();
  }

  /** The next block's expected timestamp: the head's plus the usual interval, and not before the wall clock. */
  private nextTimestamp(tick: Tick): bigint {
    return this.clock.next(tick.timestamp);
  }

  /** A pending update to a market's aggregator, as the source saw it. */
  onPending(update: PendingUpdate, seenAt: number): void {
    const tick = this.o.keeper.tick;
    if (!tick) return; // not following heads yet
    for (const t of [...this.tracked.values()]) {
      if (!replaces(update, t.update)) continue;
      // the same answers at a higher bid (a transmitter's gas bump): what was prepared on it stays valid and tied
      if (sameAnswers(update, t.update)) {
        this.adopt(t, update);
        return;
      }
      this.unwind(t, "replaced");
    }
    const timestamp = this.nextTimestamp(tick);
    const prices = new Map<number, bigint>();
    const markets: ChainlinkMarket[] = [];
    for (const marketId of update.marketIds) {
      const market = this.o.book.markets.get(marketId);
      if (!market) continue;
      const result = markPriceOf({ roundId: 0n, answer: update.answer, updatedAt: timestamp }, market, timestamp);
      if (!result.ok) {
        this.o.log.warn(
          {
            event: "oracle_update_pending",
            market: market.name,
            txHash: update.txHash,
            from: update.from,
            usable: false,
            reason: result.reason,
            answer: big(update.answer),
          },
          `pending ${market.name} oracle update ${update.txHash} would be refused (${result.reason}); not acted on`,
        );
        continue;
      }
      prices.set(marketId, result.markPrice);
      markets.push(market);
    }
    if (prices.size === 0) return;
    this.stats.seen++;
    // nothing can order after a zero tip by fees: that update is acted on at its block instead
    const mode: PrecomputeMode = this.o.mode === "backrun" && updateTip(update) > 0n ? "backrun" : "on-block";
    const plan: PendingPlan = {
      id: update.txHash,
      mode,
      seenAt,
      state: "pending",
      held: [],
      // on the block the risk model judged, so that the simulation and the book see the same state
      simulate: (calls) =>
        this.o.simulator.simulate(
          update,
          decimalsOf(markets[0] as ChainlinkMarket),
          timestamp,
          calls,
          tick.blockNumber,
        ),
      fees:
        mode === "backrun"
          ? (ceiling, baseFeePerGas, cancel) => backrunFees(update, baseFeePerGas, ceiling, cancel)
          : undefined,
    };
    const t: Tracked = {
      update,
      hashes: [update.txHash],
      plan,
      seenAtBlock: tick.blockNumber,
      prices,
      timestamp,
      minedAt: undefined,
      unknown: 0,
    };
    this.tracked.set(update.txHash, t);
    const candidates = markets.flatMap((m) =>
      this.o.keeper.liquidatableAt(m.id, prices.get(m.id) as bigint, timestamp),
    );
    for (const market of markets) {
      const previous = tick.prices.get(market.id);
      this.o.log.info(
        {
          event: "oracle_update_pending",
          market: market.name,
          price: formatAnswer(update.answer, market.priceScale),
          previous: previous === undefined ? undefined : formatAnswer(previous / market.priceScale, market.priceScale),
          txHash: update.txHash,
          from: update.from,
          nonce: big(update.nonce),
          kind: update.kind,
          mode,
          backrunFallback: this.o.mode === "backrun" && mode !== "backrun" ? "update_tip_zero" : undefined,
          liquidatable: candidates.filter((c) => c.target.marketId === market.id).length,
          blockNumber: big(tick.blockNumber),
          expectedTimestamp: big(timestamp),
        },
        `pending ${market.name} oracle update to ${formatAnswer(update.answer, market.priceScale)} seen (${update.txHash})`,
      );
    }
    if (candidates.length > 0) this.o.executor.submit(candidates, tick, plan);
  }

  /** Each head, before the normal path: updates it carries land (what was held fires), old ones expire. */
  onTick(tick: Tick): void {
    this.aggregatorMap = undefined; // markets listed, proxies re-pointed: rebuilt when next asked
    this.clock.observe(tick.timestamp, tick.blockNumber);
    for (const t of [...this.tracked.values()]) {
      const verdict = judgeUpdate({
        seenAtBlock: t.seenAtBlock,
        head: tick.blockNumber,
        maxWaitBlocks: this.o.maxWaitBlocks,
        pendingPrices: t.prices,
        headPrices: tick.prices,
        mined: t.minedAt !== undefined && tick.blockNumber >= t.minedAt,
      });
      if (verdict === "landed") this.land(t, tick);
      else if (verdict === "expired") this.unwind(t, "expired");
    }
  }

  /** For the executor: a backrun attempt is held while its update is pending and it is still wanted at its price. */
  tiedVerdict(a: Attempt): "hold" | "cancel" | undefined {
    const t = a.after === undefined ? undefined : (this.tracked.get(a.after) ?? this.aliases.get(a.after));
    if (t?.plan.state !== "pending") return undefined;
    for (const target of a.targets) {
      const price = t.prices.get(target.marketId);
      if (price !== undefined && this.o.keeper.liquidatableAtPrice(target.key, price, t.timestamp)) return "hold";
    }
    return "cancel";
  }

  /**
   * A replacement of a tracked update by its sender that sets the same answers: it takes the update's place (checks
   * and landing follow the new hash), and attempts tied to the old hash stay tied to it (by alias), never cancelled
   * as if the update were gone.
   */
  private adopt(t: Tracked, update: PendingUpdate): void {
    const previous = t.update.txHash;
    this.tracked.delete(previous);
    this.aliases.set(previous, t);
    t.update = update;
    t.hashes.push(update.txHash);
    t.unknown = 0;
    t.minedAt = undefined;
    this.tracked.set(update.txHash, t);
    this.o.log.info(
      { event: "oracle_update_rebid", txHash: update.txHash, replaces: previous, nonce: big(update.nonce) },
      `pending oracle update ${previous} replaced by ${update.txHash} with the same answer: what was prepared on it ` +
        "stays",
    );
  }

  /** Forgets a tracked update and its aliases. */
  private forget(t: Tracked): boolean {
    for (const h of t.hashes) this.aliases.delete(h);
    return this.tracked.delete(t.update.txHash);
  }

  private land(t: Tracked, tick: Tick): void {
    this.forget(t);
    t.plan.state = "landed";
    this.stats.landed++;
    let fired: number | undefined;
    if (t.plan.mode === "on-block") {
      fired = this.o.executor.fire(t.plan.held.splice(0), tick);
    } else {
      for (const h of t.hashes) this.o.executor.untie(h);
    }
    this.o.log.info(
      {
        event: "oracle_update_landed",
        txHash: t.update.txHash,
        mode: t.plan.mode,
        blockNumber: big(tick.blockNumber),
        blocksPending: Number(tick.blockNumber - t.seenAtBlock),
        msSinceSeen: Math.round(performance.now() - t.plan.seenAt),
        fired,
      },
      `pending oracle update ${t.update.txHash} landed in block ${tick.blockNumber}` +
        (fired === undefined ? "" : `; ${fired} prepared liquidation(s) sent`),
    );
  }

  private unwind(t: Tracked, reason: "replaced" | "dropped" | "expired"): void {
    if (!this.forget(t)) return;
    t.plan.state = "gone";
    this.stats[reason]++;
    const held = t.plan.held.splice(0);
    if (held.length > 0) this.o.executor.discard(held);
    if (t.plan.mode === "backrun") for (const h of t.hashes) this.o.executor.unwind(h);
    this.o.log.info(
      {
        event: "oracle_update_gone",
        txHash: t.update.txHash,
        reason,
        mode: t.plan.mode,
        discarded: held.reduce((n, u) => n + u.targets.length, 0),
      },
      `pending oracle update ${t.update.txHash} ${reason}; what was prepared on it is ${
        t.plan.mode === "backrun" ? "cancelled" : "discarded"
      }`,
    );
  }

  /** Asks the node about each pending update: mined (landed at the next head) or gone (unwound now). */
  private async check(): Promise<void> {
    if (this.checking || this.tracked.size === 0 || !this.source) return;
    this.checking = true;
    try {
      await Promise.all(
        [...this.tracked.values()].map(async (t) => {
          const node = await this.source?.lookup(t.update.txHash).catch(() => undefined);
          if (!node) return;
          t.unknown = node.status === "unknown" ? t.unknown + 1 : 0;
          if (node.status === "mined") t.minedAt = node.blockNumber;
          else if (t.unknown >= UNKNOWN_CHECKS && this.tracked.get(t.update.txHash) === t) this.unwind(t, "dropped");
        }),
      );
    } finally {
      this.checking = false;
    }
  }
}

/** Whether two updates set the same answer in the same markets. */
function sameAnswers(a: PendingUpdate, b: PendingUpdate): boolean {
  return (
    a.answer === b.answer &&
    a.marketIds.length === b.marketIds.length &&
    a.marketIds.every((id) => b.marketIds.includes(id))
  );
}

/** The oracle's decimals, from the market's price scale (10^(18 - decimals)). */
function decimalsOf(market: ChainlinkMarket): number {
  return 18 - (market.priceScale.toString().length - 1);
}

/**
 * Prometheus metrics of a running keeper (prom-client, on a registry of its own, never the global one). Every
 * figure is read from the keeper's parts at scrape time (collect callbacks): nothing on the hot path of a head
 * or a liquidation is touched, and a scrape costs one pass over the book at most.
 */

import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { ExecutorStats } from "../executor/executor.ts";
import { fromWad } from "./decimals.ts";
import { Latency } from "./latency.ts";
import type { LeftBehindReading } from "./leftBehind.ts";
import { type OpsSources, pendingBySigner, positionsByMarket, reading } from "./readings.ts";
import { buildCommit, packageVersion } from "./version.ts";

const PREFIX = "perp_keeper_";

export { type OpsReading, type OpsSources, pendingBySigner, positionsByMarket, reading } from "./readings.ts";

/** Executor counters by the `outcome` label of perp_keeper_liquidations_total. */
const OUTCOMES: readonly (readonly [string, keyof ExecutorStats])[] = [
  ["confirmed", "confirmed"],
  ["lost_to_competitor", "lostRace"],
  ["reverted", "reverted"],
  ["cancelled", "cancelled"],
  ["skipped", "skipped"],
  ["failed", "failed"],
];
/** Executor counters by the `kind` label of perp_keeper_transactions_total. */
const TRANSACTIONS: readonly (readonly [string, keyof ExecutorStats])[] = [
  ["sent", "sent"],
  ["replaced", "replaced"],
  ["resent", "resent"],
];

/**
 * A counter that follows a figure read at scrape time: it rises by what the figure rose since the last scrape. A
 * figure that falls (a reorganisation took back a settlement) is not followed down, and its rise again is not
 * counted twice.
 */
class Follower {
  private readonly highest = new Map<string, number>();
  constructor(private readonly counter: Counter<string>) {}
  to(label: Record<string, string>, value: number): void {
    const key = JSON.stringify(label);
    const before = this.highest.get(key);
    if (before === undefined) {
      this.counter.inc(label, value > 0 ? value : 0);
      this.highest.set(key, value);
    } else if (value > before) {
      this.counter.inc(label, value - before);
      this.highest.set(key, value);
    }
  }
}

/** A registry with the keeper's metrics (and the default process metrics), read from `s` at every scrape. */
export function keeperMetrics(s: OpsSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: PREFIX });
  const registers = [registry];
  for (const h of (s.latency ?? new Latency()).histograms.values()) registry.registerMetric(h);

  const liquidations: Counter<string> = new Counter({
    name: `${PREFIX}liquidations_total`,
    help:
      "Liquidation outcomes: confirmed, lost_to_competitor and skipped count positions; reverted, cancelled and " +
      "failed count transactions",
    labelNames: ["outcome"],
    registers,
    collect() {
      for (const [outcome, key] of OUTCOMES) liquidationsFollow.to({ outcome }, Number(s.executor.stats[key]));
    },
  });
  const liquidationsFollow = new Follower(liquidations);
  const distance: Counter<string> = new Counter({
    name: `${PREFIX}liquidations_by_update_distance_total`,
    help:
      "Positions we liquidated, by blocks between the market's mark price moving and our liquidation landing: " +
      '"0" in the update\'s own block, "1" the next, "3" three or more',
    labelNames: ["blocks"],
    registers,
    collect() {
      const d = s.executor.updateStats?.distance;
      if (d) for (const [blocks, n] of Object.entries(d)) distanceFollow.to({ blocks }, n);
    },
  });
  const distanceFollow = new Follower(distance);
  const pendingUpdates: Counter<string> = new Counter({
    name: `${PREFIX}oracle_updates_pending_total`,
    help: "Pending oracle updates acted on (keeper.precompute), by outcome: seen, landed, replaced, dropped, expired",
    labelNames: ["outcome"],
    registers,
    collect() {
      const p = s.precompute?.();
      if (p) for (const [outcome, n] of Object.entries(p)) pendingFollow.to({ outcome }, n);
    },
  });
  const pendingFollow = new Follower(pendingUpdates);
  const prepared: Counter<string> = new Counter({
    name: `${PREFIX}liquidations_prepared_total`,
    help: "Positions whose liquidation was prepared (simulated after the update, priced) on a pending oracle update",
    registers,
    collect() {
      preparedFollow.to({}, s.executor.updateStats?.prepared ?? 0);
    },
  });
  const preparedFollow = new Follower(prepared);
  const transactions: Counter<string> = new Counter({
    name: `${PREFIX}transactions_total`,
    help: "Liquidation transactions broadcast: first sends (sent), fee replacements (replaced), re-sends (resent)",
    labelNames: ["kind"],
    registers,
    collect() {
      for (const [kind, key] of TRANSACTIONS) transactionsFollow.to({ kind }, Number(s.executor.stats[key]));
    },
  });
  const transactionsFollow = new Follower(transactions);
  const gas: Counter<string> = new Counter({
    name: `${PREFIX}gas_spent_wei_total`,
    help: "Gas paid by our mined transactions, wei of the chain's gas token",
    registers,
    collect() {
      gasFollow.to({}, Number(s.executor.stats.gasPaidWei));
    },
  });
  const gasFollow = new Follower(gas);
  const oracleFees: Counter<string> = new Counter({
    name: `${PREFIX}oracle_fees_paid_wei_total`,
    help: "Value our successful liquidations sent: a pull oracle's update fees, wei of the chain's gas token",
    registers,
    collect() {
      oracleFeesFollow.to({}, Number(s.executor.stats.valuePaidWei));
    },
  });
  const oracleFeesFollow = new Follower(oracleFees);
  const rewards: Counter<string> = new Counter({
    name: `${PREFIX}rewards_collateral_total`,
    help: "Keeper rewards earned by our liquidations (seen live on chain), in collateral tokens",
    registers,
    collect() {
      rewardsFollow.to({}, fromWad(s.rewardsEarned()).toNumber());
    },
  });
  const rewardsFollow = new Follower(rewards);
  const races: Counter<string> = new Counter({
    name: `${PREFIX}races_total`,
    help:
      "Contested positions (a competitor's liquidation of them seen in the pool, or theirs mined first), by " +
      'competitor (its sender, "unknown" when never seen pending) and result: won, lost',
    labelNames: ["competitor", "result"],
    registers,
    collect() {
      for (const [competitor, t] of s.executor.races?.byCompetitor ?? []) {
        racesFollow.to({ competitor, result: "won" }, t.won);
        racesFollow.to({ competitor, result: "lost" }, t.lost);
      }
    },
  });
  const racesFollow = new Follower(races);
  const lostGas: Counter<string> = new Counter({
    name: `${PREFIX}lost_race_gas_wei_total`,
    help: "Gas paid by our transactions that liquidated nothing (a race lost) and by cancels that withdrew from one, wei",
    registers,
    collect() {
      lostGasFollow.to({}, Number(s.executor.stats.lostRaceGasWei ?? 0n));
    },
  });
  const lostGasFollow = new Follower(lostGas);
  new Gauge({
    name: `${PREFIX}net_profit_collateral`,
    help:
      "Keeper rewards of our liquidations less the gas and oracle fees paid (at keeper.gasTokenPrice), collateral " +
      "units, since start; unset without a gas token price",
    registers,
    collect() {
      const net = s.executor.netProfit?.();
      if (net !== undefined) this.set(fromWad(net).toNumber());
    },
  });
  const rpcCalls: Counter<string> = new Counter({
    name: `${PREFIX}rpc_requests_total`,
    help: "JSON-RPC calls sent, by endpoint (redacted) and method (a batch counts each of its calls)",
    labelNames: ["endpoint", "method"],
    registers,
    collect() {
      for (const r of s.rpcStats?.calls.values() ?? []) {
        rpcCallsFollow.to({ endpoint: r.endpoint, method: r.method }, r.count);
      }
    },
  });
  const rpcCallsFollow = new Follower(rpcCalls);
  const rpcErrors: Counter<string> = new Counter({
    name: `${PREFIX}rpc_errors_total`,
    help: "Failed HTTP exchanges with an RPC endpoint, by endpoint (redacted) and kind: timeout, network, http_<status>",
    labelNames: ["endpoint", "kind"],
    registers,
    collect() {
      for (const r of s.rpcStats?.errors.values() ?? []) {
        rpcErrorsFollow.to({ endpoint: r.endpoint, kind: r.kind }, r.count);
      }
    },
  });
  const rpcErrorsFollow = new Follower(rpcErrors);

  // one pass over the book per scrape, shared by the two per-market gauges
  let books: { at: number; rows: Map<string, { tracked: number; atRisk: number }> } | undefined;
  const byMarket = () => {
    const now = performance.now();
    if (!books || now - books.at > 100) books = { at: now, rows: positionsByMarket(s, s.atRiskDistance) };
    return books.rows;
  };
  // pull-oracle exchanges only; elsewhere 0 and unset
  new Gauge({
    name: `${PREFIX}price_stream_stale`,
    help: "1 while every endpoint of the pull oracle's price service (Hermes) is down or behind: nothing is liquidated against stale prices",
    registers,
    collect() {
      this.set(s.priceStream?.().stale ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}price_stream_last_event_age_seconds`,
    help: "Seconds since the pull oracle's price stream last delivered an event",
    registers,
    collect() {
      const age = s.priceStream?.().lastEventAgeMs;
      if (age !== undefined) this.set(age / 1000);
    },
  });
  new Gauge({
    name: `${PREFIX}positions_tracked`,
    help: "Open positions in the keeper's book, by market",
    labelNames: ["market"],
    registers,
    collect() {
      this.reset();
      for (const [market, row] of byMarket()) this.set({ market }, row.tracked);
    },
  });
  new Gauge({
    name: `${PREFIX}positions_at_risk`,
    help: "Open positions whose liquidation price is within keeper.atRiskDistance of the mark price (or past it), by market",
    labelNames: ["market"],
    registers,
    collect() {
      this.reset();
      for (const [market, row] of byMarket()) this.set({ market }, row.atRisk);
    },
  });

  // the keeper's core failure: liquidatable positions it has not liquidated
  let left: { at: number; reading: LeftBehindReading | undefined } | undefined;
  const leftBehind = () => {
    const now = performance.now();
    if (!left || now - left.at > 100) left = { at: now, reading: s.leftBehind?.() };
    return left.reading;
  };
  new Gauge({
    name: `${PREFIX}liquidatable_positions`,
    help: "Open positions below maintenance margin by the risk model at the last tick (not yet liquidated), by market",
    labelNames: ["market"],
    registers,
    collect() {
      this.reset();
      const r = leftBehind();
      for (const market of s.book.markets.values()) this.set({ market: market.name }, r?.byMarket.get(market.id) ?? 0);
    },
  });
  new Gauge({
    name: `${PREFIX}liquidatable_oldest_age_seconds`,
    help: "Seconds since the oldest still-open liquidatable position was first found liquidatable (0: none)",
    registers,
    collect() {
      this.set(leftBehind()?.oldestAgeSeconds ?? 0);
    },
  });
  new Gauge({
    name: `${PREFIX}liquidatable_oldest_age_blocks`,
    help: "Blocks since the oldest still-open liquidatable position was first found liquidatable (0: none)",
    registers,
    collect() {
      this.set(leftBehind()?.oldestAgeBlocks ?? 0);
    },
  });

  new Gauge({
    name: `${PREFIX}oracle_answer_age_seconds`,
    help: "Age of each market's oracle answer at the last processed head (head timestamp - updatedAt), by market",
    labelNames: ["market"],
    registers,
    collect() {
      this.reset();
      const tick = s.watcher.latestTick;
      if (!tick?.oracleUpdatedAt) return;
      for (const [id, updatedAt] of tick.oracleUpdatedAt) {
        const market = s.book.markets.get(id)?.name ?? String(id);
        this.set({ market }, Number(tick.timestamp - updatedAt));
      }
    },
  });

  new Gauge({
    name: `${PREFIX}head_block`,
    help: "Newest chain head seen (before the first processed head: the head the backfill runs to)",
    registers,
    collect() {
      this.set(Number(reading(s).headBlock));
    },
  });
  new Gauge({
    name: `${PREFIX}endpoint_head_block`,
    help: "Freshest head any RPC endpoint reported (asked while no new head is processed); 0 before any answer",
    registers,
    collect() {
      this.set(Number(s.freshness?.().reportedHead ?? 0n));
    },
  });
  new Gauge({
    name: `${PREFIX}head_behind`,
    help:
      "1 when the keeper is behind what the endpoints report, or no endpoint answers (once backfilled); 0 when it " +
      "is current or the chain is quiet: the /healthz rule",
    registers,
    collect() {
      const v = s.backfilled() ? s.freshness?.() : undefined;
      this.set(v && !v.healthy ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}processed_block`,
    help: "Last block whose events have all been applied",
    registers,
    collect() {
      this.set(Number(s.watcher.processedBlock));
    },
  });
  new Gauge({
    name: `${PREFIX}head_age_seconds`,
    help: "Seconds since the last new head was processed (since start, before the first one)",
    registers,
    collect() {
      this.set(reading(s).headAgeSeconds);
    },
  });
  new Gauge({
    name: `${PREFIX}processing_lag_blocks`,
    help: "Blocks between the newest head seen and the last block processed",
    registers,
    collect() {
      this.set(Number(reading(s).lagBlocks));
    },
  });
  new Gauge({
    name: `${PREFIX}backfill_target_block`,
    help: "Block the backfill runs to (the chain head at start)",
    registers,
    collect() {
      this.set(Number(s.startHead));
    },
  });
  new Gauge({
    name: `${PREFIX}backfill_completed`,
    help: "1 once the backfill has completed, 0 before",
    registers,
    collect() {
      this.set(s.backfilled() ? 1 : 0);
    },
  });

  new Gauge({
    name: `${PREFIX}pending_transactions`,
    help: "Unresolved liquidation transactions (pending, cancelling, being signed), by signer address",
    labelNames: ["signer"],
    registers,
    collect() {
      this.reset();
      for (const [signer, n] of pendingBySigner(s)) this.set({ signer }, n);
    },
  });
  new Gauge({
    name: `${PREFIX}signer_balance_wei`,
    help: "Gas-token balance of each signer as the executor last read it, wei",
    labelNames: ["signer"],
    registers,
    collect() {
      this.reset();
      for (const x of s.signers) if (x.balance !== undefined) this.set({ signer: x.address }, Number(x.balance));
    },
  });
  new Gauge({
    name: `${PREFIX}build_info`,
    help: "Always 1; labels: the keeper's version, the commit it was built from (GIT_COMMIT), its protocol adapter",
    labelNames: ["version", "commit", "adapter", "node"],
    registers,
    collect() {
      this.reset();
      this.set(
        {
          version: packageVersion(),
          commit: buildCommit(),
          adapter: s.adapter,
          node: process.version,
        },
        1,
      );
    },
  });
  return registry;
}

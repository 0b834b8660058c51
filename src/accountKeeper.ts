/**
 * The keeper's core loop for an exchange whose book is records and whose health belongs to accounts (cross margin:
 * Perp v2): events go to the book (src/state/recordBook.ts), each replaced account to the cross-margin risk engine
 * (src/risk/cross/) and to the executor, each head's prices to the risk engine, and its findings to the executor.
 * Exchange-neutral: what the records are, how health is computed and what a liquidation call addresses are the
 * adapter's (`AccountAdapter`).
 *
 * Accounts whose evaluation is a bound that straddles the boundary are settled by the model's confirmation reads,
 * pinned to the head's hash, made off the tick's path; the answer is observed by the engine and, when liquidatable,
 * handed to the executor then.
 *
 * Looking ahead: a tick may carry the prices the next block is expected to see (`tick.ahead`: views read at its
 * number and expected time). The accounts that are safe now but liquidatable there (CrossRiskEngine.lookahead, exact
 * on the cold and warm tiers) are handed to the executor at this head (`account_anticipated`), so that their
 * liquidation is in the very block that first allows it rather than the one after. Until the next head they count
 * as liquidatable; the next head judges them as it finds them (a forecast that failed cancels what is still pending,
 * and a liquidation that lands early is skipped by the liquidator contract, not reverted).
 */
import type { Hex, PublicClient } from "viem";
import { describeError } from "./chain/errors.ts";
import { readPinned } from "./chain/pinnedReads.ts";
import type { Executor } from "./executor/executor.ts";
import { big, type Logger } from "./ops/logger.ts";
import type { Finding } from "./protocol/adapter.ts";
import type { AccountRecord, Evaluation, MarginModel, PriceId, PriceView } from "./protocol/types.ts";
import type { CrossRiskEngine } from "./risk/cross/engine.ts";
import type { LogRef } from "./state/events.ts";
import type { Applied, BookView, RecordBook, RecordState } from "./state/recordBook.ts";
import type { Tick } from "./watcher/types.ts";

/** What the core loop needs of a cross-margin exchange's adapter. */
export interface AccountAdapter<A extends AccountRecord, M, G> {
  readonly model: MarginModel<A>;
  /** What to liquidate of a liquidatable account, in order: its targets, sizes, shortfall and expected reward. */
  findings(account: A, evaluation: Evaluation, view: PriceView, book: BookView<A, M, G>): Finding[];
  /** The keys of an account's targets (its cooldowns and hold-backs end when it changes). */
  targetKeys(account: A): readonly string[];
  /** The prices a market's record feeds: a change of its parameters has every account on them judged again. */
  pricesOf(market: M): readonly PriceId[];
  /** The account a target key belongs to. */
  accountOf(targetKey: string): string;
}

export interface AccountKeeperParts<A extends AccountRecord, M, G, E extends { readonly ref: LogRef }> {
  readonly book: RecordBook<A, M, G, E>;
  readonly risk: CrossRiskEngine<A>;
  readonly adapter: AccountAdapter<A, M, G>;
  readonly executor: Pick<Executor, "submit" | "onHead" | "onTargetChanged">;
  /** Where confirmation reads are made (pinned to the head's hash). */
  readonly client: PublicClient;
  readonly multicall3?: Hex;
  readonly log: Logger;
}

/** How long after a tick its account_flagged lines are written: after the first broadcast, not before. */
const LOG_DELAY_MS = 25;

export class AccountKeeper<A extends AccountRecord, M, G, E extends { readonly ref: LogRef }> {
  private lastTick: Tick | undefined;
  private lastView: PriceView | undefined;
  /** Accounts found liquidatable at the last tick (by key), with their evaluation. */
  private flagged = new Map<string, Evaluation>();
  /** Replayed history is applied to the book alone; the engine is rebuilt from the book once, before it is asked. */
  private stale = false;
  /** Confirmation reads in flight, by account: one at a time each. */
  private readonly confirming = new Set<string>();
  /** Accounts the last tick's forecast found liquidatable in the next block (not at the tick itself). */
  private anticipated = new Set<string>();

  constructor(private readonly p: AccountKeeperParts<A, M, G, E>) {}

  get tick(): Tick | undefined {
    return this.lastTick;
  }

  /** Applies one chain event in order; `live` events (not replayed history) reach the engine at once. */
  handleEvent(event: E, live = true): Applied<A, M, G> | undefined {
    const applied = this.p.book.apply(event);
    if (!applied) return undefined;
    if (!live) this.stale = true;
    this.follow(applied.changes, "after");
    return applied;
  }

  /** Undoes what a reorganisation removed (changes in the order they were applied). */
  rollback(applied: readonly Applied<A, M, G>[], cursor: LogRef | undefined): void {
    this.p.book.rewind(applied, cursor);
    for (let i = applied.length - 1; i >= 0; i--) this.follow((applied[i] as Applied<A, M, G>).changes, "before");
  }

  /** Replaces the chain's state with a snapshot's. */
  restore(state: RecordState<A, M, G>): void {
    this.reset();
    this.p.book.restore(state);
    this.stale = true;
  }

  /** Forgets the chain's state before it is rebuilt. */
  reset(): void {
    this.p.book.reset();
    this.p.risk.clear();
    this.flagged.clear();
    this.stale = false;
  }

  /** The account record a target belongs to, as the book holds it now (the executor's `current`). */
  current(targetKey: string): A | undefined {
    return this.p.book.accounts.get(this.p.adapter.accountOf(targetKey));
  }

  /**
   * Whether the target's account was liquidatable at the last tick. Undefined (no verdict: a pending liquidation is
   * kept, not cancelled) when nothing priced it: no tick yet, a price it needs missing at the head (a market's view
   * reverted), or a confirmation read still out.
   */
  stillLiquidatable(targetKey: string): boolean | undefined {
    if (!this.lastView) return undefined;
    const key = this.p.adapter.accountOf(targetKey);
    if (!this.p.book.accounts.has(key)) return false;
    if (this.flagged.has(key) || this.anticipated.has(key)) return true;
    if (this.p.risk.tierOf(key) === "waiting" || this.confirming.has(key)) return undefined;
    return false;
  }

  /** Whether any account is being liquidated: found liquidatable at the last tick, or in its forecast. */
  busy(): boolean {
    return this.flagged.size > 0 || this.anticipated.size > 0;
  }

  /** Accounts found liquidatable at the last tick that are still in the book (ops: left behind). */
  *liquidatableKeys(): Iterable<{ key: string; marketId: number }> {
    for (const key of this.flagged.keys()) {
      const account = this.p.book.accounts.get(key);
      if (account) yield { key, marketId: account.prices[0] ?? -1 };
    }
  }

  /**
   * Finds the accounts below maintenance at this head's prices and hands their targets to the executor. `head`
   * false: a price tick between heads (a pull oracle's message, the prices the next block will be judged at): the
   * same judgement, without the head's own work (the executor's monitoring of what is pending, the look-ahead).
   */
  handleTick(tick: Tick, head = true): void {
    this.indexed();
    this.lastTick = tick;
    const view: PriceView = { prices: tick.prices, timestamp: tick.timestamp, blockNumber: tick.blockNumber };
    this.lastView = view;
    const result = this.p.risk.tick(view);
    const next = new Map<string, Evaluation>();
    const findings: Finding[] = [];
    for (const f of result.liquidatable) {
      next.set(f.account.key, f.evaluation);
      findings.push(...this.p.adapter.findings(f.account, f.evaluation, view, this.p.book));
    }
    const fresh = [...next.keys()].filter((k) => !this.flagged.has(k));
    this.flagged = next;
    if (findings.length > 0) this.p.executor.submit(findings, tick);
    if (head) {
      this.anticipated = new Set();
      // before onHead: what is pending for the next block is still wanted there
      if (tick.ahead) this.lookahead(tick, tick.ahead);
      this.p.executor.onHead(tick);
    }
    // said once the work is under way: a crash's hundreds of lines must not delay its first broadcast (signed,
    // journaled and sent within a few milliseconds of the tick)
    if (fresh.length > 0) {
      setTimeout(() => {
        for (const key of fresh) this.logFlagged(key, next.get(key) as Evaluation, tick);
      }, LOG_DELAY_MS).unref();
    }
    if (result.confirm.length > 0) void this.confirm(result.confirm, view, tick);
  }

  /** The accounts the next block will find below maintenance, by the forecast: sent for that block. */
  private lookahead(tick: Tick, ahead: NonNullable<Tick["ahead"]>): void {
    if (ahead.timestamp <= tick.timestamp || ahead.prices.size === 0) return;
    const view: PriceView = { prices: ahead.prices, timestamp: ahead.timestamp, blockNumber: ahead.blockNumber };
    const { liquidatable, truncated } = this.p.risk.lookahead(view);
    if (truncated) {
      this.p.log.warn(
        { event: "lookahead_truncated", blockNumber: big(tick.blockNumber) },
        `too many accounts near maintenance to look ahead at all of them at block ${tick.blockNumber}`,
      );
    }
    const findings: Finding[] = [];
    for (const f of liquidatable) {
      const key = f.account.key;
      if (this.flagged.has(key) || this.confirming.has(key)) continue;
      this.anticipated.add(key);
      findings.push(...this.p.adapter.findings(f.account, f.evaluation, view, this.p.book));
      this.p.log.info(
        {
          event: "account_anticipated",
          account: key,
          blockNumber: big(tick.blockNumber),
          forBlock: big(ahead.blockNumber),
          expectedTimestamp: big(ahead.timestamp),
        },
        `account ${key} will be below maintenance margin in block ${ahead.blockNumber}: its liquidation is sent for it`,
      );
    }
    if (findings.length > 0) this.p.executor.submit(findings, tick);
  }

  /** The engine follows the book (rebuilt from it after replayed history). */
  private indexed(): void {
    if (!this.stale) return;
    this.stale = false;
    this.p.risk.clear();
    for (const account of this.p.book.accounts.values()) this.p.risk.upsert(account);
  }

  /** The engine and the executor hear what changed (`side`: the record now in the book). */
  private follow(changes: Applied<A, M, G>["changes"], side: "before" | "after"): void {
    for (const c of changes) {
      if (c.type === "account") {
        const now = c[side];
        const was = c[side === "after" ? "before" : "after"];
        if (!this.stale) {
          if (now) this.p.risk.upsert(now);
          else this.p.risk.remove(c.key);
        }
        const keys = new Set([
          ...(was ? this.p.adapter.targetKeys(was) : []),
          ...(now ? this.p.adapter.targetKeys(now) : []),
        ]);
        for (const key of keys) this.p.executor.onTargetChanged(key);
        this.flagged.delete(c.key);
      } else if (c.type === "market") {
        const m = c[side] ?? c[side === "after" ? "before" : "after"];
        if (m && !this.stale) for (const id of this.p.adapter.pricesOf(m)) this.p.risk.touchPrice(id);
      } else if (!this.stale) {
        // a global parameter (a ratio) changed: every account is judged again
        this.stale = true;
      }
    }
  }

  /**
   * Settles bounded evaluations that straddle the boundary with the model's reads at the head's hash; the engine
   * observes the chain's answer, and a liquidatable one goes to the executor at once.
   */
  private async confirm(
    list: readonly { account: A; evaluation: Evaluation }[],
    view: PriceView,
    tick: Tick,
  ): Promise<void> {
    const reader = this.p.adapter.model.confirm;
    if (!reader || !tick.blockHash) return;
    const todo = list.filter((f) => !this.confirming.has(f.account.key));
    if (todo.length === 0) return;
    for (const f of todo) this.confirming.add(f.account.key);
    try {
      const calls = todo.map((f) => reader.reads(f.account));
      const answers = await readPinned(this.p.client, calls.flat(), tick.blockHash, this.p.multicall3);
      if (this.lastTick !== tick) return; // a newer head judges them afresh
      const findings: Finding[] = [];
      let at = 0;
      for (const [i, f] of todo.entries()) {
        const n = (calls[i] as readonly unknown[]).length;
        const results = answers.slice(at, at + n).map((r) => (r.status === "fulfilled" ? r.value : undefined));
        at += n;
        if (this.p.book.accounts.get(f.account.key) !== f.account) continue; // changed meanwhile: judged at the next head
        let evaluation: Evaluation;
        try {
          evaluation = reader.decode(f.account, results);
        } catch (error) {
          this.p.log.warn(
            { event: "account_confirm_failed", account: f.account.key, error: describeError(error) },
            `could not confirm ${f.account.key} at block ${tick.blockNumber}; judged again at the next head`,
          );
          continue;
        }
        if (this.p.risk.observe(f.account.key, evaluation, view) === "liquidatable") {
          this.flagged.set(f.account.key, evaluation);
          findings.push(...this.p.adapter.findings(f.account, evaluation, view, this.p.book));
          this.logFlagged(f.account.key, evaluation, tick);
        }
      }
      if (findings.length > 0) this.p.executor.submit(findings, tick);
    } catch (error) {
      this.p.log.warn(
        { event: "account_confirm_failed", accounts: todo.length, error: describeError(error) },
        `confirmation reads at block ${tick.blockNumber} failed; judged again at the next head`,
      );
    } finally {
      for (const f of todo) this.confirming.delete(f.account.key);
    }
  }

  private logFlagged(key: string, evaluation: Evaluation, tick: Tick): void {
    const slack =
      evaluation.kind === "exact"
        ? evaluation.balance - evaluation.requirement
        : evaluation.kind === "bounded"
          ? evaluation.high
          : undefined;
    this.p.log.info(
      {
        event: "account_flagged",
        account: key,
        requirement: evaluation.kind === "unpriced" ? undefined : big(evaluation.requirement),
        slack: slack === undefined ? undefined : big(slack),
        blockNumber: big(tick.blockNumber),
      },
      `account ${key} below maintenance margin at block ${tick.blockNumber}`,
    );
  }
}

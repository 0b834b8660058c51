/**
 * Where pending oracle updates come from (issue 9):
 *
 * - `subscription`: eth_subscribe `newPendingTransactions` with full transactions (`true`: geth, reth, Erigon,
 *   Anvil), kept up by src/chain/subscription.ts. A node that sends hashes only gets each one looked up
 *   (eth_getTransactionByHash, a few at a time).
 * - `txpool`: txpool_content polled every `pollMs`, for an RPC without WebSocket.
 *
 * Each update is reported once per hash, with performance.now() when it was seen. `lookup` says what the node knows
 * of a hash now (mined, pending, unknown): how a dropped or replaced update is noticed.
 */
import PQueue from "p-queue";
import type { Hex, PublicClient } from "viem";
import { describeError } from "../chain/errors.ts";
import { type Subscription, subscribe } from "../chain/subscription.ts";
import type { Logger } from "../ops/logger.ts";
import { type AggregatorMap, type PendingUpdate, pendingOracleUpdates, updateOf } from "./pendingUpdates.ts";

export interface PendingSourceOptions {
  readonly client: PublicClient;
  /** With a WebSocket endpoint: the subscription; without: the pool is polled. */
  readonly wsUrl: string | undefined;
  readonly log: Logger;
  /** The aggregators to watch now (they change when a proxy points elsewhere). */
  readonly aggregators: () => AggregatorMap;
  readonly onUpdate: (update: PendingUpdate, seenAt: number) => void;
  /** txpool_content polling interval. */
  readonly pollMs: number;
  /** One client per endpoint: `lookup` asks them all (default: `client`). */
  readonly lookupClients?: readonly PublicClient[];
}

/** Hashes remembered as reported; older ones are forgotten past this. */
const SEEN_LIMIT = 10_000;
/** Hash-only notifications looked up at once, and the most waiting (a flood is shed, not queued without end). */
const LOOKUP_CONCURRENCY = 8;
const LOOKUP_BACKLOG = 2_000;

export class PendingSource {
  private readonly seen = new Set<string>();
  private subscription: Subscription | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private readonly lookups = new PQueue({ concurrency: LOOKUP_CONCURRENCY });
  private pollFailures = 0;

  constructor(private readonly o: PendingSourceOptions) {}

  get kind(): "subscription" | "txpool" {
    return this.o.wsUrl === undefined ? "txpool" : "subscription";
  }

  start(): void {
    if (this.o.wsUrl !== undefined) {
      this.subscription = subscribe({
        wsUrl: this.o.wsUrl,
        params: ["newPendingTransactions", true],
        log: this.o.log,
        what: "pending transaction subscription",
        step: "subscribe_pending",
        onData: (result) => this.onNotification(result),
        // the subscription tells of new transactions only: what is in the pool already is read once, where served
        onSubscribed: () => void this.readPool().catch(() => {}), // not served: the subscription covers what comes
      });
      return;
    }
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    this.subscription?.stop();
    if (this.timer) clearTimeout(this.timer);
    this.lookups.clear();
  }

  /** What the node knows of a transaction now: mined (in which block), pending, or unknown. */
  async lookup(hash: Hex): Promise<{ status: "mined" | "pending" | "unknown"; blockNumber?: bigint }> {
    // every endpoint at once: behind a load balancer one backend's "unknown" is only its own pool's view, so an
    // update is unknown only when no endpoint that answered knows it
    const clients = this.o.lookupClients?.length ? this.o.lookupClients : [this.o.client];
    const answers = await Promise.allSettled(
      clients.map(
        (c) =>
          c.request({ method: "eth_getTransactionByHash", params: [hash] }) as Promise<{
            blockNumber?: unknown;
          } | null>,
      ),
    );
    let answered = false;
    let pending = false;
    let failure: unknown;
    for (const a of answers) {
      if (a.status === "rejected") {
        failure ??= a.reason;
        continue;
      }
      answered = true;
      const tx = a.value;
      if (tx === null || tx === undefined) continue;
      if (typeof tx.blockNumber === "string") return { status: "mined", blockNumber: BigInt(tx.blockNumber) };
      pending = true;
    }
    if (!answered) throw failure;
    return { status: pending ? "pending" : "unknown" };
  }

  private onNotification(result: unknown): void {
    const seenAt = performance.now();
    if (typeof result === "string") {
      // a node that sends hashes only: look the transaction up (its `to` is not known until then)
      if (this.seen.has(result) || this.lookups.size >= LOOKUP_BACKLOG) return;
      void this.lookups.add(async () => {
        const tx = await this.o.client
          .request({ method: "eth_getTransactionByHash", params: [result as Hex] })
          .catch(() => null);
        this.report(tx, seenAt);
      });
      return;
    }
    this.report(result, seenAt);
  }

  private report(tx: unknown, seenAt: number): void {
    const update = updateOf(tx, this.o.aggregators());
    if (update && this.firstSight(update.txHash)) this.deliver(update, seenAt);
  }

  /** Hands an update on; a failure acting on it is logged, never thrown into the socket's callback. */
  private deliver(update: PendingUpdate, seenAt: number): void {
    try {
      this.o.onUpdate(update, seenAt);
    } catch (error) {
      this.o.log.error(
        { event: "executor_error", step: "pending_update", txHash: update.txHash, error: describeError(error) },
        `acting on pending oracle update ${update.txHash} failed`,
      );
    }
  }

  /** Whether a hash is new (and now remembered; the oldest forgotten past SEEN_LIMIT). */
  private firstSight(hash: string): boolean {
    if (this.seen.has(hash)) return false;
    this.seen.add(hash);
    if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value as string);
    return true;
  }

  /** One read of the pool (txpool_content): each update not reported yet is. */
  private async readPool(): Promise<void> {
    const seenAt = performance.now();
    for (const update of await pendingOracleUpdates(this.o.client, this.o.aggregators())) {
      if (this.firstSight(update.txHash)) this.deliver(update, seenAt);
    }
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.readPool();
      if (this.pollFailures > 0) {
        this.o.log.info({ event: "rpc_recovered", step: "txpool_poll" }, "pool polling answers again");
      }
      this.pollFailures = 0;
    } catch (error) {
      if (this.pollFailures++ === 0) {
        this.o.log.warn(
          { event: "rpc_error", step: "txpool_poll", error: describeError(error) },
          "reading the pool (txpool_content) failed; pending oracle updates are not seen until it answers",
        );
      }
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.poll(), this.o.pollMs);
  }
}

/**
 * Competitors seen in the pool (issue 18): other senders' pending liquidation calls of the exchange, recognised by
 * the protocol adapter's decoder (LiquidationProtocol.competitorTargets), by the targets they address. What the
 * executor needs to answer a contested target within a head (outbid it while it pays, or withdraw): the highest
 * competing bid on each target, live for a few blocks after it was seen.
 *
 * Transactions come from the node: eth_subscribe newPendingTransactions with full transactions over WebSocket (the
 * subscription precompute uses, src/chain/subscription.ts), or txpool_content polled. Our own senders are never
 * competitors. A bid is forgotten `ttlBlocks` after it was seen (mined, dropped or replaced: the book or a newer bid
 * says the rest).
 */
import {
  type Address,
  BaseError,
  type Hex,
  hexToBigInt,
  MethodNotFoundRpcError,
  MethodNotSupportedRpcError,
  type PublicClient,
} from "viem";
import { describeError } from "../chain/errors.ts";
import { type Subscription, subscribe } from "../chain/subscription.ts";
import { big, type Logger } from "../ops/logger.ts";
import type { LiquidationProtocol } from "../protocol/adapter.ts";

/** Another sender's pending liquidation of one of our targets. */
export interface CompetitorBid {
  readonly hash: Hex;
  readonly from: Address;
  readonly nonce: bigint;
  readonly maxFeePerGas: bigint;
  /** Its tip (a legacy transaction's gas price stands for both). */
  readonly maxPriorityFeePerGas: bigint;
  /** performance.now() when it was seen, and the head then. */
  readonly seenAt: number;
  readonly seenAtBlock: bigint;
}

/** A pending transaction as nodes give it (RPC fields, hex quantities). */
export interface PoolTransaction {
  readonly hash: Hex;
  readonly from: Address;
  readonly to?: Address | null;
  readonly input?: Hex;
  readonly nonce: Hex | bigint;
  readonly maxFeePerGas?: Hex | bigint | null;
  readonly maxPriorityFeePerGas?: Hex | bigint | null;
  readonly gasPrice?: Hex | bigint | null;
}

export interface CompetitorWatchOptions {
  readonly protocol: Pick<LiquidationProtocol, "competitorTargets">;
  /** Whether an address is one of ours (a signer, our liquidator contract). */
  readonly ours: (address: Address) => boolean;
  readonly log: Logger;
  /** The head now: a bid's age is counted from it. */
  readonly head: () => bigint;
  /** Blocks a bid is kept after it was seen (default 3). */
  readonly ttlBlocks?: bigint;
  /** A bid on these targets was just recorded (the executor answers it: Executor.contested). */
  readonly onBid?: (keys: readonly string[], bid: CompetitorBid) => void;
}

const big_ = (v: Hex | bigint | null | undefined): bigint | undefined =>
  v === undefined || v === null ? undefined : typeof v === "bigint" ? v : hexToBigInt(v);

export class CompetitorWatch {
  /** By target key: the bids on it, by transaction hash. */
  private readonly bids = new Map<string, Map<Hex, CompetitorBid>>();
  private readonly seen = new Set<Hex>();
  /** Live bids by sender (lower case) and nonce: the targets each one bids on. */
  private readonly bidders = new Map<string, Map<bigint, readonly string[]>>();
  /** Bids seen, by competitor (lower-case sender). */
  readonly seenBy = new Map<string, number>();
  private subscription: Subscription | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly o: CompetitorWatchOptions) {}

  /** A pending transaction: recorded when it liquidates targets of ours and is not ours. Returns its target keys. */
  observe(tx: PoolTransaction, seenAt = performance.now()): readonly string[] {
    if (this.seen.has(tx.hash)) return [];
    const from = tx.from.toLowerCase();
    // a competitor's own replacement of a bid by anything else (its cancel) withdraws that bid
    const bidding = this.bidders.get(from);
    if (bidding) this.withdraw(from, big_(tx.nonce) ?? 0n, bidding);
    if (!tx.to || !tx.input || this.o.ours(tx.from) || this.o.ours(tx.to)) return [];
    const keys = this.o.protocol.competitorTargets?.(tx.input, tx.to);
    if (!keys || keys.length === 0) return [];
    this.seen.add(tx.hash);
    if (this.seen.size > 20_000) this.seen.delete(this.seen.values().next().value as Hex);
    const price = big_(tx.gasPrice);
    const bid: CompetitorBid = {
      hash: tx.hash,
      from: tx.from.toLowerCase() as Address,
      nonce: big_(tx.nonce) ?? 0n,
      maxFeePerGas: big_(tx.maxFeePerGas) ?? price ?? 0n,
      maxPriorityFeePerGas: big_(tx.maxPriorityFeePerGas) ?? price ?? 0n,
      seenAt,
      seenAtBlock: this.o.head(),
    };
    let nonces = this.bidders.get(bid.from);
    if (!nonces) {
      nonces = new Map();
      this.bidders.set(bid.from, nonces);
    }
    nonces.set(bid.nonce, keys);
    for (const key of keys) {
      let on = this.bids.get(key);
      if (!on) {
        on = new Map();
        this.bids.set(key, on);
      }
      // a replacement of the competitor's own (same sender and nonce) supersedes its earlier bid
      for (const [hash, other] of on) if (other.from === bid.from && other.nonce === bid.nonce) on.delete(hash);
      on.set(bid.hash, bid);
    }
    this.seenBy.set(bid.from, (this.seenBy.get(bid.from) ?? 0) + 1);
    this.o.log.info(
      {
        event: "competitor_seen",
        competitor: bid.from,
        txHash: bid.hash,
        targets: keys.length,
        maxPriorityFeePerGas: big(bid.maxPriorityFeePerGas),
      },
      `a competitor (${bid.from}) is liquidating ${keys.length} of our target(s) in the pool`,
    );
    this.o.onBid?.(keys, bid);
    return keys;
  }

  /** The bids a sender's transaction at `nonce` made (replaced now by something that is no bid on them). */
  private withdraw(from: string, nonce: bigint, nonces: Map<bigint, readonly string[]>): void {
    const keys = nonces.get(nonce);
    if (!keys) return;
    nonces.delete(nonce);
    if (nonces.size === 0) this.bidders.delete(from);
    for (const key of keys) {
      const on = this.bids.get(key);
      if (!on) continue;
      for (const [hash, bid] of on) if (bid.from === from && bid.nonce === nonce) on.delete(hash);
      if (on.size === 0) this.bids.delete(key);
    }
  }

  /** The highest competing bid on a target (by tip), or undefined when none is live. */
  contest(key: string): CompetitorBid | undefined {
    let best: CompetitorBid | undefined;
    for (const bid of this.bids.get(key)?.values() ?? []) {
      if (!best || bid.maxPriorityFeePerGas > best.maxPriorityFeePerGas) best = bid;
    }
    return best;
  }

  /** At each head: bids older than the ttl are forgotten. */
  onHead(blockNumber: bigint): void {
    const ttl = this.o.ttlBlocks ?? 3n;
    for (const [key, on] of this.bids) {
      for (const [hash, bid] of on) if (blockNumber - bid.seenAtBlock > ttl) on.delete(hash);
      if (on.size === 0) this.bids.delete(key);
    }
    // the senders' index keeps only nonces with a live bid
    const live = new Set<string>();
    for (const on of this.bids.values()) for (const bid of on.values()) live.add(`${bid.from}:${bid.nonce}`);
    for (const [from, nonces] of this.bidders) {
      for (const nonce of nonces.keys()) if (!live.has(`${from}:${nonce}`)) nonces.delete(nonce);
      if (nonces.size === 0) this.bidders.delete(from);
    }
  }

  /** Targets with a live competing bid. */
  get contested(): number {
    return this.bids.size;
  }

  /**
   * Follows the pool: a WebSocket subscription to full pending transactions, or txpool_content every `pollMs`.
   */
  start(o: {
    readonly client: PublicClient;
    readonly wsUrl?: string;
    readonly pollMs: number;
    /** Polling only: whether the pool is worth reading now (we have liquidations under way); default always. */
    readonly active?: () => boolean;
  }): void {
    if (o.wsUrl !== undefined) {
      this.subscription = subscribe({
        wsUrl: o.wsUrl,
        params: ["newPendingTransactions", true],
        log: this.o.log,
        what: "pending transaction subscription (competitors)",
        step: "subscribe_competitors",
        onData: (result) => {
          if (result && typeof result === "object") this.observe(result as PoolTransaction);
        },
      });
      return;
    }
    let failures = 0;
    const poll = async () => {
      this.timer = undefined;
      if (o.active?.() !== false) {
        try {
          const content = (await o.client.request({ method: "txpool_content" as never })) as {
            pending?: Record<string, Record<string, PoolTransaction>>;
          };
          const now = performance.now();
          for (const byNonce of Object.values(content.pending ?? {})) {
            for (const tx of Object.values(byNonce)) this.observe(tx, now);
          }
          if (failures > 0)
            this.o.log.info({ event: "rpc_recovered", step: "txpool_content" }, "the pool answers again");
          failures = 0;
        } catch (error) {
          if (unsupported(error)) {
            // most hosted RPCs do not serve the pool: said once, never asked again (a WebSocket endpoint sees it)
            this.o.log.warn(
              { event: "competitor_watch_unavailable", error: describeError(error) },
              "the RPC does not serve txpool_content: competitors' pending liquidations are not seen (set network.wsUrl)",
            );
            return;
          }
          if (failures++ === 0) {
            this.o.log.warn(
              { event: "rpc_error", step: "txpool_content", error: describeError(error) },
              "reading the pool failed; competitors' pending liquidations are not seen until it answers",
            );
          }
        }
      }
      if (this.stopped) return;
      this.timer = setTimeout(() => void poll(), o.pollMs);
      this.timer.unref?.();
    };
    void poll();
  }

  private stopped = false;

  stop(): void {
    this.stopped = true;
    this.subscription?.stop();
    if (this.timer) clearTimeout(this.timer);
  }
}

/** The node does not serve the method (JSON-RPC -32601 / -32004, or a provider's words for it). */
function unsupported(error: unknown): boolean {
  if (!(error instanceof BaseError)) return false;
  if (error.walk((e) => e instanceof MethodNotFoundRpcError || e instanceof MethodNotSupportedRpcError)) return true;
  const text = `${error.shortMessage} ${error.details ?? ""}`.toLowerCase();
  return /not (supported|available|allowed|whitelisted)|does not exist|method not found|unsupported method/.test(text);
}

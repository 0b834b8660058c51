/**
 * Turns confirmed candidates into liquidations: simulate, check the reward pays, fee it (EIP-1559), nonce it
 * locally, send, and watch it to inclusion. One attempt per position at a time; signing and broadcasting go
 * through one lane so nonces stay in order, while receipts are awaited in parallel.
 */
import PQueue from "p-queue";
import {
  type Account,
  type Address,
  BaseError,
  type Chain,
  ContractFunctionRevertedError,
  type Hex,
  type PublicClient,
  parseEventLogs,
  TimeoutError,
  type Transport,
  WaitForTransactionReceiptTimeoutError,
  type WalletClient,
} from "viem";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { describeError } from "../chain/errors.ts";
import { big, type Logger } from "../ops/logger.ts";
import { fromWad } from "../risk/format.ts";
import type { Candidate } from "../risk/scan.ts";
import type { BookChange, TrackedPosition } from "../state/book.ts";
import { expectedProfit, planFees } from "./fees.ts";
import type { NonceAllocator } from "./nonces.ts";

export interface ExecutorOptions {
  readonly publicClient: PublicClient<Transport, Chain>;
  readonly walletClient: WalletClient<Transport, Chain, Account>;
  readonly engine: Address;
  readonly nonces: NonceAllocator;
  readonly log: Logger;
  /** Simulate and log, never send. */
  readonly dryRun: boolean;
  /** Smallest keeper reward worth a transaction, WAD quote. */
  readonly minKeeperReward: bigint;
  /** Gas limit = estimate * gasLimitMultiplierPercent / 100. */
  readonly gasLimitMultiplierPercent: bigint;
  /** Priority fee (wei) used when the node suggests less. */
  readonly minPriorityFeeWei: bigint;
  /** Ceiling on maxFeePerGas (wei); undefined: none. */
  readonly maxFeePerGasCap: bigint | undefined;
  /** Collateral per whole gas token (WAD), to price gas against the reward; undefined: no profit check. */
  readonly gasTokenPrice: bigint | undefined;
  /** Smallest expected profit (reward less gas, WAD collateral) worth sending for, with gasTokenPrice. */
  readonly minProfit: bigint;
  readonly receiptTimeoutMs: number;
  readonly maxConcurrent: number;
  /** A market's display name for log messages. */
  readonly marketName: (marketId: number) => string;
  /** The book's current state of a position (to tell a liquidated state from a reopened one). */
  readonly current: (key: string) => TrackedPosition | undefined;
}

export type AttemptOutcome = "confirmed" | "pending" | "reverted" | "skipped" | "failed" | "dry_run" | "cancelled";

/** How long a position state the simulation refused waits before it is simulated again. */
const SKIP_COOLDOWN_MS = 5_000;

export interface ExecutorStats {
  sent: number;
  confirmed: number;
  reverted: number;
  skipped: number;
  failed: number;
}

export class Executor {
  /** Positions with an attempt under way: never a second one at the same time. */
  private readonly inFlight = new Set<string>();
  /**
   * Position states not to attempt again, by key: those whose liquidation landed or may still land, or that a dry
   * run priced, until the book replaces the state (it makes a new object on every change, so a reopened position
   * is never blocked); those the simulation refused, for SKIP_COOLDOWN_MS.
   */
  private readonly done = new Map<string, { readonly position: TrackedPosition; readonly until: number }>();
  private closed = false;
  private readonly queue: PQueue;
  private readonly sendLane = new PQueue({ concurrency: 1 });
  readonly stats: ExecutorStats = { sent: 0, confirmed: 0, reverted: 0, skipped: 0, failed: 0 };

  constructor(private readonly o: ExecutorOptions) {
    this.queue = new PQueue({ concurrency: o.maxConcurrent });
  }

  get account(): Address {
    return this.o.walletClient.account.address;
  }

  /** Whether the position has an attempt under way or already liquidated in its current state. */
  private isBusy(position: TrackedPosition): boolean {
    if (this.inFlight.has(position.key)) return true;
    const done = this.done.get(position.key);
    return done !== undefined && done.position === position && Date.now() < done.until;
  }

  /** Stops taking attempts: queued ones are dropped, running ones send nothing new. Idempotent. */
  close(): void {
    this.closed = true;
    this.queue.clear();
  }

  /** Queues a liquidation for each candidate that has none under way. */
  submit(candidates: readonly Candidate[]): void {
    for (const candidate of candidates) {
      const { position } = candidate;
      if (this.closed || this.isBusy(position)) continue;
      this.inFlight.add(position.key);
      void this.queue.add(async () => {
        let outcome: AttemptOutcome = "failed";
        try {
          outcome = await this.liquidate(candidate);
        } catch (error) {
          this.stats.failed++;
          this.o.log.error(
            { event: "liquidation_failed", ...ids(candidate), reason: "unexpected", error: describeError(error) },
            "liquidation attempt failed",
          );
        } finally {
          this.inFlight.delete(position.key);
          const until =
            outcome === "skipped" || outcome === "reverted"
              ? Date.now() + SKIP_COOLDOWN_MS
              : outcome === "failed" || outcome === "cancelled"
                ? 0
                : Infinity;
          if (until > 0 && this.o.current(position.key) === position) this.done.set(position.key, { position, until });
        }
      });
    }
  }

  /** Follows the book: a changed or closed position may be attempted again. */
  onBookChange(change: BookChange): void {
    if (change.type === "position") this.done.delete(change.key);
  }

  /** Resolves when every queued attempt has finished. */
  async idle(): Promise<void> {
    await this.queue.onIdle();
  }

  private async liquidate(c: Candidate): Promise<AttemptOutcome> {
    const { publicClient, walletClient, engine, log } = this.o;
    const account = walletClient.account;
    const call = {
      address: engine,
      abi: perpEngineAbi,
      functionName: "liquidate",
      args: [c.position.trader, BigInt(c.position.marketId)],
      account,
    } as const;

    if (this.closed) return "cancelled";
    let reward: bigint;
    try {
      const simulation = await publicClient.simulateContract(call);
      reward = simulation.result;
    } catch (error) {
      this.stats.skipped++;
      log.info(
        {
          event: "liquidation_skipped",
          ...ids(c),
          reason: revertName(error) ?? "simulation_failed",
          error: describeError(error),
        },
        "simulation says the liquidation would fail",
      );
      return "skipped";
    }
    if (reward < this.o.minKeeperReward) {
      this.stats.skipped++;
      log.info(
        { event: "liquidation_skipped", ...ids(c), reason: "reward_below_minimum", reward: quote(reward) },
        "keeper reward below the configured minimum",
      );
      return "skipped";
    }

    const [gasEstimate, fees, latest] = await Promise.all([
      publicClient.estimateContractGas(call),
      publicClient.estimateFeesPerGas(),
      publicClient.getBlock(),
    ]);
    const baseFeePerGas = latest.baseFeePerGas ?? 0n;
    const fee = planFees({
      baseFeePerGas,
      suggestedMaxFeePerGas: fees.maxFeePerGas,
      suggestedPriorityFeePerGas: fees.maxPriorityFeePerGas,
      minPriorityFeePerGas: this.o.minPriorityFeeWei,
      maxFeePerGasCap: this.o.maxFeePerGasCap,
    });
    if (!fee.ok) {
      this.stats.skipped++;
      log.info(
        { event: "liquidation_skipped", ...ids(c), reason: fee.reason, baseFeePerGas: big(baseFeePerGas) },
        "the base fee is above the configured fee ceiling",
      );
      return "skipped";
    }
    const { maxFeePerGas, maxPriorityFeePerGas } = fee;
    const gas = (gasEstimate * this.o.gasLimitMultiplierPercent) / 100n;
    const profit =
      this.o.gasTokenPrice === undefined
        ? undefined
        : expectedProfit(reward, gasEstimate, baseFeePerGas, maxPriorityFeePerGas, this.o.gasTokenPrice);
    const plan = {
      ...ids(c),
      reward: quote(reward),
      expectedProfit: profit === undefined ? undefined : quote(profit),
      gas: big(gas),
      maxFeePerGas: big(maxFeePerGas),
      maxPriorityFeePerGas: big(maxPriorityFeePerGas),
      maxGasCostWei: big(gas * maxFeePerGas),
    };
    if (profit !== undefined && profit < this.o.minProfit) {
      this.stats.skipped++;
      log.info({ event: "liquidation_skipped", ...plan, reason: "unprofitable" }, "the reward does not cover the gas");
      return "skipped";
    }
    if (this.o.dryRun) {
      log.info({ event: "liquidation_dry_run", ...plan }, "dry run: liquidation not sent");
      return "dry_run";
    }

    let sent: { hash: Hex; nonce: number } | undefined;
    try {
      sent = await this.sendLane.add(async () => {
        if (this.closed) return undefined;
        const nonce = await this.o.nonces.take();
        try {
          const hash = await walletClient.writeContract({ ...call, gas, maxFeePerGas, maxPriorityFeePerGas, nonce });
          return { hash, nonce };
        } catch (error) {
          this.o.nonces.resync();
          throw error;
        }
      });
    } catch (error) {
      if (!(error instanceof BaseError && error.walk((e) => e instanceof TimeoutError))) throw error;
      // The node may have taken it: sending again could only waste gas on a revert.
      this.stats.failed++;
      log.warn(
        { event: "liquidation_stuck", ...plan, reason: "send_timeout", error: describeError(error) },
        `sending the liquidation of ${this.label(c)} timed out; not sending again for this position state`,
      );
      return "pending";
    }
    if (!sent) return "cancelled";
    this.stats.sent++;
    log.info(
      { event: "liquidation_sent", ...plan, txHash: sent.hash, nonce: sent.nonce },
      `liquidating ${this.label(c)} for a reward of ${plan.reward}`,
    );
    return this.watch(c, sent.hash);
  }

  private label(c: Candidate): string {
    const side = c.position.size > 0n ? "long" : "short";
    return `${this.o.marketName(c.position.marketId)} ${side} of ${c.position.trader}`;
  }

  private async watch(c: Candidate, hash: Hex): Promise<AttemptOutcome> {
    let receipt: Awaited<ReturnType<PublicClient["waitForTransactionReceipt"]>>;
    try {
      receipt = await this.o.publicClient.waitForTransactionReceipt({ hash, timeout: this.o.receiptTimeoutMs });
    } catch (error) {
      // Broadcast, no receipt (yet): a second attempt would only queue behind it with the next nonce. The state
      // stays blocked until the book sees it change (replacing stuck transactions is the executor's next step).
      this.stats.failed++;
      const timedOut = error instanceof WaitForTransactionReceiptTimeoutError;
      this.o.log.warn(
        {
          event: "liquidation_stuck",
          ...ids(c),
          txHash: hash,
          reason: timedOut ? "receipt_timeout" : "receipt_unavailable",
          waitedMs: timedOut ? this.o.receiptTimeoutMs : undefined,
          error: timedOut ? undefined : describeError(error),
        },
        `no receipt for ${hash} yet; not sending again for this position state`,
      );
      return "pending";
    }
    const figures = {
      ...ids(c),
      txHash: hash,
      blockNumber: big(receipt.blockNumber),
      gasUsed: big(receipt.gasUsed),
      effectiveGasPrice: big(receipt.effectiveGasPrice),
    };
    if (receipt.status !== "success") {
      this.stats.reverted++;
      this.o.log.warn({ event: "liquidation_failed", ...figures, reason: "reverted" }, "liquidation reverted on chain");
      return "reverted";
    }
    const [liquidated] = parseEventLogs({ abi: perpEngineAbi, logs: receipt.logs, eventName: "PositionLiquidated" });
    this.stats.confirmed++;
    this.o.log.info(
      {
        event: "liquidation_confirmed",
        ...figures,
        reward: liquidated ? quote(liquidated.args.keeperReward) : undefined,
        badDebt: liquidated ? quote(liquidated.args.badDebt) : undefined,
        price: liquidated ? quote(liquidated.args.price) : undefined,
      },
      `liquidated ${this.label(c)} in block ${receipt.blockNumber}`,
    );
    return "confirmed";
  }
}

function ids(c: Candidate) {
  return { trader: c.position.trader, marketId: c.position.marketId };
}

/** Collateral amounts in log fields: 6 decimals, like the collateral itself. */
function quote(wad: bigint): string {
  return fromWad(wad).toDecimalPlaces(6).toString();
}

/** The custom error a simulation reverted with (NotLiquidatable, NoPosition, StalePrice...), if any. */
function revertName(error: unknown): string | undefined {
  if (!(error instanceof BaseError)) return undefined;
  const revert = error.walk((e) => e instanceof ContractFunctionRevertedError);
  return revert instanceof ContractFunctionRevertedError ? revert.data?.errorName : undefined;
}

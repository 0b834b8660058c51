/**
 * The composition root: builds every part of the keeper from a validated config, an RPC URL and a signer key,
 * passing dependencies by hand, and runs it until stopped.
 */

import { type Address, createWalletClient, type Hex, parseUnits } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { connect } from "./chain/connect.ts";
import { describeError, isRetryable } from "./chain/errors.ts";
import type { KeeperConfig } from "./config/schema.ts";
import { Executor } from "./executor/executor.ts";
import { NonceAllocator } from "./executor/nonces.ts";
import { Keeper } from "./keeper.ts";
import type { Logger } from "./ops/logger.ts";
import { sleep } from "./ops/sleep.ts";
import { RiskEngine } from "./risk/engine.ts";
import { Book } from "./state/book.ts";
import { watchExchange } from "./watcher/forExchange.ts";
import type { Watcher } from "./watcher/watcher.ts";

export interface KeeperRunOptions {
  readonly config: KeeperConfig;
  readonly rpcUrl: string;
  readonly privateKey: Hex;
  readonly log: Logger;
  /** Aborting it stops the keeper, at any point, also while it is still connecting. */
  readonly signal?: AbortSignal;
}

export interface RunningKeeper {
  readonly book: Book;
  readonly risk: RiskEngine;
  readonly watcher: Watcher;
  readonly executor: Executor;
  readonly keeper: Keeper;
  readonly address: Address;
  /** Resolves when the keeper has stopped (after stop(), or on a fatal error, which it rejects with). */
  readonly done: Promise<void>;
  /** Stops following, lets attempts under way finish (bounded), and resolves when stopped. */
  stop(reason?: string): Promise<void>;
}

export async function startKeeper(o: KeeperRunOptions): Promise<RunningKeeper> {
  const { config, log } = o;
  const k = config.keeper;
  const connection = await connect(config, o.rpcUrl);
  const { chain, transport, publicClient, engine } = connection;
  const account = privateKeyToAccount(o.privateKey);
  const walletClient = createWalletClient({ chain, transport, account });

  const book = new Book();
  const risk = new RiskEngine(book);
  const executor = new Executor({
    publicClient,
    walletClient,
    engine,
    nonces: new NonceAllocator(publicClient, account.address),
    log,
    dryRun: k.dryRun,
    minKeeperReward: parseUnits(k.minKeeperReward, 18),
    gasLimitMultiplierPercent: BigInt(k.gasLimitMultiplierPercent),
    minPriorityFeeWei: parseUnits(k.minPriorityFeeGwei, 9),
    maxFeePerGasCap: k.maxFeePerGasGwei === undefined ? undefined : parseUnits(k.maxFeePerGasGwei, 9),
    gasTokenPrice: k.gasTokenPrice === undefined ? undefined : parseUnits(k.gasTokenPrice, 18),
    minProfit: parseUnits(k.minProfit, 18),
    receiptTimeoutMs: k.receiptTimeoutMs,
    maxConcurrent: k.maxConcurrentLiquidations,
    marketName: (id) => book.markets.get(id)?.name ?? `market ${id}`,
    current: (key) => book.positions.get(key),
  });
  const keeper = new Keeper({ book, risk, executor, log });
  const watcher = watchExchange(config, connection, book, log, {
    onEvent: (event, live) => keeper.handleEvent(event, live),
    onTick: (tick) => keeper.handleTick(tick),
    onReorg: () => keeper.reset(),
  });

  log.info(
    {
      event: "keeper_started",
      network: config.network.name,
      chainId: config.network.chainId,
      exchange: engine,
      signer: account.address,
      dryRun: k.dryRun,
      fromBlock: config.exchange.deployBlock,
    },
    "keeper starting",
  );

  const controller = new AbortController();
  const done = (async () => {
    await retry(() => watcher.backfill(), controller.signal, log, "backfill");
    await watcher.run(controller.signal);
  })();
  let stopping: Promise<void> | undefined;
  const stop = (reason = "stop requested") => {
    stopping ??= (async () => {
      log.info({ event: "keeper_stopping", reason }, "stopping: no new attempts; waiting for those under way");
      controller.abort();
      executor.close();
      try {
        await done;
        await executor.idle(); // attempts already sending or awaiting receipts (each bounded by receiptTimeoutMs)
      } finally {
        log.info(
          { event: "keeper_stopped", reason, processedBlock: watcher.processedBlock.toString(), ...executor.stats },
          "keeper stopped",
        );
      }
    })();
    return stopping;
  };
  if (o.signal) {
    if (o.signal.aborted) void stop(String(o.signal.reason ?? "signal"));
    else o.signal.addEventListener("abort", () => void stop(String(o.signal?.reason ?? "signal")), { once: true });
  }
  return { book, risk, watcher, executor, keeper, address: account.address, done, stop };
}

/**
 * Runs `step` until it succeeds or the signal aborts, logging each I/O failure as rpc_error and backing off from
 * 0.5 s to 30 s; a deterministic failure (see isRetryable) is thrown at once. The step must be safe to repeat
 * (the backfill resumes from the last applied block).
 */
async function retry(step: () => Promise<void>, signal: AbortSignal, log: Logger, name: string): Promise<void> {
  for (let attempt = 1, delay = 500; !signal.aborted; attempt++, delay = Math.min(delay * 2, 30_000)) {
    try {
      return await step();
    } catch (error) {
      if (!isRetryable(error)) throw error;
      log.warn(
        { event: "rpc_error", step: name, attempt, retryInMs: delay, error: describeError(error) },
        `${name} failed`,
      );
      await sleep(delay, signal);
    }
  }
}

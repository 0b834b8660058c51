import type { Connection } from "../chain/connect.ts";
import type { KeeperConfig } from "../config/schema.ts";
import type { Logger } from "../ops/logger.ts";
import { decodePerpEngineLogs } from "../protocol/perpEngine.ts";
import type { Book } from "../state/book.ts";
import { Watcher, type WatcherOptions } from "./watcher.ts";

/** A watcher of the configured exchange, from its deployment block, with the adapter's decoder. */
export function watchExchange(
  config: KeeperConfig,
  connection: Connection,
  book: Book,
  log: Logger,
  handlers: Pick<WatcherOptions, "onEvent" | "onTick" | "onReorg" | "onRollback">,
): Watcher {
  return new Watcher({
    client: connection.publicClient,
    address: connection.engine,
    fromBlock: BigInt(config.exchange.deployBlock),
    book,
    log,
    decode: decodePerpEngineLogs,
    maxLogRange: BigInt(config.keeper.maxLogRange),
    pollIntervalMs: config.keeper.pollIntervalMs,
    reorgDepth: BigInt(config.keeper.reorgDepth),
    logConcurrency: config.keeper.logConcurrency,
    headStallMs: config.keeper.headStallSeconds === undefined ? undefined : config.keeper.headStallSeconds * 1000,
    ...handlers,
  });
}

import type { Connection } from "../../chain/connect.ts";
import type { KeeperConfig } from "../../config/schema.ts";
import type { Logger } from "../../ops/logger.ts";
import { ChainlinkPrices } from "../../prices/chainlink/chainlinkPrices.ts";
import { headSubscription } from "../../watcher/headSubscription.ts";
import { Watcher, type WatcherOptions } from "../../watcher/watcher.ts";
import type { ChainLog } from "../adapter.ts";
import type { Book, BookChange, BookState } from "./book.ts";
import { perpEngineBookCheck } from "./check.ts";
import type { ExchangeEvent } from "./events.ts";
import { decodePerpEngineLogs } from "./protocol.ts";

/** The reference PerpEngine's watcher: its events, book changes and state, its Chainlink prices. */
export type PerpEngineWatcher = Watcher<ExchangeEvent, BookChange, BookState> & { readonly prices: ChainlinkPrices };

/** A watcher of the configured exchange, from its deployment block, with the adapter's decoder. */
export function watchExchange(
  config: KeeperConfig,
  connection: Connection,
  book: Book,
  log: Logger,
  handlers: Pick<
    WatcherOptions<ExchangeEvent, BookChange, BookState>,
    "onEvent" | "onTick" | "onReorg" | "onRollback" | "onRestore" | "freshness"
  >,
): PerpEngineWatcher {
  // an event the adapter does not know (an upgrade added one) is said once per kind and skipped, never a stop
  const unknown = new Set<string>();
  const onUnknown = (l: ChainLog) => {
    const topic = String(l.topics[0]);
    if (unknown.has(topic)) return;
    unknown.add(topic);
    log.warn(
      { event: "exchange_event_unknown", topic, blockNumber: String(l.blockNumber), txHash: l.transactionHash },
      `the exchange logged an event the keeper does not know (${topic}): skipped; is the keeper up to date?`,
    );
  };
  const check = perpEngineBookCheck(connection.engine);
  const prices = new ChainlinkPrices({
    markets: () => book.markets.values(),
    log,
    multicall3: connection.multicall3,
  });
  const watcher = new Watcher<ExchangeEvent, BookChange, BookState>({
    client: connection.publicClient,
    addresses: [connection.engine],
    fromBlock: BigInt(config.exchange.deployBlock),
    book,
    prices,
    log,
    decode: (logs) => decodePerpEngineLogs(logs, onUnknown),
    // a rolled-back listing (not a funding update) is a market the rebuilt book must not have
    removesListing: (change) => change.type === "market",
    endpoints: connection.endpoints,
    checkBook: (client, blockHash) => check(client, blockHash, book),
    maxLogRange: BigInt(config.keeper.maxLogRange),
    pollIntervalMs: config.keeper.pollIntervalMs,
    reorgDepth: BigInt(config.keeper.reorgDepth),
    logConcurrency: config.keeper.logConcurrency,
    subscribeHeads: config.network.wsUrl === undefined ? undefined : headSubscription(config.network.wsUrl, log),
    logsClient: connection.logsClient,
    headStallMs: config.keeper.headStallSeconds === undefined ? undefined : config.keeper.headStallSeconds * 1000,
    ...handlers,
  });
  return Object.assign(watcher, { prices });
}

import { connect } from "../chain/connect.ts";
import type { KeeperConfig } from "../config/schema.ts";
import { Book } from "../protocol/perpEngine/book.ts";
import { fromWad } from "../protocol/perpEngine/format.ts";
import { watchExchange } from "../protocol/perpEngine/watch.ts";
import type { Logger } from "./logger.ts";
import { positionsNearLiquidation, renderStatus } from "./status.ts";

/**
 * `--status`: indexes the exchange up to the head, reads the mark prices there and renders the positions
 * nearest to liquidation. Read-only: needs no key.
 */
export async function statusReport(config: KeeperConfig, rpcUrl: string, log: Logger, top: number): Promise<string> {
  const book = new Book();
  const watcher = watchExchange(config, await connect(config, rpcUrl), book, log.child({ component: "watcher" }), {
    onEvent: (event) => book.apply(event),
    onRollback: (changes, cursor) => book.rewind(changes, cursor),
    onTick: () => {},
    onReorg: () => book.reset(),
  });
  await watcher.backfill();
  await watcher.poll();
  const tick = watcher.latestTick;
  if (!tick) throw new Error("no block to read prices at");
  const rows = positionsNearLiquidation(book, tick.prices, tick.timestamp, top);
  const prices = [...book.markets.values()]
    .map((m) => {
      const price = tick.prices.get(m.id);
      return `${m.name} ${price === undefined ? "no valid price" : fromWad(price).toString()}`;
    })
    .join(", ");
  return [
    `${config.network.name} block ${tick.blockNumber}: ${book.positions.size} open positions in ${book.markets.size} markets (${prices})`,
    `the ${rows.length} nearest to liquidation (room: distance from the mark price to the liquidation price):`,
    renderStatus(rows),
  ].join("\n");
}

/**
 * PerpEngine's status view (`perp-keeper status`): the open positions nearest to liquidation at the current mark
 * prices, as an operator reads them. Ranking uses the exact liquidation price (bigint); only the rows shown are
 * described with decimal.js.
 */

import type { StatusView } from "../../ops/statusCommand.ts";
import { renderTable } from "../../ops/table.ts";
import { Book, type Market, type TrackedPosition } from "./book.ts";
import { describePosition, fromWad, type PositionView } from "./format.ts";
import { fundingIndexAt, liquidationPriceUnits } from "./math.ts";
import { watchExchange } from "./watch.ts";

export interface StatusRow extends PositionView {
  readonly marketId: number;
}

/**
 * How far the mark price may move against a position before it reaches its liquidation price, as a fraction of the
 * mark (0.05: 5%); negative once liquidatable. What the status view ranks by and the at-risk metric counts.
 */
export function roomToLiquidation(p: TrackedPosition, market: Market, markPrice: bigint, fundingIndex: bigint): number {
  const liq = Number(liquidationPriceUnits(p, market, fundingIndex) * market.priceScale);
  const mark = Number(markPrice);
  return p.size > 0n ? (mark - liq) / mark : liq === 0 ? -1 : (liq - mark) / mark;
}

/**
 * The `limit` positions with the least room before liquidation, relative to their market's mark price
 * (negative room: already liquidatable). Markets without a price are left out.
 */
export function positionsNearLiquidation(
  book: Book,
  prices: ReadonlyMap<number, bigint>,
  timestamp: bigint,
  limit: number,
): StatusRow[] {
  const ranked: { room: number; key: string; fundingIndex: bigint; price: bigint }[] = [];
  const indices = new Map<number, bigint>();
  for (const [marketId, price] of prices) {
    const market = book.markets.get(marketId);
    if (market) indices.set(marketId, fundingIndexAt(market.funding, price, timestamp));
  }
  for (const p of book.positions.values()) {
    const market = book.markets.get(p.marketId);
    const price = prices.get(p.marketId);
    const fundingIndex = indices.get(p.marketId);
    if (!market || price === undefined || fundingIndex === undefined) continue;
    ranked.push({ room: roomToLiquidation(p, market, price, fundingIndex), key: p.key, fundingIndex, price });
  }
  ranked.sort((a, b) => a.room - b.room);
  return ranked.slice(0, limit).flatMap(({ key, fundingIndex, price }) => {
    const p = book.positions.get(key);
    const market = p && book.markets.get(p.marketId);
    return p && market ? [{ marketId: p.marketId, ...describePosition(p, market, price, fundingIndex) }] : [];
  });
}

const COLUMNS: [keyof StatusRow, string][] = [
  ["market", "market"],
  ["side", "side"],
  ["trader", "trader"],
  ["size", "size"],
  ["entryPrice", "entry"],
  ["markPrice", "mark"],
  ["liquidationPrice", "liq. price"],
  ["distanceToLiquidation", "room"],
  ["leverage", "leverage"],
  ["marginRatio", "margin ratio"],
  ["marginBalance", "margin bal."],
  ["maintenanceRequirement", "maint. req."],
];

/** A fixed-width table of status rows. */
export function renderStatus(rows: readonly StatusRow[]): string {
  const cells = rows.map((r) =>
    COLUMNS.map(([k]) => (k === "distanceToLiquidation" ? `${(Number(r[k]) * 100).toFixed(2)}%` : String(r[k]))),
  );
  return renderTable(
    COLUMNS.map(([, title]) => title),
    cells,
  );
}

/**
 * The status view: indexes the exchange up to the head, reads the mark prices there and renders the positions
 * nearest to liquidation.
 */
export const perpEngineStatus: StatusView = async ({ config, connection, log, top }) => {
  const book = new Book();
  const watcher = watchExchange(config, connection, book, log.child({ component: "watcher" }), {
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
};

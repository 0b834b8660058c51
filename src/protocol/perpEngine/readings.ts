/** PerpEngine's figures for the metrics, /healthz and the heartbeat (OpsSources, src/ops/readings.ts). */
import type { OpsSources } from "../../ops/readings.ts";
import type { Book } from "./book.ts";
import { fundingIndexAt } from "./math.ts";
import { roomToLiquidation } from "./status.ts";

/** PerpEngine's positions by market: one pass over its book at the last tick's prices and funding. */
export function perpEnginePositionsByMarket(
  s: { readonly book: Book; readonly watcher: OpsSources["watcher"] },
  distance: number,
): Map<string, { tracked: number; atRisk: number }> {
  const { book } = s;
  const tick = s.watcher.latestTick;
  const out = new Map<string, { tracked: number; atRisk: number }>();
  const indices = new Map<number, bigint>();
  for (const market of book.markets.values()) {
    out.set(market.name, { tracked: 0, atRisk: 0 });
    const price = tick?.prices.get(market.id);
    if (tick && price !== undefined) indices.set(market.id, fundingIndexAt(market.funding, price, tick.timestamp));
  }
  for (const p of book.positions.values()) {
    const market = book.markets.get(p.marketId);
    if (!market) continue;
    const row = out.get(market.name) as { tracked: number; atRisk: number };
    row.tracked++;
    const price = tick?.prices.get(p.marketId);
    const fundingIndex = indices.get(p.marketId);
    if (price === undefined || fundingIndex === undefined || price === 0n) continue;
    if (roomToLiquidation(p, market, price, fundingIndex) <= distance) row.atRisk++;
  }
  return out;
}

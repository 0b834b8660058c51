/**
 * The cross-margin exchange's pull prices: the markets the stream prices (a Pyth feed each, the exchange's maximum
 * age), the feeds read from the exchange at start (what the stream subscribes to before the book is built), and how
 * many feeds one update blob carries (what its fee counts).
 */
import type { Address, Hex, PublicClient } from "viem";
import { iCrossMarginEngineAbi } from "../../../abi/ICrossMarginEngine.ts";
import type { PullMarket, PullStream } from "../../prices/pyth/pullPrices.ts";
import { pythPriceToWad } from "./math.ts";
import type { CrossMarginBookView } from "./records.ts";

/** The book's priced markets (none until the exchange's global configuration is known). */
export function pullMarkets(book: Pick<CrossMarginBookView, "markets" | "global">): PullMarket[] {
  const maxAge = book.global.config?.maxPriceAge;
  if (maxAge === undefined) return [];
  const out: PullMarket[] = [];
  for (const m of book.markets.values()) {
    if (m.config) out.push({ id: m.priceId, feed: m.config.feedId, maxAge, toWad: pythPriceToWad });
  }
  return out;
}

/** The markets' feeds whose newest message is carried by `update` (at least 1: the blob itself). */
export function feedsIn(book: Pick<CrossMarginBookView, "markets">, stream: PullStream, update: Hex): number {
  let n = 0;
  for (const m of book.markets.values()) {
    if (m.config && stream.latest(m.config.feedId)?.update === update) n++;
  }
  return Math.max(1, n);
}

/** The feeds of the exchange's markets, read at start: what the stream subscribes to before the book is built. */
export async function feedsOnChain(client: PublicClient, engine: Address, blockNumber: bigint): Promise<Hex[]> {
  const ids = await client.readContract({
    address: engine,
    abi: iCrossMarginEngineAbi,
    functionName: "marketIds",
    blockNumber,
  });
  const configs = await Promise.all(
    ids.map((id) =>
      client.readContract({
        address: engine,
        abi: iCrossMarginEngineAbi,
        functionName: "getMarketConfig",
        args: [id],
        blockNumber,
      }),
    ),
  );
  return [...new Set(configs.map((c) => c.feedId.toLowerCase() as Hex))];
}

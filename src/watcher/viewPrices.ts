/**
 * Mark prices read from views, once per market per head, pinned to the head's hash and made in the head's one round
 * trip (Perp v2: `AccountBalance.getMarkPrice(baseToken)`, a median of pool TWAPs and the index that no event
 * carries). The exchange's adapter says which call prices which market and how to decode its answer; this part makes
 * the reads and keeps the rules every view price shares:
 * - a read that fails, or an answer that does not decode to a positive price, leaves that market out of the tick
 *   (nothing is liquidated against it), said once until the market is priced again;
 * - a market listed in the head's own block is read after its events are applied (a second round trip, rare).
 *
 * Looking ahead (`lookahead`, while it is wanted): the same reads are made a second time in the head's round trip, as
 * the next block would make them (eth_call's block overrides: the head's number + 1 and the next block's expected
 * time, BlockClock). A mark that follows a TWAP moves with time alone, so the keeper learns which accounts the next
 * block will find below maintenance and sends their liquidations for it. These prices are a forecast: a failed read
 * or a bad answer leaves the market out of it quietly, and nothing but a liquidation the contract may skip rests on it.
 */
import type { Address, Hex, Log, PublicClient } from "viem";
import { BlockClock } from "../chain/blockClock.ts";
import { type NextBlock, readPinned } from "../chain/pinnedReads.ts";
import { big, type Logger } from "../ops/logger.ts";
import type { ReadCall } from "../protocol/types.ts";
import type { AheadPrices, PriceSource, TickPrices } from "./prices.ts";
import type { Head } from "./types.ts";

/** One market's mark-price view, as the adapter states it. */
export interface ViewMarket {
  readonly id: number;
  readonly name: string;
  readonly read: ReadCall;
  /** The answer to mark price (WAD); throws when it is not one. */
  decode(answer: Hex): bigint;
}

interface HeadReads {
  readonly markets: readonly ViewMarket[];
  readonly answers: PromiseSettledResult<Hex>[];
  /** The same reads as the next block would make them. */
  readonly ahead?: { readonly next: NextBlock; readonly answers: PromiseSettledResult<Hex>[] };
}

export class ViewPrices implements PriceSource<HeadReads> {
  /** Markets whose price is missing, said once until priced again. */
  private readonly missing = new Set<number>();
  private readonly clock = new BlockClock();

  constructor(
    private readonly o: {
      /** The book's markets, as of now. */
      readonly markets: () => readonly ViewMarket[];
      readonly log: Logger;
      readonly multicall3?: Address;
      /** Whether to read the next block's prices too (at this head): e.g. while accounts are near maintenance. */
      readonly lookahead?: () => boolean;
    },
  ) {}

  logAddresses(): readonly Address[] {
    return [];
  }

  ownsLog(): boolean {
    return false;
  }

  async readHead(client: PublicClient, block: Head): Promise<HeadReads> {
    const markets = [...this.o.markets()]; // as of the head's ask: a market its events list is read after them
    this.clock.observe(block.timestamp, block.number);
    if (!this.o.lookahead?.()) return { markets, answers: await this.read(client, markets, block) };
    const next = { number: block.number + 1n, time: this.clock.next(block.timestamp) };
    const [answers, ahead] = await Promise.all([
      this.read(client, markets, block),
      this.read(client, markets, block, next).catch((error: unknown) => markets.map(() => rejected(error))),
    ]);
    return { markets, answers, ahead: { next, answers: ahead } };
  }

  async settleHead(client: PublicClient, block: Head, head: HeadReads, _logs: readonly Log[]): Promise<TickPrices> {
    const all = this.o.markets();
    const known = new Set(head.markets.map((m) => m.id));
    const listed = all.filter((m) => !known.has(m.id));
    const answers = new Map(head.markets.map((m, i) => [m.id, head.answers[i] as PromiseSettledResult<Hex>]));
    if (listed.length > 0) {
      const more = await this.read(client, listed, block);
      listed.forEach((m, i) => {
        answers.set(m.id, more[i] as PromiseSettledResult<Hex>);
      });
    }
    const prices = this.prices(block, all, answers);
    return head.ahead ? { ...prices, ahead: this.ahead(head.markets, head.ahead) } : prices;
  }

  async resync(client: PublicClient, block: Head): Promise<TickPrices> {
    const markets = this.o.markets();
    const answers = await this.read(client, markets, block);
    return this.prices(block, markets, new Map(markets.map((m, i) => [m.id, answers[i] as PromiseSettledResult<Hex>])));
  }

  reset(): void {
    this.missing.clear();
    this.clock.clear();
  }

  private read(
    client: PublicClient,
    markets: readonly ViewMarket[],
    block: Head,
    next?: NextBlock,
  ): Promise<PromiseSettledResult<Hex>[]> {
    return readPinned(
      client,
      markets.map((m) => m.read),
      block.hash,
      this.o.multicall3,
      next,
    );
  }

  /** The next block's prices: every answer that decodes to a positive price, the rest left out without a word. */
  private ahead(markets: readonly ViewMarket[], read: NonNullable<HeadReads["ahead"]>): AheadPrices {
    const prices = new Map<number, bigint>();
    markets.forEach((m, i) => {
      const answer = read.answers[i];
      if (answer?.status !== "fulfilled") return;
      try {
        const price = m.decode(answer.value);
        if (price > 0n) prices.set(m.id, price);
      } catch {
        // a forecast: a market without one is judged at the next head as usual
      }
    });
    return { prices, blockNumber: read.next.number, timestamp: read.next.time };
  }

  private prices(
    block: Head,
    markets: readonly ViewMarket[],
    answers: Map<number, PromiseSettledResult<Hex>>,
  ): TickPrices {
    const prices = new Map<number, bigint>();
    for (const m of markets) {
      const answer = answers.get(m.id);
      let reason: string;
      if (answer?.status === "fulfilled") {
        try {
          const price = m.decode(answer.value);
          if (price > 0n) {
            prices.set(m.id, price);
            this.missing.delete(m.id);
            continue;
          }
          reason = `the view answered a price of ${price}`;
        } catch (error) {
          reason = `the answer did not decode: ${(error as Error).message}`;
        }
      } else reason = answer ? String((answer.reason as Error)?.message ?? answer.reason) : "not read";
      if (this.missing.has(m.id)) continue;
      this.missing.add(m.id);
      this.o.log.warn(
        { event: "mark_price_unavailable", market: m.name, marketId: m.id, reason, blockNumber: big(block.number) },
        `${m.name} has no mark price at block ${block.number} (${reason}): none of its accounts is judged until it has`,
      );
    }
    return { prices };
  }
}

function rejected(reason: unknown): PromiseSettledResult<Hex> {
  return { status: "rejected", reason };
}

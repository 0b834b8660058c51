/**
 * Prices from a pull oracle (Pyth, streamed from Hermes): the watcher's price source for an exchange whose contract
 * takes the price its caller brings. Nothing is read on chain: a head's prices are the stream's latest messages, as
 * the next block will judge them (fresh within the market's maximum age at its expected time), and every message the
 * stream brings between heads is a tick of its own (`at`).
 *
 * Invariant: a market whose latest message would be refused by the contract in the next block (too old, not a
 * positive price, an exponent it does not take) is absent from the prices; nothing is liquidated against it.
 */
import type { Address, Hex, PublicClient } from "viem";
import { BlockClock } from "../../chain/blockClock.ts";
import type { Logger } from "../../ops/logger.ts";
import type { PriceId } from "../../protocol/types.ts";
import type { PriceSource, TickPrices } from "../../watcher/prices.ts";
import type { Head } from "../../watcher/types.ts";
import type { PythMessage } from "./messages.ts";

/** A market priced by a pull feed. */
export interface PullMarket {
  readonly id: PriceId;
  /** The Pyth feed id, 0x + 64 lower-case hex. */
  readonly feed: Hex;
  /** Seconds a price may be old (either way) when the contract uses it. */
  readonly maxAge: bigint;
  /** A message's price as the contract uses it (WAD), undefined when the contract would refuse it. */
  readonly toWad: (price: bigint, expo: number) => bigint | undefined;
}

/** What the keeper needs of the price stream. */
export interface PullStream {
  latest(feed: Hex): PythMessage | undefined;
}

/** A price tick's prices, with the message behind each. */
export interface PullTickPrices extends TickPrices {
  readonly messages: ReadonlyMap<PriceId, PythMessage>;
  /** The time they were judged at (the next block's expected timestamp). */
  readonly timestamp: bigint;
}

export class PullPrices implements PriceSource<void> {
  readonly clock = new BlockClock();
  /** Markets whose price is refused, said once until priced again. */
  private readonly refused = new Set<PriceId>();
  private lastHead: bigint | undefined;

  constructor(
    private readonly o: {
      readonly stream: PullStream;
      /** The book's markets, as of now. */
      readonly markets: () => readonly PullMarket[];
      readonly log: Logger;
    },
  ) {}

  logAddresses(): readonly Address[] {
    return [];
  }

  ownsLog(): boolean {
    return false;
  }

  async readHead(_client: PublicClient, block: Head): Promise<void> {
    this.clock.observe(block.timestamp);
    this.lastHead = block.timestamp;
  }

  async settleHead(_client: PublicClient, block: Head): Promise<TickPrices> {
    return this.at(this.clock.next(block.timestamp));
  }

  async resync(_client: PublicClient, block: Head): Promise<TickPrices> {
    this.clock.observe(block.timestamp);
    this.lastHead = block.timestamp;
    return this.at(this.clock.next(block.timestamp));
  }

  reset(): void {
    this.refused.clear();
  }

  /** The last head's timestamp; undefined before the first. */
  get headTimestamp(): bigint | undefined {
    return this.lastHead;
  }

  /** The next block's expected time after the last head (now, when no head was seen). */
  nextTimestamp(nowMs = Date.now()): bigint {
    return this.lastHead === undefined ? BigInt(Math.floor(nowMs / 1000)) : this.clock.next(this.lastHead, nowMs);
  }

  /** Every market's price as a block at `timestamp` would take it. */
  at(timestamp: bigint): PullTickPrices {
    const prices = new Map<PriceId, bigint>();
    const messages = new Map<PriceId, PythMessage>();
    for (const m of this.o.markets()) {
      const message = this.o.stream.latest(m.feed);
      const reason = message === undefined ? "no message" : refusal(m, message, timestamp);
      const wad = message && !reason ? m.toWad(message.price, message.expo) : undefined;
      if (message && wad !== undefined) {
        prices.set(m.id, wad);
        messages.set(m.id, message);
        if (this.refused.delete(m.id)) {
          this.o.log.info(
            { event: "price_recovered", marketId: m.id, feed: m.feed, publishTime: message.publishTime.toString() },
            `market ${m.id} priced again by its pull feed`,
          );
        }
        continue;
      }
      if (this.refused.has(m.id)) continue;
      this.refused.add(m.id);
      this.o.log.warn(
        {
          event: "price_refused",
          marketId: m.id,
          feed: m.feed,
          reason: reason ?? "price the contract refuses",
          publishTime: message?.publishTime.toString(),
          at: timestamp.toString(),
        },
        `market ${m.id} has no price the contract would take at ${timestamp}: ${reason ?? "refused"}; nothing is liquidated against it`,
      );
    }
    return { prices, messages, timestamp };
  }
}

/** Why the contract would refuse the message in a block at `timestamp`; undefined: it takes it. */
export function refusal(market: PullMarket, message: PythMessage, timestamp: bigint): string | undefined {
  const age = timestamp - message.publishTime;
  if (age > market.maxAge || -age > market.maxAge) return `published at ${message.publishTime}, ${age} s old`;
  return undefined;
}

/**
 * Mark prices from push oracles (Chainlink aggregators, behind proxies or not), for exchanges whose markets each name
 * one (the reference PerpEngine). Oracles that log their updates are followed from their logs; the others are read
 * at every head, pinned to its hash, in the head's one round trip (feeds.ts says which, and checks the logs every
 * CHECK_EVERY blocks). A market listed in the head's own block, or whose proxy logged (a new aggregator behind it), is
 * resolved and read after its events are applied: a second round trip, rare.
 */
import type { Address, Log, PublicClient } from "viem";
import type { Logger } from "../../ops/logger.ts";
import { big } from "../../ops/logger.ts";
import type { PriceSource, TickPrices } from "../../watcher/prices.ts";
import type { Head } from "../../watcher/types.ts";
import { NO_ORACLE_LOGS, OracleFeeds } from "./feeds.ts";
import { MarkPrices } from "./markPrices.ts";
import { type ChainlinkMarket, type OracleReading, readOracles, resolveSource } from "./oracle.ts";

type Reads = Map<number, PromiseSettledResult<OracleReading>>;

interface HeadReads {
  /** The markets known when the head was asked for. */
  readonly markets: readonly ChainlinkMarket[];
  /** Whether every oracle is read at this head (the periodic check of the logs). */
  readonly check: boolean;
  readonly reads: Reads;
}

export class ChainlinkPrices implements PriceSource<HeadReads> {
  /** Oracles followed from their logs, and the answers carried between updates. */
  readonly feeds = new OracleFeeds();
  /** Mark prices from oracle answers, and the log lines of their changes. */
  private readonly marks: MarkPrices;

  constructor(
    private readonly o: {
      /** The book's markets, as of now. */
      readonly markets: () => Iterable<ChainlinkMarket>;
      readonly log: Logger;
      /** Multicall3 on this chain: every oracle read in one eth_call (without it, one eth_call per oracle). */
      readonly multicall3?: Address;
    },
  ) {
    this.marks = new MarkPrices(o.log);
  }

  logAddresses(): readonly Address[] {
    return this.feeds.addresses();
  }

  ownsLog(address: string): boolean {
    return this.feeds.addresses().some((a) => a.toLowerCase() === address.toLowerCase());
  }

  /** Each market's aggregator, where its answers are set; markets whose source is not resolved yet are absent. */
  sources(): Map<number, Address> {
    return this.feeds.sources();
  }

  async readHead(client: PublicClient, block: Head): Promise<HeadReads> {
    const markets = [...this.o.markets()];
    const check = this.feeds.checkDue(block.number);
    const reads = await this.readAndResolve(
      client,
      this.feeds.toRead(markets, check),
      check ? markets : this.feeds.unresolved(markets),
      block,
    );
    return { markets, check, reads };
  }

  async settleHead(client: PublicClient, block: Head, head: HeadReads, priceLogs: readonly Log[]): Promise<TickPrices> {
    const oracleLogs = OracleFeeds.split(priceLogs);
    const all = [...this.o.markets()];
    const { reads } = head;
    // listed in this block, or behind a proxy that logged (a new aggregator): resolved and read again; usually none
    const listed = all.length > head.markets.length ? new Set(head.markets) : undefined;
    const touched = oracleLogs.touched.size > 0 ? new Set(this.feeds.proxiesTouched(all, oracleLogs)) : undefined;
    const again = listed || touched ? all.filter((m) => listed?.has(m) === false || touched?.has(m.id)) : [];
    if (again.length > 0) {
      for (const [id, read] of await this.readAndResolve(client, again, again, block)) reads.set(id, read);
    }
    const merged = this.feeds.merge(all, reads, oracleLogs, block.number, head.check, "head");
    for (const id of merged.mismatched) {
      const market = all.find((m) => m.id === id);
      this.o.log.warn(
        { event: "oracle_logs_mismatch", market: market?.name, blockNumber: big(block.number) },
        `${market?.name} oracle's answer differs from what its logs said: read at every head again`,
      );
    }
    return this.prices(block, all, merged.readings);
  }

  async resync(client: PublicClient, block: Head): Promise<TickPrices> {
    const markets = [...this.o.markets()];
    const reads = await this.readAndResolve(client, markets, markets, block);
    const merged = this.feeds.merge(markets, reads, NO_ORACLE_LOGS, block.number, true, "resync");
    return this.prices(block, markets, merged.readings);
  }

  reset(): void {
    this.feeds.reset();
  }

  /** Reads these markets' oracles and resolves these sources at a block, in one batch; the reads by market. */
  private async readAndResolve(
    client: PublicClient,
    read: readonly ChainlinkMarket[],
    resolve: readonly ChainlinkMarket[],
    block: Head,
  ): Promise<Reads> {
    const [readings, sources] = await Promise.all([
      readOracles(
        client,
        read.map((m) => m.oracle),
        block.hash,
        this.o.multicall3,
      ),
      Promise.all(resolve.map((m) => resolveSource(client, m.oracle, block.hash))),
    ]);
    resolve.forEach((m, i) => {
      this.feeds.resolved(m.id, m.oracle, sources[i] as Address);
    });
    return new Map(read.map((m, i) => [m.id, readings[i] as PromiseSettledResult<OracleReading>]));
  }

  /** Oracle answers to mark prices (a market whose oracle was refused is left out, and said once). */
  private prices(
    block: Head,
    markets: readonly ChainlinkMarket[],
    readings: readonly PromiseSettledResult<OracleReading>[],
  ): TickPrices {
    const prices = this.marks.at(block.number, block.timestamp, markets, readings);
    const oracleUpdatedAt = new Map<number, bigint>();
    markets.forEach((m, i) => {
      const r = readings[i];
      if (r?.status === "fulfilled") oracleUpdatedAt.set(m.id, r.value.updatedAt);
    });
    return { prices, oracleUpdatedAt };
  }
}

/**
 * Following oracle answers from their logs. Production Chainlink aggregators emit AnswerUpdated(current, roundId,
 * updatedAt) on every new round; Chainlink's MockV3Aggregator does not. For each market the keeper knows the
 * contract its answers are emitted from (the oracle itself, or the aggregator behind it when the oracle is a proxy:
 * `aggregator()`), and asks for that contract's logs with the exchange's, in the same eth_getLogs. A market is read
 * at every head (latestRoundData, pinned to the head's hash) until its source has shown it emits: an AnswerUpdated
 * whose answer equals the read of the same block. From then on its answer is taken from its logs and carried between
 * updates, and it is read again only every CHECK_EVERY heads (a check: a mismatch puts it back to reading every
 * head), at start, and after every gap, reconnect or reorganisation. Any log of a proxy (e.g. AggregatorConfirmed:
 * a new aggregator behind it) has its market resolved and read again at once.
 *
 * Pure and synchronous: the watcher does the I/O.
 */
import { type Address, type Hex, type Log, toEventSelector } from "viem";
import type { OracleReading } from "./oracle.ts";

export const ANSWER_UPDATED = toEventSelector("AnswerUpdated(int256,uint256,uint256)");
/** Heads between checks of a market followed from its logs. */
export const CHECK_EVERY = 32n;

interface Feed {
  /** The oracle the market reads (the exchange's), lower-cased. */
  readonly oracle: Address;
  /** Where its answers are emitted from; undefined until resolved. */
  source: Address | undefined;
  /** Its source has shown it emits AnswerUpdated: the answer comes from logs. */
  follows: boolean;
  /** The latest answer known (read, or from a log). */
  last: OracleReading | undefined;
}

/** The latest AnswerUpdated of a log list by source (lower-cased), and which oracles (proxies) logged anything. */
export interface OracleLogs {
  readonly answers: ReadonlyMap<string, OracleReading>;
  readonly touched: ReadonlySet<string>;
}

/** AnswerUpdated's reading, or undefined when the log is something else. */
export function answerOf(log: Log): OracleReading | undefined {
  const [topic, current, round] = log.topics;
  if (topic !== ANSWER_UPDATED || current === undefined || round === undefined) return undefined;
  if (log.data.length !== 66) return undefined;
  return {
    answer: BigInt.asIntN(256, BigInt(current)),
    roundId: BigInt(round),
    updatedAt: BigInt(log.data as Hex),
  };
}

/** No oracle logs: what the general path (which reads every oracle) merges with. */
export const NO_ORACLE_LOGS: OracleLogs = { answers: new Map(), touched: new Set() };

export class OracleFeeds {
  private readonly feeds = new Map<number, Feed>();
  private lastCheck: bigint | undefined;

  /** Forgets every feed (a rebuild): sources are resolved and answers read again. */
  reset(): void {
    this.feeds.clear();
    this.lastCheck = undefined;
  }

  private feed(marketId: number, oracle: Address): Feed {
    let f = this.feeds.get(marketId);
    if (!f || f.oracle !== oracle.toLowerCase()) {
      f = { oracle: oracle.toLowerCase() as Address, source: undefined, follows: false, last: undefined };
      this.feeds.set(marketId, f);
    }
    return f;
  }

  /** Markets whose source is not known yet. */
  unresolved<M extends { id: number; oracle: Address }>(markets: readonly M[]): M[] {
    return markets.filter((m) => this.feed(m.id, m.oracle).source === undefined);
  }

  /** The source found for a market: `aggregator()` of its oracle, or the oracle itself (no such function). */
  resolved(marketId: number, oracle: Address, source: Address): void {
    const f = this.feed(marketId, oracle);
    const next = source.toLowerCase() as Address;
    if (f.source !== undefined && f.source !== next) {
      f.follows = false; // a new aggregator: it has to show it emits
      f.last = undefined;
    }
    f.source = next;
  }

  /** Each market's source as resolved so far (lower-cased): where its answers are set. */
  sources(): Map<number, Address> {
    const out = new Map<number, Address>();
    for (const [marketId, f] of this.feeds) if (f.source !== undefined) out.set(marketId, f.source);
    return out;
  }

  /** The addresses whose logs to ask with the exchange's: every source, and every proxy in front of one. */
  addresses(): Address[] {
    const out = new Set<Address>();
    for (const f of this.feeds.values()) {
      if (f.source === undefined) continue;
      out.add(f.source);
      out.add(f.oracle);
    }
    return [...out];
  }

  /** Whether every market is due a read at this head (CHECK_EVERY heads since the last check). */
  checkDue(head: bigint): boolean {
    return this.lastCheck === undefined || head - this.lastCheck >= CHECK_EVERY;
  }

  /** The markets to read at this head: those not followed from logs, or all of them at a check. */
  toRead<M extends { id: number; oracle: Address }>(markets: readonly M[], check: boolean): M[] {
    if (check) return [...markets];
    return markets.filter((m) => !this.feed(m.id, m.oracle).follows);
  }

  /** Splits a block's logs of the oracles: the latest AnswerUpdated per source, and the proxies that logged. */
  static split(logs: readonly Log[]): OracleLogs {
    const answers = new Map<string, OracleReading>();
    const touched = new Set<string>();
    for (const log of logs) {
      const address = log.address.toLowerCase();
      touched.add(address);
      const reading = answerOf(log);
      if (reading) answers.set(address, reading); // logs come in order: the last one stands
    }
    return { answers, touched };
  }

  /** Markets whose proxy logged in this block (a new aggregator, perhaps): resolved and read again. */
  proxiesTouched(markets: readonly { id: number; oracle: Address }[], logs: OracleLogs): number[] {
    return markets
      .filter((m) => {
        const f = this.feed(m.id, m.oracle);
        return f.source !== undefined && f.source !== f.oracle && logs.touched.has(f.oracle);
      })
      .map((m) => m.id);
  }

  /**
   * Every market's reading at a head: its read where it was read (which also decides whether it follows: a log of
   * the same block agreeing with the read shows it emits; a read that disagrees with what its logs said stops it
   * following), otherwise its latest AnswerUpdated, otherwise the answer carried from before. `mismatched` lists
   * the markets that stopped following.
   */
  merge(
    markets: readonly { id: number; oracle: Address }[],
    reads: ReadonlyMap<number, PromiseSettledResult<OracleReading>>,
    logs: OracleLogs,
    head: bigint,
    check: boolean,
    /** "head": one block's reads and logs; "resync": reads after a gap, which set the answers and judge nothing. */
    mode: "head" | "resync",
  ): { readings: PromiseSettledResult<OracleReading>[]; mismatched: number[] } {
    if (check) this.lastCheck = head;
    const mismatched: number[] = [];
    const readings = markets.map((m): PromiseSettledResult<OracleReading> => {
      const f = this.feed(m.id, m.oracle);
      const logged = f.source === undefined ? undefined : logs.answers.get(f.source);
      const read = reads.get(m.id);
      if (read) {
        if (read.status === "fulfilled") {
          const value = read.value;
          const same = (r: OracleReading | undefined) =>
            r !== undefined && r.answer === value.answer && r.updatedAt === value.updatedAt;
          if (mode === "head" && same(logged)) f.follows = true;
          else if (mode === "head" && f.follows && !same(logged ?? f.last)) {
            f.follows = false;
            mismatched.push(m.id);
          }
          f.last = value;
        }
        return read;
      }
      if (logged) f.last = logged;
      if (f.last) return { status: "fulfilled", value: f.last };
      return { status: "rejected", reason: new Error("no answer known yet") };
    });
    return { readings, mismatched };
  }
}

/**
 * What a liquidation carries for the pull prices it needs: the newest update bytes of each feed (deduplicated: one
 * blob may carry several feeds) and the oracle's fee for them, priced as Pyth prices it: a fee per price update,
 * `getUpdateFee` of a blob divided by the feeds it carries. The fee is read from the oracle at start and at every head
 * (one eth_call, off the tick's path), so a fee changed by the oracle's governance is followed within a block.
 */
import { type Address, type Hex, type PublicClient, parseAbi } from "viem";
import { describeError } from "../../chain/errors.ts";
import type { Logger } from "../../ops/logger.ts";
import type { PriceAttacher, PriceAttachment } from "../../protocol/crossMargin/adapter.ts";
import type { PriceId } from "../../protocol/types.ts";
import type { PullStream } from "./pullPrices.ts";

export const pythFeeAbi = parseAbi(["function getUpdateFee(bytes[] updateData) view returns (uint256 feeAmount)"]);

export class PythUpdates implements PriceAttacher {
  /** Wei per price update, as last read; undefined until read. */
  private perFeed: bigint | undefined;
  private reading = false;

  constructor(
    private readonly o: {
      readonly stream: PullStream & { feedsIn(update: Hex): number };
      readonly feedOf: (price: PriceId) => Hex | undefined;
      readonly client: PublicClient;
      readonly pyth: Address;
      readonly log: Logger;
      /** The fee changed: what was refused or reverted for too little value may go again. */
      readonly onChange?: (before: bigint, after: bigint) => void;
    },
  ) {}

  /** Wei per price update, as last read. */
  get feePerUpdate(): bigint | undefined {
    return this.perFeed;
  }

  attach(prices: readonly PriceId[]): PriceAttachment | undefined {
    if (this.perFeed === undefined) return undefined;
    const updates: Hex[] = [];
    const feeds: Hex[] = [];
    let carried = 0;
    let oldest: bigint | undefined;
    for (const id of prices) {
      const feed = this.o.feedOf(id);
      const message = feed === undefined ? undefined : this.o.stream.latest(feed);
      if (!feed || !message) return undefined;
      feeds.push(feed);
      if (oldest === undefined || message.publishTime < oldest) oldest = message.publishTime;
      if (updates.includes(message.update)) continue;
      updates.push(message.update);
      carried += this.o.stream.feedsIn(message.update);
    }
    return { updates, feeds, fee: this.perFeed * BigInt(carried), ...(oldest === undefined ? {} : { oldest }) };
  }

  /**
   * Reads the fee of one update of `feed` (at `blockNumber`, else the latest). Throws at start when it cannot be
   * read; later failures keep the last fee and are logged.
   */
  async refresh(feed: Hex | undefined, blockNumber?: bigint, strict = false): Promise<void> {
    const message = feed === undefined ? undefined : this.o.stream.latest(feed);
    if (!message || this.reading) return;
    this.reading = true;
    try {
      const fee = await this.o.client.readContract({
        address: this.o.pyth,
        abi: pythFeeAbi,
        functionName: "getUpdateFee",
        args: [[message.update]],
        ...(blockNumber === undefined ? {} : { blockNumber }),
      });
      const per = fee / BigInt(Math.max(1, this.o.stream.feedsIn(message.update)));
      if (this.perFeed !== undefined && per !== this.perFeed) {
        this.o.log.warn(
          {
            event: "oracle_fee_changed",
            before: this.perFeed.toString(),
            after: per.toString(),
            blockNumber: blockNumber?.toString(),
          },
          `the oracle's update fee changed from ${this.perFeed} to ${per} wei per price`,
        );
      }
      const before = this.perFeed;
      this.perFeed = per;
      if (before !== undefined && before !== per) this.o.onChange?.(before, per);
    } catch (error) {
      if (strict) throw error;
      this.o.log.warn(
        { event: "rpc_error", step: "oracle_fee", error: describeError(error) },
        "could not read the oracle's update fee; the last one stands",
      );
    } finally {
      this.reading = false;
    }
  }
}

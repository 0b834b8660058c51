/**
 * Whether heads still come: said once (head_stalled), and head_resumed when one comes.
 * - With keeper.headStallSeconds set, the operator declared the chain's cadence: no new head for that long is a stall,
 *   whatever the endpoints say (a single endpoint frozen at an old head is caught this way).
 * - Otherwise the rule /healthz follows decides (src/ops/freshness.ts): a quiet chain whose head the keeper has is no
 *   stall however long it lasts; a keeper behind the head its endpoints report is one at once. Before that rule has a
 *   verdict: 3 block times (learnt from the heads' timestamps), at least 30 s.
 */
import { big, type Logger } from "../ops/logger.ts";

export class HeadStall {
  private lastHeadAt = Date.now();
  private stalledSince: number | undefined;
  /** Seconds between blocks, from the last two heads' timestamps. */
  private blockSeconds: bigint | undefined;
  private previous: { readonly blockNumber: bigint; readonly timestamp: bigint } | undefined;

  constructor(
    private readonly log: Logger,
    /** Undefined: 3 block times, at least 30 s. */
    private readonly limitMs: number | undefined,
  ) {}

  /** Starts the clock (the follower starts). */
  start(): void {
    this.lastHeadAt = Date.now();
  }

  /** A new head was processed. */
  arrived(head: { readonly blockNumber: bigint; readonly timestamp: bigint } | undefined): void {
    const previous = this.previous;
    if (head && previous && head.blockNumber > previous.blockNumber) {
      const seconds = (head.timestamp - previous.timestamp) / (head.blockNumber - previous.blockNumber);
      if (seconds > 0n) this.blockSeconds = seconds;
    }
    this.previous = head;
    const now = Date.now();
    if (this.stalledSince !== undefined) {
      this.log.info(
        {
          event: "head_resumed",
          blockNumber: head ? big(head.blockNumber) : undefined,
          stalledMs: now - this.stalledSince,
        },
        "new blocks again",
      );
      this.stalledSince = undefined;
    }
    this.lastHeadAt = now;
  }

  /** Checks the silence since the last head; says head_stalled once when it is too long. */
  check(lastBlock: bigint | undefined, healthy?: boolean): void {
    if (this.stalledSince !== undefined) return;
    const shared = this.limitMs === undefined && healthy !== undefined;
    if (shared && healthy) return;
    const limit = shared ? 0 : (this.limitMs ?? Math.max(30_000, Number(this.blockSeconds ?? 0n) * 3_000));
    const silent = Date.now() - this.lastHeadAt;
    if (silent < limit) return;
    this.stalledSince = this.lastHeadAt;
    this.log.warn(
      {
        event: "head_stalled",
        lastBlock: lastBlock === undefined ? undefined : big(lastBlock),
        silentMs: silent,
        limitMs: limit,
      },
      `no new block for ${Math.round(silent / 1000)} s: the chain or the RPC is stuck`,
    );
  }
}

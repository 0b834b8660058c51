/**
 * The RPC endpoints as the watcher sees them: which one a step is pinned to, and what each has earned. An answer is
 * evidence, not truth: an endpoint whose answer contradicts the chain (a block's logs bloom, the exchange's own state
 * read at the same block, a receipt of ours) is demoted, said once (rpc_endpoint_demoted), and asked nothing more by
 * the watcher (and ranked last by viem's fallback for every other read) until its demotion ends. A demotion lasts
 * DEMOTION_MS, doubled for each one after it, up to MAX_DEMOTION_MS. A transport failure (a timeout, a refusal) only
 * moves an endpoint behind the others for FAILED_MS, so that the next step tries another.
 *
 * With one endpoint there is nothing to move to: a demotion is still said (an operator must know), and the work is
 * asked again of it after the usual back-off.
 */
import type { PublicClient } from "viem";
import { big, type Logger } from "../ops/logger.ts";

export interface Endpoint {
  /** As configured: never logged (it may carry a key). */
  readonly url: string;
  /** The URL with its credentials redacted: what log lines and errors name. */
  readonly label: string;
  /** Calls made in one turn of the event loop go out as one JSON-RPC batch. */
  readonly client: PublicClient;
  /** One request per call, any answer size: log ranges. */
  readonly logsClient: PublicClient;
}

/** A first demotion's length; each further one doubles it. */
const DEMOTION_MS = 30_000;
const MAX_DEMOTION_MS = 600_000;
/** How long a transport failure moves an endpoint behind the others. */
const FAILED_MS = 5_000;
/** Heads reported within this long of each other count as reported at once ("just now"). */
export const JUST_NOW_MS = 2_000;

interface Standing {
  demotedUntil: number;
  demotions: number;
  reason: string | undefined;
  failedUntil: number;
  /** The last head it reported, and when (Date.now()). */
  head: { readonly number: bigint; readonly at: number } | undefined;
  lagging: boolean;
}

export class Endpoints {
  private readonly standing = new Map<Endpoint, Standing>();
  /** Demotions so far, for the metrics. */
  demotions = 0;

  constructor(
    readonly list: readonly Endpoint[],
    private readonly log: Logger,
    /** More blocks than this behind the freshest head reported just now: lagging. */
    private readonly maxLagBlocks = 5n,
    private readonly now: () => number = Date.now,
  ) {
    if (list.length === 0) throw new Error("no RPC endpoint");
    for (const e of list) {
      this.standing.set(e, {
        demotedUntil: 0,
        demotions: 0,
        reason: undefined,
        failedUntil: 0,
        head: undefined,
        lagging: false,
      });
    }
  }

  get many(): boolean {
    return this.list.length > 1;
  }

  private of(e: Endpoint): Standing {
    return this.standing.get(e) as Standing;
  }

  /** Whether the endpoint with this URL is demoted now (viem's fallback ranking fails its ping). */
  isDemoted(url: string): boolean {
    const e = this.list.find((x) => x.url === url);
    return e !== undefined && this.demoted(e);
  }

  isLagging(url: string): boolean {
    const e = this.list.find((x) => x.url === url);
    return e !== undefined && this.of(e).lagging;
  }

  private demoted(e: Endpoint): boolean {
    const s = this.of(e);
    if (s.demotedUntil === 0) return false;
    if (this.now() < s.demotedUntil) return true;
    s.demotedUntil = 0;
    this.log.info(
      { event: "rpc_endpoint_restored", endpoint: e.label, after: s.reason },
      `RPC endpoint ${e.label} is asked again after its demotion (${s.reason})`,
    );
    return false;
  }

  /**
   * Every endpoint, best first: those in good standing in the configured order, then those that failed a moment ago,
   * then lagging ones, then demoted ones (the soonest restored first). Never empty.
   */
  ordered(): Endpoint[] {
    const now = this.now();
    const rank = (e: Endpoint): number => {
      const s = this.of(e);
      if (this.demoted(e)) return 3;
      if (s.lagging) return 2;
      return s.failedUntil > now ? 1 : 0;
    };
    return this.list
      .map((e, i) => ({ e, i, r: rank(e) }))
      .sort((a, b) => a.r - b.r || (a.r === 3 ? this.of(a.e).demotedUntil - this.of(b.e).demotedUntil : a.i - b.i))
      .map((x) => x.e);
  }

  /** The endpoint a step is pinned to when it has no head to choose by. */
  preferred(): Endpoint {
    return this.ordered()[0] as Endpoint;
  }

  /** Endpoints worth asking now, best first: not demoted (all of them when every one is). */
  usable(): Endpoint[] {
    const ordered = this.ordered();
    const ok = ordered.filter((e) => !this.demoted(e));
    return ok.length > 0 ? ok : ordered;
  }

  /** A transport failure (no answer, or an error): behind the others for a moment. */
  failed(e: Endpoint): void {
    this.of(e).failedUntil = this.now() + FAILED_MS;
  }

  /**
   * The endpoint answered something the chain contradicts: demoted, and said. `detail` must name no credential (it
   * is built from block numbers and hashes, never from an error's text).
   */
  demote(e: Endpoint, reason: string, detail: string): void {
    const s = this.of(e);
    const forMs = Math.min(MAX_DEMOTION_MS, DEMOTION_MS * 2 ** Math.min(s.demotions, 10));
    s.demotions++;
    s.reason = reason;
    s.demotedUntil = this.now() + forMs;
    this.demotions++;
    this.log.warn(
      { event: "rpc_endpoint_demoted", endpoint: e.label, reason, detail, forMs, endpoints: this.list.length },
      `RPC endpoint ${e.label} answered what the chain contradicts (${reason}: ${detail}); ` +
        (this.many ? `asking the others for ${forMs / 1000} s` : "it is the only one: asking it again"),
    );
  }

  /**
   * Heads the endpoints reported: each one's lag is measured against the freshest head any endpoint reported just now
   * (within JUST_NOW_MS), and an endpoint more than maxLagBlocks behind it is lagging until it catches up (said once
   * each way: rpc_endpoint_lagging, rpc_endpoint_caught_up).
   */
  reportHead(url: string, head: bigint): void {
    const e = this.list.find((x) => x.url === url);
    if (!e) return;
    const now = this.now();
    this.of(e).head = { number: head, at: now };
    let best = head;
    for (const s of this.standing.values()) {
      if (s.head && now - s.head.at <= JUST_NOW_MS && s.head.number > best) best = s.head.number;
    }
    for (const x of this.list) {
      const s = this.of(x);
      if (!s.head || now - s.head.at > JUST_NOW_MS) continue;
      const lag = best - s.head.number;
      if (lag > this.maxLagBlocks && !s.lagging) {
        s.lagging = true;
        this.log.warn(
          {
            event: "rpc_endpoint_lagging",
            endpoint: x.label,
            head: big(s.head.number),
            bestHead: big(best),
            lagBlocks: big(lag),
          },
          `RPC endpoint ${x.label} is ${lag} blocks behind the freshest head: skipped until it catches up`,
        );
      } else if (lag <= this.maxLagBlocks && s.lagging) {
        s.lagging = false;
        this.log.info(
          { event: "rpc_endpoint_caught_up", endpoint: x.label, head: big(s.head.number) },
          `RPC endpoint ${x.label} caught up`,
        );
      }
    }
  }

  /**
   * Asks the usable endpoints in order until one knows the thing asked (a non-null answer). An endpoint that said
   * "no such thing" (null) about a block it had passed, by its own head, answered against the chain: it is
   * demoted. Returns the
   * first answer known, null when every endpoint that answered said null, and throws only when none answered.
   */
  async firstKnown<T>(
    what: string,
    ask: (client: PublicClient) => Promise<T | null | undefined>,
    /** The block the answer proves exists; a denier is blamed only when it reported a head past it (not lag). */
    blockOf?: (answer: T) => bigint | undefined,
  ): Promise<T | null> {
    const denied: Endpoint[] = [];
    let failure: unknown;
    let answered = false;
    for (const e of this.usable()) {
      let answer: T | null | undefined;
      try {
        answer = await ask(e.client);
      } catch (error) {
        this.failed(e);
        failure ??= error;
        continue;
      }
      answered = true;
      if (answer === null || answer === undefined) {
        denied.push(e);
        if (!this.many) break;
        continue;
      }
      const block = blockOf?.(answer);
      if (block !== undefined) await Promise.all(denied.map((d) => this.blameDenial(d, block, what)));
      return answer;
    }
    if (!answered) throw failure;
    return null;
  }

  /**
   * An endpoint said a block's worth of data does not exist while another had it. A node behind is only behind:
   * blamed (demoted) only when its own head is at or past that block, as it reported just now or, if it reported
   * nothing that recent, as it answers when asked. A mempool differs from node to node: only mined data is judged.
   */
  private async blameDenial(d: Endpoint, block: bigint, what: string): Promise<void> {
    const reported = this.of(d).head;
    let head = reported && this.now() - reported.at <= JUST_NOW_MS ? reported.number : undefined;
    if (head === undefined || head < block) {
      head = await Promise.resolve()
        .then(() => d.client.getBlockNumber({ cacheTime: 0 }))
        .catch(() => undefined);
      if (head === undefined) return;
      this.reportHead(d.url, head);
    }
    // concurrent lookups that met the same denier demote it once (not a doubled demotion for one fault)
    if (head < block || this.demoted(d)) return;
    this.demote(d, "unknown_to_endpoint", `${what}: answered null at head ${head}, another endpoint has it`);
  }

  /** Each endpoint's standing, for the status view (labels only). */
  describe(): { endpoint: string; demoted: boolean; lagging: boolean; reason: string | undefined }[] {
    return this.list.map((e) => ({
      endpoint: e.label,
      demoted: this.demoted(e),
      lagging: this.of(e).lagging,
      reason: this.of(e).reason,
    }));
  }
}

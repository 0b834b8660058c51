/**
 * The pool watch of issue 18 (src/executor/competitors.ts): other senders' pending liquidations recognised by the
 * adapter's decoder, kept by target with the highest bid first, forgotten after their ttl; never our own; a
 * competitor's replacement supersedes its earlier bid. Then on a real node: a competitor's transaction waiting in
 * Anvil's pool (interval mining) is seen through txpool_content.
 */
import {
  type Address,
  createPublicClient,
  type Hex,
  http,
  MethodNotFoundRpcError,
  type PublicClient,
  parseGwei,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../../src/devnet/anvil.ts";
import { CompetitorWatch, type PoolTransaction } from "../../src/executor/competitors.ts";
import { captureLogs } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

const EXCHANGE = "0x00000000000000000000000000000000000000ee" as Address;
const OURS = "0x00000000000000000000000000000000000000aa" as Address;
const RIVAL = "0x00000000000000000000000000000000000000bb" as Address;
/** A made-up selector the fake adapter reads as a liquidation of the targets its argument names. */
const SELECTOR = "0x12345678";

const protocol = {
  competitorTargets(input: Hex, to: Address) {
    if (to.toLowerCase() !== EXCHANGE || !input.startsWith(SELECTOR)) return undefined;
    return (
      input
        .slice(10)
        .match(/.{1,2}/g)
        ?.map((k) => `t${Number.parseInt(k, 16)}`) ?? []
    );
  },
};

function tx(hash: number, from: Address, targets: number[], tip: bigint, nonce = 0n): PoolTransaction {
  return {
    hash: `0x${hash.toString(16).padStart(64, "0")}` as Hex,
    from,
    to: EXCHANGE,
    input: `${SELECTOR}${targets.map((t) => t.toString(16).padStart(2, "0")).join("")}` as Hex,
    nonce,
    maxFeePerGas: tip * 10n,
    maxPriorityFeePerGas: tip,
  };
}

describe("CompetitorWatch", () => {
  it("keeps other senders' bids by target, the highest tip first; never ours; replacements supersede", () => {
    let head = 10n;
    const logs = captureLogs();
    const watch = new CompetitorWatch({
      protocol,
      ours: (a) => a.toLowerCase() === OURS,
      log: logs.log,
      head: () => head,
    });
    expect(watch.observe(tx(1, OURS, [1, 2], 5n))).toEqual([]); // our own
    expect(watch.observe(tx(2, RIVAL, [1, 2], 5n))).toEqual(["t1", "t2"]);
    expect(watch.observe({ ...tx(3, RIVAL, [3], 5n, 1n), to: "0x00000000000000000000000000000000000000cc" })).toEqual(
      [],
    );
    expect(watch.observe({ ...tx(4, RIVAL, [], 5n, 2n), input: "0xdeadbeef" })).toEqual([]);
    expect(watch.contest("t1")?.maxPriorityFeePerGas).toBe(5n);
    expect(watch.contest("t3")).toBeUndefined();
    // another competitor bids higher on t2
    const other = "0x00000000000000000000000000000000000000dd" as Address;
    watch.observe(tx(5, other, [2], 9n));
    expect(watch.contest("t2")?.from).toBe(other);
    expect(watch.contest("t1")?.from).toBe(RIVAL);
    // the rival replaces its transaction (same nonce) with a higher tip: its first bid is gone
    watch.observe(tx(6, RIVAL, [1], 12n));
    expect(watch.contest("t1")?.maxPriorityFeePerGas).toBe(12n);
    expect(watch.contest("t2")?.from).toBe(other);
    // the same hash again is not counted twice
    expect(watch.observe(tx(6, RIVAL, [1], 12n))).toEqual([]);
    expect(watch.seenBy.get(RIVAL)).toBe(2);
    expect(logs.events("competitor_seen")).toHaveLength(3);
    // the other competitor cancels its bid (a transfer to itself at the same nonce): no bid of it is left on t2
    expect(
      watch.observe({ hash: `0x${"ee".repeat(32)}` as Hex, from: other, to: other, input: "0x", nonce: 0n }),
    ).toEqual([]);
    // the rival's replacement bid on t1 alone withdrew its bid on t2: nobody bids on t2 now
    expect(watch.contest("t2")).toBeUndefined();
    expect(watch.contest("t1")?.maxPriorityFeePerGas).toBe(12n);
    // forgotten after the ttl
    head = 13n;
    watch.onHead(head);
    expect(watch.contest("t1")).toBeDefined();
    head = 14n;
    watch.onHead(head);
    expect(watch.contest("t1")).toBeUndefined();
    expect(watch.contested).toBe(0);
  });

  it("reads the pool only while active, and never again once the RPC says it does not serve txpool_content", async () => {
    const logs = captureLogs();
    let asked = 0;
    let served = true;
    let active = false;
    const client = {
      request: async () => {
        asked++;
        if (!served) {
          throw new MethodNotFoundRpcError(new Error("the method txpool_content does not exist/is not available"));
        }
        return { pending: {} };
      },
    } as unknown as PublicClient;
    const watch = new CompetitorWatch({ protocol, ours: () => false, log: logs.log, head: () => 0n });
    let polls = 0;
    watch.start({
      client,
      pollMs: 5,
      active: () => {
        polls++;
        return active;
      },
    });
    try {
      // idle: polls come and go without a request
      await until("idle polls", () => polls >= 5);
      expect(asked).toBe(0);
      active = true;
      await until("asked while active", () => asked >= 2);
      served = false;
      await until("unavailable said", () => logs.events("competitor_watch_unavailable").length === 1);
      const after = asked;
      const pollsThen = polls;
      // the poll loop ended with the refusal: no poll consults `active` again, so none asks
      await new Promise((r) => setTimeout(r, 50));
      expect(polls).toBe(pollsThen);
      expect(asked).toBe(after);
      expect(logs.events("competitor_watch_unavailable")).toHaveLength(1);
    } finally {
      watch.stop();
    }
  });

  describe("on a node's pool", () => {
    let anvil: Anvil;
    beforeAll(async () => {
      // mined by hand only: the competitor's transaction waits in the pool for as long as the test looks
      anvil = await startAnvil({ extraArgs: ["--no-mining"] });
    });
    afterAll(async () => {
      await anvil?.stop();
    });

    it("sees a competitor's pending liquidation through txpool_content before it is mined", async () => {
      const client = createPublicClient({ transport: http(anvil.rpcUrl) });
      const rival = privateKeyToAccount(ANVIL_KEYS[3] as Hex).address;
      const watch = new CompetitorWatch({
        protocol,
        ours: (a) => a.toLowerCase() === privateKeyToAccount(ANVIL_KEYS[0] as Hex).address.toLowerCase(),
        log: captureLogs().log,
        head: () => 0n,
      });
      watch.start({ client, pollMs: 100 });
      try {
        const hash = (await client.request({
          method: "eth_sendTransaction" as never,
          params: [
            {
              from: rival,
              to: EXCHANGE,
              data: `${SELECTOR}0708`,
              gas: "0x30000",
              maxFeePerGas: `0x${parseGwei("30").toString(16)}`,
              maxPriorityFeePerGas: `0x${parseGwei("7").toString(16)}`,
            },
          ] as never,
        })) as Hex;
        await until("the competitor seen", () => watch.contest("t7") !== undefined, 10_000);
        const bid = watch.contest("t8");
        expect(bid?.hash).toBe(hash);
        expect(bid?.from).toBe(rival.toLowerCase());
        expect(bid?.maxPriorityFeePerGas).toBe(parseGwei("7"));
        // seen while it waits in the pool, not once mined
        expect((await client.getTransaction({ hash })).blockNumber).toBeNull();
      } finally {
        watch.stop();
      }
    });
  });
});

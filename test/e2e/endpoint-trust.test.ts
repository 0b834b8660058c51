/**
 * Two endpoints in front of one node, one of which answers wrongly but well (test/helpers/inconsistentAnswers.ts),
 * each case in both orders (the bad endpoint listed first, and the honest one first): empty eth_getLogs answers while
 * following, empty answers only during the backfill, and transaction lookups answered "unknown" while liquidations
 * are pending. The other cases (a lagging head, logs of another fork) are in endpoint-trust-heads.test.ts.
 *
 * Each case ends with (test/helpers/trust.ts, verdict): the book equal to the chain field by field and the events
 * applied equal to the chain's; no position targeted by two of our mined transactions; no fatal end, and heads still
 * processed; the bad endpoint demoted and logged (rpc_endpoint_demoted, naming it, with a reason); processing again
 * within 5 s of the fault ending. Every check is a soft expectation: a case reports all it breaks.
 *
 * Each case has its own Anvil (a block every 200 ms), stopped whatever fails.
 */
import { describe, expect, it } from "vitest";
import { shutdown, startDevnet } from "../helpers/devnet.ts";
import { startFaultProxy } from "../helpers/faultProxy.ts";
import { otherForkHash } from "../helpers/inconsistentAnswers.ts";
import {
  atBlock,
  liquidatableOnChain,
  liveFault,
  ORDERS,
  settle,
  tradeAndDrop,
  verdict,
  withRun,
} from "../helpers/trust.ts";

describe("the fault proxy's inconsistent answers", () => {
  it("empty logs, a lagging head, logs of another fork, unknown transactions; forwarded again after clear()", async () => {
    const net = await startDevnet({ accounts: 4 });
    const p = await startFaultProxy(net.anvil.rpcUrl);
    try {
      const post = async (body: unknown) =>
        (await (
          await fetch(p.url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
          })
        ).json()) as { id: number; result: unknown } & { id: number; result: unknown }[];
      const call = (id: number, method: string, params: unknown[] = []) => ({ jsonrpc: "2.0", id, method, params });
      const engine = net.ex.d.engine;
      const range = { address: engine, fromBlock: "0x0", toBlock: "latest" };
      const real = (await net.ex.publicClient.request({ method: "eth_getLogs", params: [range] as never })) as {
        blockHash: string;
        blockNumber: string;
        transactionHash: string;
      }[];
      expect(real.length).toBeGreaterThan(0);
      const first = real[0] as (typeof real)[number];
      const byHash = { address: engine, blockHash: first.blockHash };

      await p.set({ kind: "emptyLogs" });
      expect((await post(call(1, "eth_getLogs", [range]))).result).toEqual([]);
      await p.set({ kind: "emptyLogs", only: "blockHash" });
      expect((await post(call(2, "eth_getLogs", [range]))).result).toHaveLength(real.length);
      expect((await post(call(3, "eth_getLogs", [byHash]))).result).toEqual([]);
      await p.set({ kind: "emptyLogs", only: "range" });
      expect((await post(call(4, "eth_getLogs", [range]))).result).toEqual([]);
      expect((await post(call(5, "eth_getLogs", [byHash]))).result).not.toEqual([]);

      for (let i = 0; i < 12; i++)
        await net.ex.publicClient.request({ method: "evm_mine" as never, params: [] as never });
      const top = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
      await p.set({ kind: "laggingHead", blocks: 10 });
      const lagged = await post([
        call(6, "eth_blockNumber"),
        call(7, "eth_getBlockByNumber", ["latest", false]),
        call(8, "eth_chainId"),
      ]);
      expect(lagged.map((a) => a.id)).toEqual([6, 7, 8]);
      expect(BigInt(lagged[0]?.result as string)).toBe(top - 10n);
      expect(BigInt((lagged[1]?.result as { number: string } | undefined)?.number ?? -1)).toBe(top - 10n);
      expect(lagged[2]?.result).toBe("0x7a69");
      await net.ex.publicClient.request({ method: "evm_mine" as never, params: [] as never });
      expect(BigInt((await post(call(9, "eth_blockNumber"))).result as string)).toBe(top - 9n); // it follows the head

      await p.set({ kind: "otherForkLogs" });
      const forked = (await post(call(10, "eth_getLogs", [range]))).result as typeof real;
      expect(forked.map((l) => l.blockHash)).toEqual(real.map((l) => otherForkHash(l.blockHash)));
      expect(forked.map((l) => l.transactionHash)).toEqual(real.map((l) => l.transactionHash));
      expect(forked.every((l, i) => l.blockHash !== real[i]?.blockHash)).toBe(true);
      await p.set({ kind: "otherForkLogs", shiftBlocks: 1 });
      const last = BigInt((real.at(-1) as (typeof real)[number]).blockNumber);
      const shifted = (await post(call(11, "eth_getLogs", [{ ...range, toBlock: `0x${(last + 1n).toString(16)}` }])))
        .result as typeof real;
      expect(shifted.map((l) => BigInt(l.blockNumber))).toEqual(real.map((l) => BigInt(l.blockNumber) + 1n));

      await p.set({ kind: "unknownTx" });
      const tx = first.transactionHash;
      const unknown = await post([
        call(12, "eth_getTransactionByHash", [tx]),
        call(13, "eth_getTransactionReceipt", [tx]),
        call(14, "eth_getBlockReceipts", [first.blockNumber]),
        call(15, "eth_getTransactionCount", [engine, "latest"]),
      ]);
      expect(unknown.slice(0, 3).map((a) => a.result)).toEqual([null, null, null]);
      expect(unknown[3]?.result).toMatch(/^0x/);

      const faulted = p.stats.faulted;
      p.clear();
      expect((await post(call(16, "eth_getTransactionReceipt", [tx]))).result).not.toBeNull();
      expect((await post(call(17, "eth_getLogs", [range]))).result).toHaveLength(real.length);
      expect(p.stats.faulted).toBe(faulted);
      // each request with a call rewritten counts once (requests 1, 3, 4, the batch 6-8, 9, 10, 11, the batch 12-15);
      // those the fault let through (2 and 5: the other kind of eth_getLogs) count none
      expect(faulted).toBe(8);
    } finally {
      await p.close();
      await shutdown(undefined, net);
    }
  }, 60_000);
});

describe.each(ORDERS)("two endpoints, $order", ({ badFirst }) => {
  it("empty eth_getLogs answers for a while, as traders act and positions become liquidatable", async () => {
    await withRun({ badFirst }, async (run) => {
      await liveFault(run, { kind: "emptyLogs" }, "rpc_endpoint_demoted");
    });
  }, 120_000);

  it("empty eth_getLogs answers only during the backfill", async () => {
    await withRun({ badFirst, initialFault: { fault: { kind: "emptyLogs", only: "range" } } }, async (run) => {
      const backfill = await settle(
        "backfill_completed",
        () => run.logs.events("backfill_completed").length > 0 || run.failure() !== undefined,
        20_000,
      );
      const headAtClear = await run.head();
      run.bad.clear();
      const clearedAt = performance.now();
      const completed = run.logs.events("backfill_completed")[0];
      const { dropBlock } = await tradeAndDrop(run);
      const liquidated = await settle(
        "every liquidatable position liquidated after the backfill",
        async () => atBlock(run, dropBlock) && (await liquidatableOnChain(run)).length === 0,
        10_000,
      );
      await verdict(run, { demotedEvent: "rpc_endpoint_demoted", clearedAt, headAtClear, faultedBefore: 0 });
      expect.soft(backfill, "the backfill completed").not.toBeInstanceOf(Error);
      // the chain has both markets and the early positions: a backfill that says otherwise took an empty answer
      expect.soft(Number(completed?.markets), "markets in the backfilled book").toBe(2);
      expect.soft(Number(completed?.positions), "positions in the backfilled book").toBeGreaterThan(0);
      expect.soft(liquidated, "liquidations after the backfill").not.toBeInstanceOf(Error);
    });
  }, 120_000);

  it('transaction lookups answered "unknown" while liquidations are pending', async () => {
    // one transaction per position (no batches): several attempts pending at once, each looked up
    // a transport timeout puts an endpoint behind the others for a while (Endpoints.failed): under a loaded machine's
    // 2-s timeouts the keeper could then ask only the honest one and never meet the fault this case is about
    await withRun({ badFirst, keeperConfig: { batching: false, rpcTimeoutMs: 10_000 } }, async (run) => {
      await liveFault(run, { kind: "unknownTx" }, "rpc_endpoint_demoted");
      expect.soft(run.keeper.executor.stats.confirmed, "liquidations confirmed").toBeGreaterThan(0);
    });
  }, 120_000);
});

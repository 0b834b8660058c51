/** Range splitting against a provider that refuses large ranges, as public RPCs do. */
import { type Log, type PublicClient, RpcRequestError } from "viem";
import { describe, expect, it } from "vitest";
import { fetchLogRanges } from "../../src/watcher/logs.ts";

const ADDRESS = "0x0000000000000000000000000000000000000001";

/** A provider with one log per block that refuses ranges wider than `limit` blocks. */
function provider(limit: bigint, failOnce?: bigint) {
  const asked: [bigint, bigint][] = [];
  let failed = false;
  const client = {
    async getLogs({ fromBlock, toBlock }: { fromBlock: bigint; toBlock: bigint }) {
      asked.push([fromBlock, toBlock]);
      if (failOnce !== undefined && !failed && fromBlock <= failOnce && failOnce <= toBlock) {
        failed = true;
        throw new Error("connection reset");
      }
      if (toBlock - fromBlock + 1n > limit) {
        throw new RpcRequestError({
          body: {},
          url: "http://127.0.0.1",
          error: { code: -32005, message: `query exceeds max block range ${limit}` },
        });
      }
      const logs: Partial<Log>[] = [];
      for (let b = fromBlock; b <= toBlock; b++) logs.push({ blockNumber: b, logIndex: 0 });
      return logs;
    },
  };
  return { client: client as unknown as PublicClient, asked };
}

describe("fetchLogRanges", () => {
  it("halves a refused range until the provider answers, and delivers every block once, in order", async () => {
    const { client, asked } = provider(300n);
    const seen: bigint[] = [];
    await fetchLogRanges(client, {
      address: ADDRESS,
      fromBlock: 1n,
      toBlock: 5000n,
      maxRange: 2000n,
      onRange: (logs) => seen.push(...logs.map((l) => l.blockNumber as bigint)),
    });
    expect(seen).toHaveLength(5000);
    expect(seen.every((b, i) => b === BigInt(i + 1))).toBe(true);
    expect(asked.some(([f, t]) => t - f + 1n > 300n)).toBe(true); // it did try wide ranges first
  });

  it("passes other failures to the caller without skipping the failed range", async () => {
    const { client } = provider(10_000n, 2500n);
    const seen: bigint[] = [];
    const opts = {
      address: ADDRESS as `0x${string}`,
      fromBlock: 1n,
      toBlock: 5000n,
      maxRange: 1000n,
      onRange: (logs: Log[]) => seen.push(...logs.map((l) => l.blockNumber as bigint)),
    };
    await expect(fetchLogRanges(client, opts)).rejects.toThrow(/connection reset/);
    expect(seen).toHaveLength(2000);
    await fetchLogRanges(client, { ...opts, fromBlock: 2001n });
    expect(seen).toHaveLength(5000);
  });

  it("fetches several ranges at once, and still delivers them strictly in block order", async () => {
    let inFlight = 0;
    let most = 0;
    const client = {
      async getLogs({ fromBlock, toBlock }: { fromBlock: bigint; toBlock: bigint }) {
        inFlight++;
        most = Math.max(most, inFlight);
        // later ranges answer sooner: the order of delivery must not follow the order of answers
        await new Promise((r) => setTimeout(r, Number(5000n - fromBlock) / 500));
        inFlight--;
        const logs: Partial<Log>[] = [];
        for (let b = fromBlock; b <= toBlock; b++) logs.push({ blockNumber: b, logIndex: 0 });
        return logs;
      },
    } as unknown as PublicClient;
    const delivered: [bigint, bigint][] = [];
    const seen: bigint[] = [];
    await fetchLogRanges(client, {
      address: ADDRESS,
      fromBlock: 1n,
      toBlock: 5000n,
      maxRange: 250n,
      concurrency: 4,
      onRange: (logs, from, to) => {
        delivered.push([from, to]);
        seen.push(...logs.map((l) => l.blockNumber as bigint));
      },
    });
    expect(most).toBe(4);
    expect(seen.every((b, i) => b === BigInt(i + 1))).toBe(true);
    expect(seen).toHaveLength(5000);
    expect(delivered.every(([f], i) => i === 0 || f === (delivered[i - 1] as [bigint, bigint])[1] + 1n)).toBe(true);
  });
});

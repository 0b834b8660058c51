/** Range splitting against a provider that refuses large ranges, as public RPCs do. */
import { numberToHex, type PublicClient, RpcRequestError } from "viem";
import { describe, expect, it } from "vitest";
import type { ChainLog } from "../../src/protocol/adapter.ts";
import { fetchLogRanges } from "../../src/watcher/logs.ts";

const ADDRESS = "0x0000000000000000000000000000000000000001";

/** One raw log (as a node answers eth_getLogs) per block of [from, to]. */
function rawLogsOf(from: bigint, to: bigint) {
  const logs = [];
  for (let b = from; b <= to; b++) {
    logs.push({
      address: ADDRESS,
      topics: [],
      data: "0x",
      blockNumber: numberToHex(b),
      logIndex: "0x0",
      blockHash: `0x${"11".repeat(32)}`,
      transactionHash: `0x${"22".repeat(32)}`,
    });
  }
  return logs;
}
type Params = { params: [{ fromBlock: `0x${string}`; toBlock: `0x${string}` }] };
const range = ({ params: [p] }: Params) => ({ fromBlock: BigInt(p.fromBlock), toBlock: BigInt(p.toBlock) });
const blockOf = (l: ChainLog) => BigInt(l.blockNumber as string);

/** A provider with one log per block that refuses ranges wider than `limit` blocks. */
function provider(limit: bigint, failOnce?: bigint) {
  const asked: [bigint, bigint][] = [];
  let failed = false;
  const client = {
    async request(call: Params) {
      const { fromBlock, toBlock } = range(call);
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
      return rawLogsOf(fromBlock, toBlock);
    },
  };
  return { client: client as unknown as PublicClient, asked };
}

describe("fetchLogRanges", () => {
  it("halves a refused range until the provider answers, and delivers every block once, in order", async () => {
    const { client, asked } = provider(300n);
    const seen: bigint[] = [];
    await fetchLogRanges(client, {
      addresses: [ADDRESS],
      fromBlock: 1n,
      toBlock: 5000n,
      maxRange: 2000n,
      onRange: (logs) => seen.push(...logs.map(blockOf)),
    });
    expect(seen).toHaveLength(5000);
    expect(seen.every((b, i) => b === BigInt(i + 1))).toBe(true);
    expect(asked.some(([f, t]) => t - f + 1n > 300n)).toBe(true); // it did try wide ranges first
  });

  it("passes other failures to the caller without skipping the failed range", async () => {
    const { client } = provider(10_000n, 2500n);
    const seen: bigint[] = [];
    const opts = {
      addresses: [ADDRESS as `0x${string}`],
      fromBlock: 1n,
      toBlock: 5000n,
      maxRange: 1000n,
      onRange: (logs: ChainLog[]) => seen.push(...logs.map(blockOf)),
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
      async request(call: Params) {
        const { fromBlock, toBlock } = range(call);
        inFlight++;
        most = Math.max(most, inFlight);
        // later ranges answer sooner: the order of delivery must not follow the order of answers
        await new Promise((r) => setTimeout(r, Number(5000n - fromBlock) / 500));
        inFlight--;
        return rawLogsOf(fromBlock, toBlock);
      },
    } as unknown as PublicClient;
    const delivered: [bigint, bigint][] = [];
    const seen: bigint[] = [];
    await fetchLogRanges(client, {
      addresses: [ADDRESS],
      fromBlock: 1n,
      toBlock: 5000n,
      maxRange: 250n,
      concurrency: 4,
      onRange: (logs, from, to) => {
        delivered.push([from, to]);
        seen.push(...logs.map(blockOf));
      },
    });
    expect(most).toBe(4);
    expect(seen.every((b, i) => b === BigInt(i + 1))).toBe(true);
    expect(seen).toHaveLength(5000);
    expect(delivered.every(([f], i) => i === 0 || f === (delivered[i - 1] as [bigint, bigint])[1] + 1n)).toBe(true);
  });
});

import type { Hex, PublicClient } from "viem";
import { describe, expect, it } from "vitest";
import type { ChainLog } from "../../src/protocol/adapter.ts";
import { fillTimestamps, stampLogs } from "../../src/watcher/timestamps.ts";

const hash = (n: number): Hex => `0x${n.toString(16).padStart(64, "0")}`;
const log = (block: number, extra: Record<string, unknown> = {}) =>
  ({
    topics: [],
    data: "0x",
    blockNumber: `0x${block.toString(16)}`,
    logIndex: "0x0",
    blockHash: hash(block),
    transactionHash: hash(999),
    ...extra,
  }) as unknown as ChainLog & { blockTimestamp?: Hex };

function node(headers: Map<Hex, { number: Hex; timestamp: Hex; hash: Hex } | null>) {
  const asked: Hex[] = [];
  const client = {
    async request({ params }: { params: [Hex, boolean] }) {
      asked.push(params[0]);
      return headers.get(params[0]) ?? null;
    },
  } as unknown as PublicClient;
  return { client, asked };
}

describe("block times for logs without them", () => {
  it("takes each block's header once, by hash; logs that carry a time keep it", async () => {
    const headers = new Map([
      [hash(5), { number: "0x5" as Hex, timestamp: "0x64" as Hex, hash: hash(5) }],
      [hash(6), { number: "0x6" as Hex, timestamp: "0x65" as Hex, hash: hash(6) }],
    ]);
    const { client, asked } = node(headers);
    const logs = [log(5), log(5), log(6), log(7, { blockTimestamp: "0x99" })];
    await fillTimestamps(client, logs);
    expect(logs.map((l) => l.blockTimestamp)).toEqual(["0x64", "0x64", "0x65", "0x99"]);
    expect(asked.sort()).toEqual([hash(5), hash(6)]);
  });

  it("refuses a header the endpoint does not know, or one of another block", async () => {
    await expect(fillTimestamps(node(new Map()).client, [log(5)])).rejects.toThrow(/no header/);
    const wrong = new Map([[hash(5), { number: "0x8" as Hex, timestamp: "0x64" as Hex, hash: hash(5) }]]);
    await expect(fillTimestamps(node(wrong).client, [log(5)])).rejects.toThrow(/names block/);
  });

  it("a head's logs take its header's time", () => {
    const logs = [log(9), log(9, { blockTimestamp: "0x1" })];
    stampLogs(logs, 300n);
    expect(logs.map((l) => l.blockTimestamp)).toEqual(["0x12c", "0x1"]);
  });
});

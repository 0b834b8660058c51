import { type Hex, hexToBigInt, type PublicClient, toHex } from "viem";
import { describe, expect, it } from "vitest";
import { type ViewMarket, ViewPrices } from "../../src/watcher/viewPrices.ts";
import { captureLogs } from "../helpers/logs.ts";

const WAD = 10n ** 18n;
const head = (n: bigint) => ({
  number: n,
  hash: toHex(n, { size: 32 }),
  parentHash: toHex(n - 1n, { size: 32 }),
  timestamp: 1000n + n,
  baseFeePerGas: 1n,
});

/** A node answering each view by its target address's last byte; pinned reads must carry the head's hash. */
function node(answers: Map<number, () => Hex>) {
  const pinned: Hex[] = [];
  const client = {
    async request({ params }: { method: string; params: [{ to: Hex }, { blockHash: Hex }] }) {
      pinned.push(params[1].blockHash);
      const answer = answers.get(Number.parseInt(params[0].to.slice(-2), 16));
      if (!answer) throw new Error("execution reverted: OLD");
      return answer();
    },
  } as unknown as PublicClient;
  return { client, pinned };
}

const market = (id: number): ViewMarket => ({
  id,
  name: `m${id}`,
  read: { to: `0x${id.toString(16).padStart(40, "0")}`, data: "0x12345678" },
  decode: (answer) => hexToBigInt(answer),
});

describe("ViewPrices", () => {
  it("prices each market from its view at the head's hash; a reverted or non-positive answer leaves it out, said once", async () => {
    const answers = new Map<number, () => Hex>([
      [1, () => toHex(2000n * WAD, { size: 32 })],
      [3, () => toHex(0n, { size: 32 })],
    ]);
    const { client, pinned } = node(answers);
    const logs = captureLogs();
    const markets = [market(1), market(2), market(3)];
    const prices = new ViewPrices({ markets: () => markets, log: logs.log });
    for (const n of [10n, 11n]) {
      const block = head(n);
      const reads = await prices.readHead(client, block);
      const tick = await prices.settleHead(client, block, reads, []);
      expect([...tick.prices]).toEqual([[1, 2000n * WAD]]);
      expect(pinned.every((h) => h === block.hash)).toBe(true);
      pinned.length = 0;
    }
    const said = logs.lines.filter((l) => l.event === "mark_price_unavailable");
    expect(said.map((l) => l.market).sort()).toEqual(["m2", "m3"]);
    // priced again, then missing again: said again
    answers.set(2, () => toHex(5n * WAD, { size: 32 }));
    expect((await prices.resync(client, head(12n))).prices.get(2)).toBe(5n * WAD);
    answers.delete(2);
    await prices.resync(client, head(13n));
    expect(logs.lines.filter((l) => l.event === "mark_price_unavailable" && l.market === "m2")).toHaveLength(2);
  });

  it("reads a market listed in the head's own block once its events are applied", async () => {
    const answers = new Map<number, () => Hex>([
      [1, () => toHex(7n * WAD, { size: 32 })],
      [4, () => toHex(9n * WAD, { size: 32 })],
    ]);
    const { client } = node(answers);
    const markets = [market(1)];
    const prices = new ViewPrices({ markets: () => markets, log: captureLogs().log });
    const block = head(20n);
    const reads = await prices.readHead(client, block);
    markets.push(market(4)); // the head's events listed it
    const tick = await prices.settleHead(client, block, reads, []);
    expect(tick.prices.get(4)).toBe(9n * WAD);
    expect(tick.prices.get(1)).toBe(7n * WAD);
  });

  it("looks ahead while wanted: the same reads as the next block (number + 1, expected time) in the head's round trip", async () => {
    const seen: { over?: { number: Hex; time: Hex } }[] = [];
    const client = {
      async request({
        params,
      }: {
        method: string;
        params: [{ to: Hex }, { blockHash: Hex }, unknown?, { number: Hex; time: Hex }?];
      }) {
        seen.push(params[3] ? { over: params[3] } : {});
        const id = Number.parseInt(params[0].to.slice(-2), 16);
        if (id === 2 && params[3]) throw new Error("execution reverted");
        // the view moves with time: its answer is the block time it runs at
        return toHex((params[3] ? hexToBigInt(params[3].time) : 0n) + BigInt(id) * WAD, { size: 32 });
      },
    } as unknown as PublicClient;
    let wanted = false;
    const logs = captureLogs();
    const prices = new ViewPrices({ markets: () => [market(1), market(2)], log: logs.log, lookahead: () => wanted });
    const settle = async (n: bigint) => {
      const block = head(n);
      return prices.settleHead(client, block, await prices.readHead(client, block), []);
    };
    expect((await settle(10n)).ahead).toBeUndefined();
    expect(seen.every((c) => c.over === undefined)).toBe(true);
    wanted = true;
    // heads 10 and 12 seen (11 missed), 2 s apart: blocks 1 s apart, so the next block is expected at 1012 + 1
    const tick = await settle(12n);
    expect(tick.ahead?.blockNumber).toBe(13n);
    expect(tick.ahead?.timestamp).toBe(1013n);
    expect(tick.ahead?.prices.get(1)).toBe(1013n + WAD);
    expect(tick.ahead?.prices.has(2)).toBe(false); // a failed forecast read is left out, quietly
    expect(tick.prices.get(2)).toBe(2n * WAD); // and the head's own price stands
    expect(seen.filter((c) => c.over).map((c) => c.over?.number)).toEqual(["0xd", "0xd"]);
    expect(logs.lines.filter((l) => l.event === "mark_price_unavailable")).toEqual([]);
  });
});

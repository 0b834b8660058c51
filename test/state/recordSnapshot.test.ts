import { describe, expect, it } from "vitest";
import type { RecordState } from "../../src/state/recordBook.ts";
import { recordSnapshotCodec } from "../../src/state/recordSnapshot.ts";
import { SnapshotError } from "../../src/state/snapshotCodec.ts";

interface Account {
  readonly key: string;
  readonly prices: readonly number[];
  readonly collateral: bigint;
  readonly positions: ReadonlyMap<number, { size: bigint; note?: string }>;
}
type State = RecordState<Account, { id: number; name: string; growth: { lo: bigint; hi: bigint } }, { mm: bigint }>;

const exchange = "0x00000000000000000000000000000000000000Ab" as const;
const meta = { chainId: 10, exchange, blockNumber: 123n, blockHash: `0x${"ab".repeat(32)}` as const };
const codec = recordSnapshotCodec<Account, State["markets"][number][1], { mm: bigint }>({
  adapter: "perp-v2",
  codec: 1,
  check: {
    account(a) {
      if (typeof a.collateral !== "bigint") throw new Error("collateral is not an integer");
    },
  },
});
const state: State = {
  markets: [[0, { id: 0, name: "vETH", growth: { lo: -5n, hi: 2n ** 200n } }]],
  accounts: Array.from({ length: 2500 }, (_, i) => [
    `0x${i.toString(16).padStart(40, "0")}`,
    {
      key: `0x${i.toString(16).padStart(40, "0")}`,
      prices: [0],
      collateral: BigInt(i) * 10n ** 18n - 7n,
      positions: new Map([[0, { size: -BigInt(i) * 3n }]]),
    },
  ]),
  global: { mm: 62_500n },
  cursor: {
    blockNumber: 120n,
    logIndex: 4,
    blockHash: `0x${"cd".repeat(32)}`,
    transactionHash: `0x${"ef".repeat(32)}`,
  },
};
const text = () => [...codec.chunks(meta, state)].join("");

describe("record snapshots (format 2)", () => {
  it("reads back exactly what it wrote: bigints beyond 2^53, maps, the cursor", () => {
    const back = codec.parse(text(), { chainId: 10, exchange: exchange.toLowerCase() as never });
    expect(back.state).toEqual(state);
    expect(back.blockNumber).toBe(123n);
    expect(codec.counts(back.state)).toEqual({ markets: 1, accounts: 2500 });
  });

  it("refuses a snapshot altered, cut short, of another chain, adapter or record version, or failing the adapter's check", () => {
    const good = text();
    const problem = (content: string, o: Parameters<typeof recordSnapshotCodec>[0] | undefined = undefined) => {
      try {
        (o ? recordSnapshotCodec(o) : codec).parse(content, { chainId: 10, exchange });
        return "parsed";
      } catch (error) {
        if (!(error instanceof SnapshotError)) throw error;
        return error.problem;
      }
    };
    expect(problem(good.replace('"$n":"62500"', '"$n":"62501"'))).toBe("corrupt");
    expect(problem(good.split("\n").slice(0, 100).join("\n"))).toBe("corrupt");
    expect(problem(good.replace('"chainId":10', '"chainId":11'))).toBe("other_chain");
    expect(problem(good, { adapter: "perp-v3", codec: 1 })).toBe("other_adapter");
    expect(problem(good, { adapter: "perp-v2", codec: 2 })).toBe("version");
    const badAccount = recordSnapshotCodec<Account, unknown, unknown>({
      adapter: "perp-v2",
      codec: 1,
      check: {
        account(a) {
          if (a.collateral < 0n) throw new Error("negative collateral");
        },
      },
    });
    expect(() => badAccount.parse(good, { chainId: 10, exchange })).toThrow(/line 4: account: negative collateral/);
  });
});

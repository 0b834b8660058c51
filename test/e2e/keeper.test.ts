/**
 * The whole keeper against the reference exchange on Anvil: positions at every leverage, a price drop, and the
 * keeper liquidates exactly what the contract's isLiquidatable reported before it acted, once each.
 */
import { type Address, parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import type { RunningKeeper } from "../../src/app.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { BTC, devnetPositions, ETH, openPositions, type PositionSpec } from "../../src/devnet/positions.ts";
import { positionKey } from "../../src/protocol/perpEngine/book.ts";
import { type DevnetFixture, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { ticked, until } from "../helpers/wait.ts";

const specs = devnetPositions();
let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;
const traderOf = (s: PositionSpec): Address => net.ex.trader(s.trader).account.address;

/** Which positions the contract says are liquidatable, each market read at the block of its price move. */
async function liquidatableAt(blocks: ReadonlyMap<number, bigint>): Promise<Set<string>> {
  const flags = await Promise.all(
    specs.map((s) =>
      net.ex.publicClient.readContract({
        address: net.ex.d.engine,
        abi: perpEngineAbi,
        functionName: "isLiquidatable",
        args: [traderOf(s), BigInt(s.marketId)],
        blockNumber: blocks.get(s.marketId) as bigint,
      }),
    ),
  );
  return new Set(specs.filter((_, i) => flags[i]).map((s) => positionKey(s.marketId, traderOf(s))));
}

async function openKeys(): Promise<Set<string>> {
  const sizes = await Promise.all(specs.map((s) => net.ex.position(traderOf(s), s.marketId)));
  return new Set(specs.filter((_, i) => sizes[i]?.size !== 0n).map((s) => positionKey(s.marketId, traderOf(s))));
}

/** Keys of positions this keeper liquidated, from the chain's own events. */
function liquidatedByKeeper(): string[] {
  return logs
    .events("position_liquidated")
    .filter((l) => l.ours === true)
    .map((l) => positionKey(l.marketId as number, l.trader as Address));
}

/** Moves both oracles; returns the block of each market's move (the keeper may act right after each). */
async function movePrices(btc: string, eth: string): Promise<Map<number, bigint>> {
  const blocks = new Map<number, bigint>();
  for (const [marketId, price] of [
    [BTC, btc],
    [ETH, eth],
  ] as const) {
    const hash = await net.ex.setPrice(marketId, parseUnits(price, ORACLE_DECIMALS));
    blocks.set(marketId, (await net.ex.publicClient.getTransactionReceipt({ hash })).blockNumber);
  }
  return blocks;
}

const lastBlock = (blocks: ReadonlyMap<number, bigint>) => [...blocks.values()].reduce((a, b) => (a > b ? a : b));

async function settled(blocks: ReadonlyMap<number, bigint>, expected: Set<string>): Promise<void> {
  const afterBlock = lastBlock(blocks);
  const k = keeper;
  if (!k) throw new Error("keeper not started");
  await until("the keeper to see the price move", () => (k.watcher.latestTick?.blockNumber ?? 0n) >= afterBlock);
  await until("the liquidations to land", async () => {
    const open = await openKeys();
    return [...expected].every((key) => !open.has(key));
  });
  await until("the keeper to index them", () => [...expected].every((key) => !k.book.positions.has(key)));
  await k.executor.idle();
}

beforeAll(async () => {
  net = await startDevnet({ accounts: 30 });
  await openPositions(net.ex, specs);
  ({ keeper, logs } = await startTestKeeper(net));
  const k = keeper;
  await until("backfill", () => k.book.positions.size === specs.length);
});

afterAll(async () => {
  await shutdown(keeper, net);
});

describe("keeper on Anvil", () => {
  it("rebuilds every open position from the exchange's events", async () => {
    const k = keeper as RunningKeeper;
    expect(k.book.positions.size).toBe(specs.length);
    for (const s of specs) {
      const onChain = await net.ex.position(traderOf(s), s.marketId);
      const local = k.book.positions.get(positionKey(s.marketId, traderOf(s)));
      expect(local).toMatchObject({ size: onChain.size, margin: onChain.margin, openNotional: onChain.openNotional });
    }
  });

  it("liquidates nothing while every position is healthy", async () => {
    const block = await movePrices("60100", "2505");
    expect((await liquidatableAt(block)).size).toBe(0);
    const k = keeper as RunningKeeper;
    // the price moves' heads and two more ticked, the executor idle: whatever the keeper made of them is sent by now
    await ticked(k, net, 2);
    expect(logs.events("liquidation_sent")).toHaveLength(0);
    expect(logs.events("position_flagged")).toHaveLength(0);
  });

  it("after a crash, liquidates exactly the longs the contract reported liquidatable, once each", async () => {
    const block = await movePrices("55200", "2375");
    const expected = await liquidatableAt(block);
    expect(expected.size).toBeGreaterThan(3);
    expect(expected.has(positionKey(BTC, traderOf(specs[0] as PositionSpec)))).toBe(true); // the 10x BTC long
    expect(expected.has(positionKey(ETH, traderOf(specs[1] as PositionSpec)))).toBe(true); // the 20x ETH long
    await settled(block, expected);

    expect(new Set(liquidatedByKeeper())).toEqual(expected);
    expect(liquidatedByKeeper()).toHaveLength(expected.size);
    const sent = logs
      .events("liquidation_sent")
      .flatMap((l) => (l.targets as { trader: Address; marketId: number }[] | undefined) ?? [l])
      .map((t) => positionKey(t.marketId as number, t.trader as Address));
    expect(sent).toHaveLength(new Set(sent).size); // never twice for one position
    const open = await openKeys();
    for (const s of specs) {
      const key = positionKey(s.marketId, traderOf(s));
      expect(open.has(key)).toBe(!expected.has(key));
    }
  });

  it("after a squeeze, liquidates the shorts that crossed and leaves the rest open", async () => {
    const before = liquidatedByKeeper().length;
    const block = await movePrices("64200", "2650");
    const expected = await liquidatableAt(block);
    expect(expected.size).toBeGreaterThan(3);
    await settled(block, expected);
    const now = liquidatedByKeeper();
    expect(new Set(now.slice(before))).toEqual(expected);
    const open = await openKeys();
    expect([...expected].some((key) => open.has(key))).toBe(false);
    expect(open.size).toBe(specs.length - now.length);
    expect(logs.events("liquidation_confirmed")).toHaveLength(now.length);
    expect(logs.events("liquidation_failed")).toHaveLength(0);
  });

  it("never writes the signer's key to a log line", () => {
    expect(logs.raw.join("")).not.toContain(ANVIL_KEYS[1].slice(2));
  });
});

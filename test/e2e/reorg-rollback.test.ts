/**
 * Reorganisations of depth 1 to 5 (anvil_reorg and anvil_rollback) while positions open, grow, shrink, close and
 * are liquidated by the keeper: each one is rolled back to the common ancestor, never rebuilt, and the book after it
 * equals, field by field, a book rebuilt from the canonical chain's logs.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import type { RunningKeeper } from "../../src/app.ts";
import { ETH, openPositions, type PositionSpec } from "../../src/devnet/positions.ts";
import { Book } from "../../src/protocol/perpEngine/book.ts";
import { decodePerpEngineLogs } from "../../src/protocol/perpEngine/protocol.ts";
import { type DevnetFixture, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;

const rpc = (method: string, params: unknown[] = []) =>
  net.ex.publicClient.request({ method: method as never, params: params as never });
const head = () => net.ex.publicClient.getBlockNumber({ cacheTime: 0 });

/** The book a fresh backfill builds from the canonical chain up to `toBlock`. */
async function canonicalBook(toBlock: bigint): Promise<Book> {
  const book = new Book();
  const raw = await net.ex.publicClient.getLogs({ address: net.ex.d.engine, fromBlock: net.ex.d.deployBlock, toBlock });
  for (const event of decodePerpEngineLogs(raw)) book.apply(event);
  return book;
}

/** Waits until the keeper has followed the chain to its head and nothing of its own is under way. */
async function settled(k: RunningKeeper): Promise<bigint> {
  let at = 0n;
  await until(
    "the keeper at the head",
    async () => {
      at = await head();
      return k.watcher.latestTick?.blockNumber === at && k.watcher.processedBlock === at;
    },
    20_000,
  );
  await k.executor.idle();
  return at;
}

function snapshot(book: Book) {
  return {
    positions: [...book.positions.entries()].sort(([a], [b]) => (a < b ? -1 : 1)),
    funding: [...book.markets.values()].map((m) => [m.id, m.funding]),
    markets: [...book.markets.keys()].sort(),
  };
}

const long = (trader: number, margin = "300", leverage = 10): PositionSpec => ({
  trader,
  marketId: ETH,
  side: "long",
  margin,
  leverage,
});

beforeAll(async () => {
  net = await startDevnet({ accounts: 30 });
  await openPositions(
    net.ex,
    [2, 3, 4, 5].map((t) => long(t)),
  );
  ({ keeper, logs } = await startTestKeeper(net, { pollIntervalMs: 40, batching: false }));
  const k = keeper;
  await until("backfill", () => k.book.positions.size === 4);
}, 60_000);

afterAll(async () => {
  await shutdown(keeper, net);
});

describe("reorganisations rolled back block by block", () => {
  for (const depth of [1, 2, 3, 4, 5]) {
    it(`depth ${depth} (${depth % 2 ? "anvil_reorg" : "anvil_rollback"}): rolled back, and the book equals a fresh backfill's`, async () => {
      const k = keeper as RunningKeeper;
      const trader = 6 + depth;
      const before = logs.events("reorg_detected").length;
      const price = await net.ex.price(ETH); // a reorganisation may have taken back an earlier move
      // activity in the blocks the reorganisation will remove: an open, a margin change, a close, a liquidation
      await openPositions(net.ex, [long(trader, "200", 20)]);
      const wallet = net.ex.trader(trader);
      await net.ex.fund(wallet, 1_000_000n);
      await net.ex.send(wallet, {
        address: net.ex.d.engine,
        abi: perpEngineAbi,
        functionName: "addMargin",
        args: [BigInt(ETH), 1_000_000n],
      });
      const victim = net.ex.trader(2 + (depth % 4)).account.address;
      const open = await net.ex.position(victim, ETH);
      if (open.size !== 0n) {
        await net.ex.send(net.ex.trader(2 + (depth % 4)), {
          address: net.ex.d.engine,
          abi: perpEngineAbi,
          functionName: "trade",
          args: [BigInt(ETH), -open.size / 2n, 0n],
        });
      }
      // a dip that makes the 20x long liquidatable: the keeper liquidates it
      await net.ex.setPrice(ETH, (price * 976n) / 1000n);
      await until(
        "the keeper's liquidation",
        async () => (await net.ex.position(wallet.account.address, ETH)).size === 0n,
      );
      await settled(k);
      await net.ex.setPrice(ETH, price);
      const top = await settled(k);

      if (depth % 2) await rpc("anvil_reorg", [depth, []]);
      else {
        await rpc("anvil_rollback", [depth]);
        await rpc("evm_mine"); // a new head above the ancestor
      }
      net.ex.forgetNonces(); // the removed blocks held the devnet accounts' transactions too
      await until("the reorganisation noticed", () => logs.events("reorg_detected").length > before, 15_000);
      const reorg = logs.events("reorg_detected").at(-1);
      expect(reorg?.action).toBe("rollback");
      expect(BigInt(reorg?.ancestor as string)).toBe(top - BigInt(depth));
      const at = await settled(k);
      const ours = snapshot(k.book);
      const fresh = snapshot(await canonicalBook(at));
      expect(ours).toEqual(fresh);
      // the risk index follows the book exactly
      expect(k.risk.index.size).toBe(k.book.positions.size);
    }, 90_000);
  }

  it("never rebuilt from the deployment block", () => {
    expect(logs.events("reorg_detected").every((l) => l.action === "rollback")).toBe(true);
    expect(logs.events("backfill_started")).toHaveLength(1);
  });
});

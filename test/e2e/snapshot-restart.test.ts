/**
 * Restart from a snapshot: a keeper writes the book at a final block (the chain's finalized block; Anvil serves
 * the tag at 64 under the head; or reorgDepth under the head where the RPC does not serve it); the next start checks
 * that block is still canonical and replays only from there. Whatever the chain did meanwhile,
 * the book after the restart equals a fresh backfill's, field by field. A snapshot of a block reorganised away, or a
 * damaged one, is reported in one line and ignored.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import type { RunningKeeper } from "../../src/app.ts";
import { ETH, openPositions, type PositionSpec } from "../../src/devnet/positions.ts";
import { Book } from "../../src/protocol/perpEngine/book.ts";
import { decodePerpEngineLogs } from "../../src/protocol/perpEngine/protocol.ts";
import { perpEngineSnapshots } from "../../src/protocol/perpEngine/snapshot.ts";
import { readSnapshotFile, snapshotPath } from "../../src/state/snapshotFile.ts";
import { type DevnetFixture, shutdown, startDevnet, startTestKeeper, testStateDir } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { refusingFinalized, startRpcProxy } from "../helpers/rpcProxy.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
const stateDir = testStateDir();
const CONFIG = { stateDir, snapshotIntervalSeconds: 3600, pollIntervalMs: 50 };

const rpc = (method: string, params: unknown[] = []) =>
  net.ex.publicClient.request({ method: method as never, params: params as never });
const head = () => net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
const long = (trader: number): PositionSpec => ({ trader, marketId: ETH, side: "long", margin: "300", leverage: 5 });

function view(book: Book) {
  return {
    positions: [...book.positions.entries()].sort(([a], [b]) => (a < b ? -1 : 1)),
    funding: [...book.markets.values()].map((m) => [m.id, m.funding]),
    markets: [...book.markets.keys()].sort(),
  };
}

async function canonicalBook(toBlock: bigint): Promise<Book> {
  const book = new Book();
  const raw = await net.ex.publicClient.getLogs({ address: net.ex.d.engine, fromBlock: net.ex.d.deployBlock, toBlock });
  for (const event of decodePerpEngineLogs(raw)) book.apply(event);
  return book;
}

/** Starts a keeper on the shared state directory and waits until it follows the head. */
async function start(): Promise<{ k: RunningKeeper; logs: CapturedLog }> {
  const started = await startTestKeeper(net, CONFIG);
  keeper = started.keeper;
  const k = keeper;
  await until("the keeper at the head", async () => k.watcher.latestTick?.blockNumber === (await head()), 20_000);
  return { k, logs: started.logs };
}

async function stop(k: RunningKeeper): Promise<void> {
  await k.stop("test");
  keeper = undefined;
}

async function mine(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await rpc("evm_mine");
}

beforeAll(async () => {
  net = await startDevnet({ accounts: 20 });
  await openPositions(net.ex, [2, 3, 4, 5, 6].map(long));
  await rpc("anvil_mine", ["0x46"]); // 70 blocks: the finalized block (64 under the head) is after the positions
}, 60_000);

afterAll(async () => {
  await shutdown(keeper, net);
});

describe("restart from a snapshot", () => {
  it("replays only from the snapshot's block, and ends with the book a full backfill builds", async () => {
    const a = await start();
    const firstHead = await head();
    await stop(a.k);
    // written once the backfill was done; the stop had no newer final block to write
    const written = a.logs.events("snapshot_written").at(-1);
    expect(written).toBeDefined();
    const snapshotBlock = BigInt(written?.blockNumber as string);
    const finalized = await net.ex.publicClient.getBlock({ blockTag: "finalized" });
    expect(snapshotBlock).toBe(finalized.number); // the chain's finalized block
    expect(snapshotBlock).toBe(firstHead - 64n);
    expect(written?.positions).toBe(5);

    // while it is down: positions open, one grows, one is closed
    await openPositions(net.ex, [7, 8].map(long));
    const wallet = net.ex.trader(3);
    const open = await net.ex.position(wallet.account.address, ETH);
    await net.ex.send(wallet, {
      address: net.ex.d.engine,
      abi: perpEngineAbi,
      functionName: "trade",
      args: [BigInt(ETH), -open.size, 0n],
    });
    await net.ex.send(net.ex.trader(4), {
      address: net.ex.d.engine,
      abi: perpEngineAbi,
      functionName: "trade",
      args: [BigInt(ETH), 10n ** 16n, 0n],
    });
    await mine(2);

    const b = await start();
    const loaded = b.logs.events("snapshot_loaded");
    expect(loaded).toHaveLength(1);
    expect(BigInt(loaded[0]?.blockNumber as string)).toBe(snapshotBlock);
    const backfill = b.logs.events("backfill_started")[0];
    expect(backfill?.fromSnapshot).toBe(true);
    expect(BigInt(backfill?.fromBlock as string)).toBe(snapshotBlock + 1n);
    const at = await head();
    expect(view(b.k.book)).toEqual(view(await canonicalBook(at)));
    expect(b.k.book.positions.size).toBe(6);
    expect(b.k.risk.index.size).toBe(b.k.book.positions.size);
    await stop(b.k);
  }, 90_000);

  it("ignores a snapshot whose block the chain reorganised away, and backfills from the deployment block", async () => {
    const path = snapshotPath(stateDir, net.ex.d.chainId, net.ex.d.engine);
    const saved = await readSnapshotFile(
      path,
      { chainId: net.ex.d.chainId, exchange: net.ex.d.engine },
      perpEngineSnapshots,
    );
    if (!saved.ok) throw new Error(`no snapshot: ${saved.detail}`);
    // down to just under the snapshot's block, and a different branch after it
    await rpc("anvil_rollback", [Number((await head()) - saved.snapshot.blockNumber) + 1]);
    net.ex.forgetNonces();
    await openPositions(net.ex, [9].map(long));
    await mine(3);

    const c = await start();
    const ignored = c.logs.events("snapshot_ignored");
    expect(ignored).toHaveLength(1);
    expect(ignored[0]?.reason).toBe("reorged");
    expect(c.logs.events("snapshot_loaded")).toHaveLength(0);
    expect(c.logs.events("backfill_started")[0]?.fromSnapshot).toBe(false);
    expect(view(c.k.book)).toEqual(view(await canonicalBook(await head())));
    await stop(c.k);
  }, 90_000);

  it("ignores a damaged snapshot, says why in one line, and never trusts part of it", async () => {
    const path = snapshotPath(stateDir, net.ex.d.chainId, net.ex.d.engine);
    const content = readFileSync(path, "utf8");
    const lines = content.split("\n");
    // one position line altered: the file still parses as JSON, only the checksum can tell
    const i = lines.findIndex((l) => l.startsWith("["));
    expect(i).toBeGreaterThan(0);
    lines[i] = (lines[i] as string).replace(/,"(\d)/, (_m, d) => `,"${(Number(d) + 1) % 10}`);
    writeFileSync(path, lines.join("\n"));
    await rpc("anvil_mine", ["0x46"]); // the rollback left no block final after the positions: 70 more

    const d = await start();
    const ignored = d.logs.events("snapshot_ignored");
    expect(ignored).toHaveLength(1);
    expect(ignored[0]?.reason).toBe("corrupt");
    expect(String(ignored[0]?.detail)).toMatch(/checksum/);
    expect(view(d.k.book)).toEqual(view(await canonicalBook(await head())));
    await stop(d.k);
    // a good one replaced it
    expect(d.logs.events("snapshot_written").length).toBeGreaterThan(0);
    const reread = await readSnapshotFile(
      path,
      { chainId: net.ex.d.chainId, exchange: net.ex.d.engine },
      perpEngineSnapshots,
    );
    expect(reread.ok).toBe(true);
  }, 90_000);

  it("where the RPC does not serve the finalized tag, takes the snapshot reorgDepth under the head", async () => {
    let refused = 0;
    const proxy = await startRpcProxy(net.anvil.rpcUrl, async (body) => {
      const refusal = await refusingFinalized(net.anvil.rpcUrl, body);
      if (refusal) refused++;
      return refusal;
    });
    try {
      const dir = testStateDir();
      const started = await startTestKeeper(net, { ...CONFIG, stateDir: dir, reorgDepth: 4 }, undefined, {
        rpcUrl: proxy.url,
      });
      keeper = started.keeper;
      const k = keeper;
      const top = await head();
      await until("the keeper at the head", () => k.watcher.latestTick?.blockNumber === top, 20_000);
      await stop(k);
      expect(refused).toBeGreaterThan(0);
      const written = started.logs.events("snapshot_written").at(-1);
      expect(BigInt(written?.blockNumber as string)).toBe(top - 4n);
    } finally {
      proxy.close();
    }
  }, 60_000);
});

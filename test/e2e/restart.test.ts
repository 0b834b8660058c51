/**
 * The keeper as a real process, killed and restarted: its write-ahead journal (keeper.stateDir) must carry every
 * transaction it sent across the restart, so that each position is liquidated exactly once, nothing reverts and
 * no nonce is left empty.
 *
 * 1. SIGKILL in the middle of a burst of single liquidations on 1-second blocks, forced between a journal write and
 *    its broadcast (a proxy holds the broadcasts after the third), then a second process on the same journal
 *    finishes the job: what never reached the node is given back and sent once.
 * 2. SIGTERM while every liquidation is still pending (mining paused): a clean stop that leaves them journaled;
 *    the next process tracks them again instead of sending them twice, and sees them confirmed once mined.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Address, type Hex, parseUnits } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterEach, describe, expect, it } from "vitest";
import { mockV3AggregatorAbi } from "../../abi/MockV3Aggregator.ts";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { devnetConfig } from "../../src/devnet/config.ts";
import { type DevExchange, ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions, type PositionSpec } from "../../src/devnet/positions.ts";
import { isTerminal } from "../../src/executor/attempt.ts";
import { parseJournal, replay } from "../../src/executor/journal.ts";
import { journalPath } from "../../src/executor/signers.ts";
import { type DevnetFixture, startDevnet } from "../helpers/devnet.ts";
import { type KeeperProcess, spawnKeeper } from "../helpers/process.ts";
import { type RpcProxy, startRpcProxy } from "../helpers/rpcProxy.ts";
import { until } from "../helpers/wait.ts";

const KEEPER_KEY = ANVIL_KEYS[1];
const KEEPER = privateKeyToAccount(KEEPER_KEY).address;
const SHUTDOWN_GRACE_MS = 10_000;

let net: DevnetFixture | undefined;
let procs: KeeperProcess[] = [];
let proxies: RpcProxy[] = [];
let dirs: string[] = [];

/** Events that no run here has a reason to log: each would mean a nonce or a position was mishandled. */
const NEVER = [
  "liquidation_failed",
  "liquidation_reverted",
  "liquidation_superseded",
  "liquidation_lost_race",
  "nonce_gap_filled",
  "executor_error",
];
const unexpected = (p: KeeperProcess) => p.lines.filter((l) => NEVER.includes(String(l.event)));

afterEach(async () => {
  // every keeper process first (also on failure), then the node, then the temp dirs
  await Promise.allSettled(procs.map((p) => p.kill()));
  procs = [];
  for (const proxy of proxies) proxy.close();
  proxies = [];
  try {
    await net?.stop();
  } finally {
    net = undefined;
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    dirs = [];
  }
}, 20_000);

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** Writes the keeper's config file for this devnet (state in its own temp dir) and returns its path. */
function writeConfig(fixture: DevnetFixture, keeper: Record<string, unknown>): { path: string; stateDir: string } {
  const dir = tempDir("perp-keeper-restart-");
  const stateDir = join(dir, "state");
  const config = devnetConfig(fixture.ex.d, fixture.anvil.rpcUrl, { pollIntervalMs: 100, stateDir, ...keeper });
  const path = join(dir, "keeper.json");
  writeFileSync(path, JSON.stringify(config, null, 2));
  return { path, stateDir };
}

function startKeeperProcess(fixture: DevnetFixture, configPath: string, rpcUrl = fixture.anvil.rpcUrl): KeeperProcess {
  const p = spawnKeeper(configPath, {
    KEEPER_PRIVATE_KEY: KEEPER_KEY,
    RPC_URL: rpcUrl,
    LOG_FORMAT: "json",
    LOG_LEVEL: "info",
  });
  procs.push(p);
  return p;
}

/** 20x ETH longs of traders 2..count+1 (account 0 owns the exchange, 1 is the keeper), 1,000 margin each. */
function ethLongs(count: number): PositionSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    trader: i + 2,
    marketId: ETH,
    side: "long" as const,
    margin: "1000",
    leverage: 20,
  }));
}

/** The signer's journal as the keeper left it on disk (a torn last line dropped) and its unresolved attempts. */
function readJournal(ex: DevExchange, stateDir: string) {
  const path = journalPath(stateDir, ex.d.chainId, KEEPER);
  const records = parseJournal(readFileSync(path, "utf8"), path);
  const unresolved = [...replay(records, path).values()].filter((a) => !isTerminal(a.status));
  return { records, unresolved };
}

async function rpc(ex: DevExchange, method: string, params: unknown[] = []): Promise<unknown> {
  return ex.publicClient.request({ method: method as never, params: params as never });
}

async function nonces(ex: DevExchange): Promise<{ latest: number; pending: number }> {
  const [latest, pending] = await Promise.all([
    ex.publicClient.getTransactionCount({ address: KEEPER, blockTag: "latest" }),
    ex.publicClient.getTransactionCount({ address: KEEPER, blockTag: "pending" }),
  ]);
  return { latest, pending };
}

/** PositionLiquidated events since deployment, counted per trader (lower case) on `marketId`. */
async function liquidationCounts(ex: DevExchange, marketId: number): Promise<Map<string, number>> {
  const events = await ex.publicClient.getContractEvents({
    address: ex.d.engine,
    abi: perpEngineAbi,
    eventName: "PositionLiquidated",
    fromBlock: ex.d.deployBlock,
    toBlock: "latest",
  });
  const counts = new Map<string, number>();
  for (const e of events) {
    expect(e.args.keeper?.toLowerCase()).toBe(KEEPER.toLowerCase());
    if (e.args.marketId !== BigInt(marketId)) continue;
    const trader = (e.args.trader as Address).toLowerCase();
    counts.set(trader, (counts.get(trader) ?? 0) + 1);
  }
  return counts;
}

/** Every mined transaction of the keeper in blocks [from, latest], with its receipt's status. */
async function keeperTransactions(ex: DevExchange, from: bigint) {
  const head = await ex.publicClient.getBlockNumber({ cacheTime: 0 });
  const txs: { hash: Hex; nonce: number; to: Address | null; status: string; block: bigint }[] = [];
  for (let b = from; b <= head; b++) {
    const block = await ex.publicClient.getBlock({ blockNumber: b, includeTransactions: true });
    for (const tx of block.transactions) {
      if (tx.from.toLowerCase() !== KEEPER.toLowerCase()) continue;
      const receipt = await ex.publicClient.getTransactionReceipt({ hash: tx.hash });
      txs.push({ hash: tx.hash, nonce: tx.nonce, to: tx.to, status: receipt.status, block: b });
    }
  }
  return txs;
}

async function openCount(ex: DevExchange, addresses: readonly Address[], marketId: number): Promise<number> {
  const positions = await Promise.all(addresses.map((a) => ex.position(a, marketId)));
  return positions.filter((p) => p.size !== 0n).length;
}

const traderOf = (l: Record<string, unknown>) => String(l.trader).toLowerCase();
/** Lines logged at error or fatal (labels, as the keeper's logger writes them; numbers, as pino's default). */
const errorLines = (p: KeeperProcess) =>
  p.lines.filter((l) => l.level === "error" || l.level === "fatal" || (typeof l.level === "number" && l.level >= 50));

describe("keeper process restarts", () => {
  it("SIGKILLed mid-burst, a restarted keeper finishes the burst: each position once, no revert, no nonce gap", async () => {
    const COUNT = 50;
    net = await startDevnet({ accounts: COUNT + 2 });
    const { ex } = net;
    const specs = ethLongs(COUNT);
    await openPositions(ex, specs);
    const traders = specs.map((s) => ex.trader(s.trader).account.address);
    expect(await openCount(ex, traders, ETH)).toBe(COUNT);

    // blocks every second from here on, so that the burst spans blocks
    await rpc(ex, "evm_setAutomine", [false]);
    await rpc(ex, "evm_setIntervalMining", [1]);

    // single calls, simulated one at a time, at most 8 unresolved at once: the burst goes out over several blocks.
    // The first keeper reaches the node through a proxy that lets three broadcasts through and then holds every
    // one (never forwarded, never answered): the kill lands after their journal write and before their broadcast
    let broadcasts = 0;
    let held = 0;
    let holding = true;
    const proxy = await startRpcProxy(net.anvil.rpcUrl, (body) => {
      if (!holding || !body.includes("eth_sendRawTransaction")) return undefined;
      if (++broadcasts <= 3) return undefined;
      held++;
      return new Promise<undefined>(() => {});
    });
    proxies.push(proxy);
    const { path, stateDir } = writeConfig(net, {
      batching: false,
      maxConcurrentLiquidations: 1,
      maxPendingPerSigner: 8,
    });
    const first = startKeeperProcess(net, path, proxy.url);
    await first.waitFor("keeper_started and backfill_completed", (p) => p.events("backfill_completed").length > 0);
    expect(first.events("keeper_started")).toHaveLength(1);
    expect(first.events("liquidation_sent")).toHaveLength(0);

    // -3.6%: a 20x long keeps 1.6% of its notional, under the 3% maintenance margin
    const moveBlock = await ex.publicClient.getBlockNumber({ cacheTime: 0 });
    const t0 = Date.now();
    await ex.setPrice(ETH, parseUnits("2410", ORACLE_DECIMALS)); // mined by the next 1-second block
    const liquidatable = await Promise.all(traders.map((t) => ex.isLiquidatable(t, ETH)));
    expect(liquidatable.filter(Boolean)).toHaveLength(COUNT);

    await first.waitFor("a few liquidation_sent lines", (p) => p.events("liquidation_sent").length >= 3, 20_000);
    await until("a broadcast held after its journal write", async () => held > 0, 20_000);
    await first.kill();
    const killedAt = Date.now();
    const exit1 = await first.exited;
    expect(exit1.signal).toBe("SIGKILL");
    const sentByFirst = first.events("liquidation_sent");
    // killed mid-burst: some sent, not all
    expect(sentByFirst.length).toBeGreaterThanOrEqual(3);
    expect(sentByFirst.length).toBeLessThan(COUNT);
    expect(first.events("keeper_stopped")).toHaveLength(0);
    // write-ahead: every transaction #1 reported sent was in its journal (on disk) before it was broadcast
    const journaledHashes = new Set(
      readJournal(ex, stateDir)
        .records.filter((r) => r.t === "tx")
        .map((r) => (r as { hash: Hex }).hash),
    );
    expect(sentByFirst.filter((l) => !journaledHashes.has(l.txHash as Hex))).toEqual([]);
    // killed between the journal write and the broadcast: journaled transactions the node never received
    const neverBroadcast: Hex[] = [];
    for (const hash of journaledHashes) {
      if ((await rpc(ex, "eth_getTransactionByHash", [hash])) === null) neverBroadcast.push(hash);
    }
    expect(neverBroadcast.length).toBeGreaterThan(0);
    holding = false;

    const second = startKeeperProcess(net, path);
    await until(
      "every position closed and the keeper's lane empty",
      async () => {
        if (!second.running()) throw new Error(`restarted keeper exited: ${second.stderr()}`);
        const { latest, pending } = await nonces(ex);
        return latest === pending && (await openCount(ex, traders, ETH)) === 0;
      },
      35_000,
    );
    const doneAt = Date.now();
    // a few more heads: the restarted keeper settles what it tracked, and sends nothing more
    const sentWhenDone = second.events("liquidation_sent").length;
    const settledHead = await ex.publicClient.getBlockNumber({ cacheTime: 0 });
    await until(
      "two more blocks",
      async () => (await ex.publicClient.getBlockNumber({ cacheTime: 0 })) >= settledHead + 2n,
      10_000,
    );
    expect(second.events("liquidation_sent")).toHaveLength(sentWhenDone);

    // #1 was killed with transactions in flight (sent, not yet settled by it): #2 picked them up from its journal
    const settledByFirst = new Set(first.events("liquidation_confirmed").map(traderOf));
    const inFlight = sentByFirst.filter((l) => !settledByFirst.has(traderOf(l)));
    const recovered = second.events("executor_recovered");
    expect(recovered).toHaveLength(1);
    expect(recovered[0]?.signer).toBe(KEEPER);
    expect(Number(recovered[0]?.journaled)).toBeGreaterThanOrEqual(inFlight.length + neverBroadcast.length);
    // what never reached the node was given back (its nonces reused, no gap) and liquidated by #2, once
    expect(Number(recovered[0]?.abandoned)).toBe(neverBroadcast.length);
    expect(Number(recovered[0]?.settled) + Number(recovered[0]?.tracked)).toBeGreaterThanOrEqual(inFlight.length);
    expect(errorLines(first)).toEqual([]);
    expect(errorLines(second)).toEqual([]);
    expect(unexpected(first)).toEqual([]);
    expect(unexpected(second)).toEqual([]);
    expect(second.unparsed).toEqual([]);

    // nothing #1 got to the node was sent again by #2
    const firstTraders = new Set(sentByFirst.map(traderOf));
    const sentBySecond = second.events("liquidation_sent");
    expect(sentBySecond.filter((l) => firstTraders.has(traderOf(l)))).toEqual([]);
    expect(sentBySecond.length).toBeGreaterThan(0);

    // on chain: every position liquidated exactly once, by us
    const counts = await liquidationCounts(ex, ETH);
    for (const t of traders) expect(counts.get(t.toLowerCase()), `liquidations of ${t}`).toBe(1);
    expect(counts.size).toBe(COUNT);

    // every transaction of ours since the move succeeded; nonces 0..n-1, each used once, and nothing pending
    const txs = await keeperTransactions(ex, moveBlock);
    expect(txs.filter((t) => t.status !== "success")).toEqual([]);
    const used = new Set(txs.map((t) => t.nonce));
    expect(used.size).toBe(txs.length);
    const { latest, pending } = await nonces(ex);
    expect(latest).toBe(pending);
    expect(txs.length).toBe(latest); // the keeper's key sent nothing before the move
    expect([...used].sort((a, b) => a - b)).toEqual(Array.from({ length: latest }, (_, i) => i));
    expect(txs.filter((t) => t.to?.toLowerCase() === ex.d.engine.toLowerCase()).length).toBe(COUNT);

    second.signal("SIGTERM");
    const exit2 = await second.exited;
    expect(exit2.code).toBe(0);
    expect(readJournal(ex, stateDir).unresolved).toEqual([]);
    console.info(
      `restart: first keeper sent ${sentByFirst.length}/${COUNT} before SIGKILL (${killedAt - t0} ms after the move); ` +
        `recovered ${JSON.stringify(recovered[0])}; second sent ${sentBySecond.length}; all closed ${doneAt - killedAt} ms after the kill; ` +
        `${txs.length} keeper txs in blocks ${moveBlock}..${txs.at(-1)?.block}`,
    );
  }, 60_000);

  it("SIGTERMed with liquidations pending, it stops cleanly; the next process tracks them and sends none twice", async () => {
    const COUNT = 10;
    net = await startDevnet({ accounts: COUNT + 2 });
    const { ex } = net;
    const specs = ethLongs(COUNT);
    await openPositions(ex, specs);
    const traders = specs.map((s) => ex.trader(s.trader).account.address);

    const { path, stateDir } = writeConfig(net, { batching: false, shutdownGraceMs: SHUTDOWN_GRACE_MS });
    const first = startKeeperProcess(net, path);
    await first.waitFor("backfill_completed", (p) => p.events("backfill_completed").length > 0);

    // mining paused: the crash goes into one block mined by hand, the liquidations stay pending
    await rpc(ex, "evm_setAutomine", [false]);
    const oracle = ex.d.markets[ETH]?.oracle as Address;
    await ex.owner.writeContract({
      address: oracle,
      abi: mockV3AggregatorAbi,
      functionName: "updateAnswer",
      args: [parseUnits("2410", ORACLE_DECIMALS)],
      gas: 200_000n,
    });
    await rpc(ex, "evm_mine");
    const crashBlock = await ex.publicClient.getBlockNumber({ cacheTime: 0 });
    expect(await ex.price(ETH)).toBe(parseUnits("2410", ORACLE_DECIMALS));

    await first.waitFor("every liquidation sent", (p) => p.events("liquidation_sent").length === COUNT, 20_000);
    await until("the node to hold them all", async () => (await nonces(ex)).pending === COUNT, 5_000);
    expect(await nonces(ex)).toEqual({ latest: 0, pending: COUNT });
    expect(new Set(first.events("liquidation_sent").map(traderOf))).toEqual(
      new Set(traders.map((t) => t.toLowerCase())),
    );

    const termAt = Date.now();
    first.signal("SIGTERM");
    const exit1 = await first.exited;
    const stopMs = Date.now() - termAt;
    expect(exit1.code).toBe(0);
    expect(stopMs).toBeLessThan(SHUTDOWN_GRACE_MS + 3_000);
    const last = first.lines.at(-1);
    expect(last?.event, "the last line (see the report: the keeper's last log lines can be lost at exit)").toBe(
      "keeper_stopped",
    );
    expect(last?.pendingInJournal).toBe(COUNT);
    // and on disk: the ten, each with the hash the node holds
    const onDisk = readJournal(ex, stateDir).unresolved;
    expect(onDisk.map((a) => a.nonce).sort((a, b) => a - b)).toEqual(Array.from({ length: COUNT }, (_, i) => i));
    expect(new Set(onDisk.map((a) => a.txs.at(-1)?.hash))).toEqual(
      new Set(first.events("liquidation_sent").map((l) => l.txHash)),
    );
    expect(errorLines(first)).toEqual([]);
    expect(await nonces(ex)).toEqual({ latest: 0, pending: COUNT }); // still pending, none lost or added

    // restarted with mining still paused: the journal's ten are tracked, nothing is sent again
    const second = startKeeperProcess(net, path);
    await second.waitFor("executor_recovered", (p) => p.events("executor_recovered").length > 0);
    const recovered = second.events("executor_recovered")[0];
    expect(recovered).toMatchObject({ signer: KEEPER, journaled: COUNT, settled: 0, tracked: COUNT, abandoned: 0 });
    expect(recovered?.nextNonce).toBe(COUNT);
    // its first head finds the ten below maintenance again...
    await second.waitFor("the positions flagged again", (p) => p.events("position_flagged").length === COUNT);
    // ...and a second's worth of polls later has sent nothing for them
    await new Promise((r) => setTimeout(r, 1_500));
    expect(second.events("liquidation_sent")).toEqual([]);
    expect(second.events("liquidation_replaced")).toEqual([]);
    expect(await nonces(ex)).toEqual({ latest: 0, pending: COUNT });
    expect(await ex.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(crashBlock);

    await rpc(ex, "evm_mine");
    await second.waitFor(
      "every liquidation confirmed",
      (p) => p.events("liquidation_confirmed").length >= COUNT,
      15_000,
    );
    const confirmed = second.events("liquidation_confirmed");
    expect(confirmed).toHaveLength(COUNT);
    expect(new Set(confirmed.map(traderOf))).toEqual(new Set(traders.map((t) => t.toLowerCase())));
    expect(second.events("liquidation_sent")).toEqual([]);

    const counts = await liquidationCounts(ex, ETH);
    for (const t of traders) expect(counts.get(t.toLowerCase()), `liquidations of ${t}`).toBe(1);
    expect(counts.size).toBe(COUNT);
    expect(await openCount(ex, traders, ETH)).toBe(0);
    const txs = await keeperTransactions(ex, crashBlock);
    expect(txs).toHaveLength(COUNT);
    expect(txs.filter((t) => t.status !== "success")).toEqual([]);
    expect(await nonces(ex)).toEqual({ latest: COUNT, pending: COUNT });

    second.signal("SIGTERM");
    const exit2 = await second.exited;
    expect(exit2.code).toBe(0);
    expect(readJournal(ex, stateDir).unresolved).toEqual([]);
    expect(errorLines(second)).toEqual([]);
    expect(unexpected(first)).toEqual([]);
    expect(unexpected(second)).toEqual([]);
    console.info(`restart: SIGTERM with ${COUNT} pending took ${stopMs} ms to exit`);
  }, 60_000);

  it("a second keeper on the same signer and chain refuses to start (exit 2, naming the holder); after the first stops it starts", async () => {
    net = await startDevnet({ accounts: 6 });
    const { path, stateDir } = writeConfig(net, {});
    const first = startKeeperProcess(net, path);
    await first.waitFor("the first keeper started", (p) => p.events("keeper_started").length > 0, 30_000);
    const second = startKeeperProcess(net, path);
    const { code } = await second.exited;
    expect(code).toBe(2);
    const output = `${second.stderr()}\n${JSON.stringify(second.lines)}`;
    expect(output).toMatch(/another keeper \(pid \d+, started [^)]+\) holds this signer on this chain/);
    expect(second.events("keeper_started")).toHaveLength(0);
    expect(first.running()).toBe(true);
    // the first stops cleanly and releases its lock: a keeper starts again on the same state directory
    first.signal("SIGTERM");
    expect((await first.exited).code).toBe(0);
    expect(readdirSync(join(stateDir, "journal")).filter((f) => f.endsWith(".lock"))).toEqual([]);
    const third = startKeeperProcess(net, path);
    await third.waitFor("the third keeper started", (p) => p.events("keeper_started").length > 0, 30_000);
  }, 90_000);
});

/**
 * The executor's transaction lifecycle on Anvil with mining paused and blocks mined by hand: bursts broadcast
 * before any block, stuck transactions replaced, dropped ones re-sent, competitors' wins cancelled or logged as lost
 * races, external nonce use and reorganisations resynced, several signers, an unfunded one left out. Every test
 * ends with the keeper's nonce lane whole: its latest and pending nonces equal.
 */
import { type Address, createWalletClient, type Hex, http, parseEther, parseGwei, parseUnits } from "viem";
import { generatePrivateKey, mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { afterEach, describe, expect, it } from "vitest";
import { mockV3AggregatorAbi } from "../../abi/MockV3Aggregator.ts";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import type { RunningKeeper } from "../../src/app.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { ANVIL_MNEMONIC, ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { BTC, ETH, openPositions, type PositionSpec } from "../../src/devnet/positions.ts";
import { SignerError } from "../../src/executor/executor.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture | undefined;
let keeper: RunningKeeper | undefined;

afterEach(async () => {
  await net?.ex.publicClient.request({ method: "evm_setAutomine" as never, params: [true] as never }).catch(() => {});
  await shutdown(keeper, net);
  keeper = undefined;
  net = undefined;
});

const rpc = (method: string, params: unknown[] = []) =>
  (net as DevnetFixture).ex.publicClient.request({ method: method as never, params: params as never });
const mine = () => rpc("evm_mine");

/** Sends an oracle update without waiting for it (mining is paused), then mines it. */
async function crashEth(price = "2375", gas = 200_000n): Promise<bigint> {
  const ex = (net as DevnetFixture).ex;
  const oracle = ex.d.markets[ETH]?.oracle as Address;
  await ex.owner.writeContract({
    address: oracle,
    abi: mockV3AggregatorAbi,
    functionName: "updateAnswer",
    args: [parseUnits(price, ORACLE_DECIMALS)],
    gas,
  });
  await mine();
  return ex.publicClient.getBlockNumber({ cacheTime: 0 });
}

/** Positions opened, mining paused, a keeper started on them. */
async function setup(
  specs: readonly PositionSpec[],
  keeperConfig: Record<string, unknown>,
  keys?: readonly Hex[],
): Promise<{ k: RunningKeeper; logs: CapturedLog }> {
  net = await startDevnet({ accounts: Math.max(30, Math.max(...specs.map((s) => s.trader)) + 2) });
  await openPositions(net.ex, specs);
  await rpc("evm_setAutomine", [false]);
  const started = await startTestKeeper(net, { pollIntervalMs: 50, ...keeperConfig }, keys);
  keeper = started.keeper;
  const k = keeper;
  await until("backfill", () => k.book.positions.size === specs.length && k.watcher.latestTick !== undefined);
  return { k, logs: started.logs };
}

async function nonces(address: Address) {
  const client = (net as DevnetFixture).ex.publicClient;
  const [latest, pending] = await Promise.all([
    client.getTransactionCount({ address, blockTag: "latest" }),
    client.getTransactionCount({ address, blockTag: "pending" }),
  ]);
  return { latest, pending };
}

async function openOnChain(specs: readonly PositionSpec[]): Promise<number> {
  const ex = (net as DevnetFixture).ex;
  const sizes = await Promise.all(specs.map((s) => ex.position(ex.trader(s.trader).account.address, s.marketId)));
  return sizes.filter((p) => p.size !== 0n).length;
}

/** Positions named by the keeper's liquidation_sent lines (batches list their targets). */
function sentPositions(logs: CapturedLog): string[] {
  return logs
    .events("liquidation_sent")
    .flatMap((l) => (l.targets as { trader: string; marketId: number }[] | undefined) ?? [l])
    .map((t) => `${t.marketId}:${String(t.trader).toLowerCase()}`);
}

/** Another keeper (account 25) sends its own liquidation of the trader's ETH position, without waiting. */
async function competitorLiquidates(trader: Address, maxFeePerGas: bigint, maxPriorityFeePerGas: bigint) {
  const ex = (net as DevnetFixture).ex;
  const competitor = createWalletClient({
    chain: anvil,
    transport: http((net as DevnetFixture).anvil.rpcUrl),
    account: mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 25 }),
  });
  return competitor.writeContract({
    address: ex.d.engine,
    abi: perpEngineAbi,
    functionName: "liquidate",
    args: [trader, BigInt(ETH)],
    gas: 500_000n,
    maxFeePerGas,
    maxPriorityFeePerGas,
  });
}

const sentHashes = (logs: CapturedLog) => logs.events("liquidation_sent").map((l) => l.txHash as Hex);

describe("a crash's burst with mining paused", () => {
  for (const batching of [false, true]) {
    it(`broadcasts all 100 liquidations before any block is mined, and the next block holds them all (${
      batching ? "batched" : "single calls"
    })`, async () => {
      const specs = ethLongs(100);
      const { k, logs } = await setup(specs, { batching });
      const priceBlock = await crashEth();
      await until("every position sent", () => new Set(sentPositions(logs)).size === 100, 30_000);
      // nothing was mined meanwhile: all of it is waiting in the pool
      expect(await (net as DevnetFixture).ex.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(priceBlock);
      const { latest, pending } = await nonces(k.addresses[0] as Address);
      expect(pending - latest).toBe(logs.events("liquidation_sent").length);
      expect(sentPositions(logs)).toHaveLength(100); // never twice for one position
      if (batching) expect(logs.events("liquidation_sent").length).toBeLessThan(10);
      else expect(logs.events("liquidation_sent")).toHaveLength(100);

      await mine();
      expect(await openOnChain(specs)).toBe(0);
      const receipts = await Promise.all(
        sentHashes(logs).map((hash) => (net as DevnetFixture).ex.publicClient.getTransactionReceipt({ hash })),
      );
      expect(new Set(receipts.map((r) => r.blockNumber))).toEqual(new Set([priceBlock + 1n]));
      expect(receipts.every((r) => r.status === "success")).toBe(true);
      await until("all confirmed", () => k.executor.stats.confirmed === 100);
    }, 90_000);
  }
});

describe("never stuck, never a gap", () => {
  it("replaces liquidations stuck under a base-fee spike, and every later nonce lands too", async () => {
    const specs = ethLongs(3);
    const { k, logs } = await setup(specs, { batching: false, stuckBlocks: 1 });
    await crashEth();
    await until("three sent", () => logs.events("liquidation_sent").length === 3);
    const maxFee = BigInt(logs.events("liquidation_sent")[0]?.maxFeePerGas as string);
    // the next block's base fee jumps past what we offered: nothing of ours fits in it
    await rpc("anvil_setNextBlockBaseFeePerGas", [`0x${(maxFee * 4n).toString(16)}`]);
    await mine();
    expect(await openOnChain(specs)).toBe(3);
    // a node that keeps the stuck ones in its pool sees them replaced; Anvil evicts what the base fee outgrew, so
    // they are signed again at the same nonces: either way each nonce gets a transaction that outbids the spike
    const resends = () => [...logs.events("liquidation_replaced"), ...logs.events("liquidation_resent")];
    await until("three replaced", () => new Set(resends().map((l) => l.nonce)).size === 3, 15_000);
    const replaced = resends();
    for (const r of replaced) {
      expect(r.replaces).toBeDefined();
      expect(BigInt(r.maxFeePerGas as string)).toBeGreaterThan(maxFee * 4n);
      expect(BigInt(r.maxFeePerGas as string)).toBeGreaterThan(
        (BigInt(r.previousMaxFeePerGas as string) * 1125n) / 1000n,
      );
    }
    await mine();
    expect(await openOnChain(specs)).toBe(0);
    await until("all confirmed", () => k.executor.stats.confirmed === 3);
    const mined = logs.events("liquidation_confirmed").map((l) => l.txHash);
    expect(replaced.map((r) => r.txHash)).toEqual(expect.arrayContaining(mined as string[]));
    const { latest, pending } = await nonces(k.addresses[0] as Address);
    expect(latest).toBe(pending);
    expect(latest).toBe(3);
  }, 60_000);

  it("cancels a pending liquidation when the price recovers before it is mined", async () => {
    const specs = ethLongs(1);
    const { k, logs } = await setup(specs, { batching: false, stuckBlocks: 5 });
    await crashEth();
    await until("sent", () => logs.events("liquidation_sent").length === 1);
    // the next block holds the oracle's recovery but has no room for our liquidation (gas limit ~170,000)
    await rpc("evm_setBlockGasLimit", ["0x27100"]); // 160,000
    await crashEth("2600", 150_000n);
    expect(await openOnChain(specs)).toBe(1);
    await until("cancelling", () => logs.events("liquidation_cancelling").length === 1, 15_000);
    await mine(); // the 21,000-gas cancel fits
    await until("cancelled", () => logs.events("liquidation_cancelled").length === 1, 15_000);
    await rpc("evm_setBlockGasLimit", ["0x1c9c380"]);
    await mine();
    expect(await openOnChain(specs)).toBe(1); // the trader kept the position
    const { latest, pending } = await nonces(k.addresses[0] as Address);
    expect([latest, pending]).toEqual([1, 1]);
    expect(k.executor.stats.confirmed).toBe(0);
  }, 60_000);

  it("re-sends a liquidation the pool dropped, at its own nonce: no gap", async () => {
    const specs = ethLongs(2);
    const { k, logs } = await setup(specs, { batching: false, stuckBlocks: 1 });
    await crashEth();
    await until("two sent", () => logs.events("liquidation_sent").length === 2);
    const [first] = sentHashes(logs);
    await rpc("anvil_dropTransaction", [first]);
    await mine(); // holds only the second, which cannot be mined behind the gap
    await until("the drop noticed and the transaction re-sent", () => logs.events("liquidation_resent").length >= 1);
    expect(logs.events("liquidation_dropped").map((l) => l.txHash)).toContain(first);
    await mine();
    expect(await openOnChain(specs)).toBe(0);
    await until("both confirmed", () => k.executor.stats.confirmed === 2);
    const { latest, pending } = await nonces(k.addresses[0] as Address);
    expect([latest, pending]).toEqual([2, 2]);
  }, 60_000);

  it("cancels a pending liquidation when a competitor liquidated the position first", async () => {
    const specs = ethLongs(1);
    const { k, logs } = await setup(specs, { batching: false, stuckBlocks: 5 });
    await crashEth();
    await until("ours sent", () => logs.events("liquidation_sent").length === 1);
    const ours = logs.events("liquidation_sent")[0];
    const offered = BigInt(ours?.maxFeePerGas as string);
    // the next block is priced above our offer; the competitor pays for it
    await rpc("anvil_setNextBlockBaseFeePerGas", [`0x${(offered * 3n).toString(16)}`]);
    const ex = (net as DevnetFixture).ex;
    await competitorLiquidates(ex.trader(2).account.address, offered * 10n, parseGwei("2"));
    await mine();
    expect(await openOnChain(specs)).toBe(0);
    await until("ours cancelled", () => logs.events("liquidation_cancelling").length === 1, 15_000);
    await mine();
    await until("the cancel mined", () => logs.events("liquidation_cancelled").length === 1, 15_000);
    const { latest, pending } = await nonces(k.addresses[0] as Address);
    expect([latest, pending]).toEqual([1, 1]); // the nonce is used, by the cancel
    expect(k.executor.stats.confirmed).toBe(0);
    expect(logs.events("liquidation_reverted")).toHaveLength(0);
  }, 60_000);

  it("logs a lost race, not a failure, when a competitor is first in the same block", async () => {
    const specs = ethLongs(1);
    const { k, logs } = await setup(specs, { batching: false });
    await crashEth();
    await until("ours sent", () => logs.events("liquidation_sent").length === 1);
    const ex = (net as DevnetFixture).ex;
    const tip = BigInt(logs.events("liquidation_sent")[0]?.maxPriorityFeePerGas as string) * 5n;
    await competitorLiquidates(ex.trader(2).account.address, parseGwei("100"), tip);
    await mine();
    await until("the lost race", () => logs.events("liquidation_lost_race").length === 1, 15_000);
    expect(logs.events("liquidation_lost_race")[0]).toMatchObject({ level: 30, levelName: "info" });
    expect(logs.events("liquidation_reverted")).toHaveLength(0);
    expect(logs.lines.filter((l) => Number(l.level) >= 50)).toHaveLength(0);
    const { latest, pending } = await nonces(k.addresses[0] as Address);
    expect([latest, pending]).toEqual([1, 1]);
  }, 60_000);

  it("resyncs once when another process spent a nonce of its key, with no nonce-too-low loop", async () => {
    const specs = ethLongs(2);
    const { k, logs } = await setup(specs, { batching: false });
    // another process with the same key: a transfer, mined
    const other = createWalletClient({
      chain: anvil,
      transport: http((net as DevnetFixture).anvil.rpcUrl),
      account: privateKeyToAccount(ANVIL_KEYS[1]),
    });
    await other.sendTransaction({ to: other.account.address, value: 0n, nonce: 0, gas: 21_000n });
    await mine();
    await crashEth();
    await until("both sent", () => logs.events("liquidation_sent").length === 2, 15_000);
    await mine();
    expect(await openOnChain(specs)).toBe(0);
    expect(logs.events("nonce_resynced").length).toBeGreaterThanOrEqual(1);
    expect(logs.events("nonce_resynced").length).toBeLessThanOrEqual(2);
    expect(logs.events("liquidation_failed")).toHaveLength(0);
    await until("both confirmed", () => k.executor.stats.confirmed === 2);
    const { latest, pending } = await nonces(k.addresses[0] as Address);
    expect([latest, pending]).toEqual([3, 3]);
  }, 60_000);

  it("re-sends at a correct nonce a liquidation that a reorganisation removed", async () => {
    const specs = ethLongs(1);
    const { k, logs } = await setup(specs, { batching: false, stuckBlocks: 1 });
    await crashEth();
    await until("sent", () => logs.events("liquidation_sent").length === 1);
    await mine();
    await until("confirmed", () => k.executor.stats.confirmed === 1);
    expect(await openOnChain(specs)).toBe(0);
    // the block holding our liquidation is replaced by an empty one
    await rpc("anvil_reorg", [1, []]);
    expect(await openOnChain(specs)).toBe(1);
    expect((await nonces(k.addresses[0] as Address)).latest).toBe(0);
    await until("the reorg noticed", () => logs.events("liquidation_reorged").length === 1, 15_000);
    await until(
      "re-sent",
      () => logs.events("liquidation_resent").length + logs.events("liquidation_replaced").length >= 1,
      15_000,
    );
    await mine();
    await until("liquidated again", async () => (await openOnChain(specs)) === 0, 15_000);
    const { latest, pending } = await nonces(k.addresses[0] as Address);
    expect([latest, pending]).toEqual([1, 1]);
  }, 60_000);
});

describe("signers", () => {
  it("shares a burst between two keys, each with its own nonce lane", async () => {
    const specs = ethLongs(6);
    const { k, logs } = await setup(specs, { batching: false }, [ANVIL_KEYS[1], ANVIL_KEYS[9]]);
    await crashEth();
    await until("six sent", () => logs.events("liquidation_sent").length === 6);
    const bySigner = new Set(logs.events("liquidation_sent").map((l) => l.signer));
    expect(bySigner.size).toBe(2);
    await mine();
    expect(await openOnChain(specs)).toBe(0);
    for (const address of k.addresses) {
      const { latest, pending } = await nonces(address);
      expect(latest).toBe(pending);
      expect(latest).toBeGreaterThan(0);
    }
  }, 60_000);

  it("leaves out a key that cannot pay, says why, and the funded key does the work", async () => {
    const poorKey = generatePrivateKey();
    const poor = privateKeyToAccount(poorKey).address;
    const specs = ethLongs(2);
    const { k, logs } = await setup(specs, { batching: false }, [poorKey, ANVIL_KEYS[1]]);
    const excluded = logs.events("signer_excluded");
    expect(excluded.map((l) => l.signer)).toEqual([poor]);
    expect(logs.raw.join("")).not.toContain(poorKey.slice(2));
    await crashEth();
    await until("two sent", () => logs.events("liquidation_sent").length === 2);
    expect(new Set(logs.events("liquidation_sent").map((l) => l.signer))).toEqual(new Set([k.addresses[1]]));
    await mine();
    expect(await openOnChain(specs)).toBe(0);
  }, 60_000);

  it("refuses to start when no key can pay, naming the addresses and never the keys", async () => {
    net = await startDevnet({ accounts: 10 });
    const poorKey = generatePrivateKey();
    const failure = await startTestKeeper(net, {}, [poorKey]).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(SignerError);
    expect(String((failure as Error).message)).toContain(privateKeyToAccount(poorKey).address);
    expect(String((failure as Error).message)).not.toContain(poorKey.slice(2));
  }, 30_000);

  it("a signer that runs low while running is skipped with signer_low_balance, and the other takes over", async () => {
    const specs = ethLongs(4);
    const { k, logs } = await setup(specs, { batching: false, minSignerBalance: "1" }, [ANVIL_KEYS[1], ANVIL_KEYS[9]]);
    // drain the first signer to just above the floor: its next mined transaction takes it below
    const first = k.addresses[0] as Address;
    await rpc("anvil_setBalance", [first, `0x${(parseEther("1") + parseEther("0.0001")).toString(16)}`]);
    await crashEth();
    await until("four sent", () => logs.events("liquidation_sent").length === 4);
    await mine();
    await until("low balance noticed", () => logs.events("signer_low_balance").length === 1, 15_000);
    expect(logs.events("signer_low_balance")[0]?.signer).toBe(first);
    // a second crash finds new work: only the funded signer takes it
    const more = ethLongs(2, 10);
    await rpc("evm_setAutomine", [true]);
    await crashEth("2500"); // back up, so that the new longs open at 2500
    await openPositions((net as DevnetFixture).ex, more);
    await rpc("evm_setAutomine", [false]);
    const before = logs.events("liquidation_sent").length;
    await crashEth("2375");
    await until("two more sent", () => logs.events("liquidation_sent").length === before + 2, 15_000);
    const later = logs.events("liquidation_sent").slice(before);
    expect(later.every((l) => l.signer === k.addresses[1])).toBe(true);
    await mine();
    expect(await openOnChain(more)).toBe(0);
  }, 90_000);
});

describe("pricing", () => {
  it("prices gas against the reward: a liquidation that would not pay is skipped, not sent", async () => {
    // 1e8 collateral per ETH makes ~0.0002 ETH of gas cost far more than any reward
    const { k, logs } = await setup(ethLongs(2), { batching: false, gasTokenPrice: "100000000" });
    await crashEth();
    await until("both skipped", () => logs.events("liquidation_skipped").length >= 2);
    const skipped = logs.events("liquidation_skipped");
    expect(skipped.every((l) => l.reason === "unprofitable")).toBe(true);
    expect(skipped.every((l) => Number(l.expectedProfit) < 0)).toBe(true);
    expect(k.executor.stats.sent).toBe(0);
  }, 60_000);
});

describe("stopping", () => {
  it("stops within the grace period with transactions pending, sending nothing after it was asked to stop", async () => {
    const specs = ethLongs(20);
    const { k, logs } = await setup(specs, { batching: false, shutdownGraceMs: 3000 });
    await crashEth();
    await until("a first liquidation sent", () => logs.events("liquidation_sent").length >= 1);
    const started = Date.now();
    await k.stop("test stop");
    expect(Date.now() - started).toBeLessThan(3500);
    const events = logs.lines.map((l) => l.event);
    const stopped = logs.events("keeper_stopped")[0];
    expect(events.at(-1)).toBe("keeper_stopped");
    expect(stopped?.drained).toBe(true);
    // nothing is signed once stopped: the pool holds exactly what was logged as sent, and no more comes
    const sent = logs.events("liquidation_sent").length;
    await new Promise((r) => setTimeout(r, 500));
    expect(logs.events("liquidation_sent")).toHaveLength(sent);
    const pool = await nonces(k.addresses[0] as Address);
    expect(pool.pending - pool.latest).toBe(sent);
    expect(stopped?.pendingInJournal).toBe(logs.events("liquidation_sent").length);
    // what was broadcast stays valid: mined later, with no gap
    await mine();
    const { latest, pending } = await nonces(k.addresses[0] as Address);
    expect(latest).toBe(pending);
  }, 60_000);

  it("sends one liquidation per position while it is pending, however often it is found and changed, and after a cancel and a reorganisation", async () => {
    const specs = [...ethLongs(2), { trader: 4, marketId: BTC, side: "long" as const, margin: "500", leverage: 2 }];
    const { k, logs } = await setup(specs, { batching: false, stuckBlocks: 5 });
    /** The keeper finds every position again, five times, each one changed in the book. */
    const findAgain = async () => {
      const tick = k.watcher.latestTick;
      if (!tick) throw new Error("no tick");
      for (let i = 0; i < 5; i++) {
        k.keeper.handleTick(tick);
        for (const p of k.book.positions.values()) k.executor.onTargetChanged(p.key);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await crashEth();
    await until("both sent", () => logs.events("liquidation_sent").length === 2);
    await findAgain();
    expect(logs.events("liquidation_sent")).toHaveLength(2);
    // freed through a cancel: the price recovers in a block with no room for the liquidations, the cancels mine
    await rpc("evm_setBlockGasLimit", ["0x27100"]); // 160,000
    await crashEth("2600", 150_000n);
    await until("both cancelling", () => logs.events("liquidation_cancelling").length === 2, 15_000);
    await mine(); // the 21,000-gas cancels fit
    await until("both cancelled", () => logs.events("liquidation_cancelled").length === 2, 15_000);
    await rpc("evm_setBlockGasLimit", ["0x1c9c380"]);
    // planned again: a second attempt for each, pending
    await crashEth();
    await until("both sent again", () => logs.events("liquidation_sent").length === 4, 15_000);
    // a reorganisation reported within the window of the mined cancels (as a lagging head was taken for one): it
    // re-checks them, and must neither free the positions the second attempts hold nor let a third go out
    const skipped = logs.events("liquidation_skipped").length;
    k.executor.onReorg();
    await findAgain();
    k.executor.onHead(k.watcher.latestTick as NonNullable<typeof k.watcher.latestTick>);
    await findAgain();
    expect(logs.events("liquidation_sent")).toHaveLength(4);
    // not even planned again (on Anvil the simulation, run against the pending block, would refuse a third)
    expect(logs.events("liquidation_skipped")).toHaveLength(skipped);
    await mine();
    await until("both confirmed", () => k.executor.stats.confirmed === 2);
    expect(await openOnChain(specs)).toBe(1); // the 2x BTC long stays
  }, 60_000);
});

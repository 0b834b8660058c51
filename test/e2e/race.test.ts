/**
 * Races for contested liquidations (issue 18) on Anvil, mining paused and blocks mined by hand: a competitor's
 * pending liquidation of our target, seen in the pool (txpool_content), is outbid while that pays, so that ours is
 * mined first; when it bids more than the reward pays, ours is withdrawn (cancelled at its nonce) before it is mined
 * instead of being mined to skip. Without bidding (keeper.bidding.enabled false) the same competitor wins and our
 * liquidation is mined for nothing: the case the feature exists for.
 */
import { type Address, createWalletClient, type Hex, http, parseGwei, parseUnits } from "viem";
import { mnemonicToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { afterEach, describe, expect, it } from "vitest";
import { mockV3AggregatorAbi } from "../../abi/MockV3Aggregator.ts";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import type { RunningKeeper } from "../../src/app.ts";
import { ANVIL_MNEMONIC, ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { PERP_ENGINE_SINGLE_GAS_BOUND } from "../../src/protocol/perpEngine/protocol.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture | undefined;
let keeper: RunningKeeper | undefined;

afterEach(async () => {
  await shutdown(keeper, net);
  keeper = undefined;
  net = undefined;
});

const rpc = (method: string, params: unknown[] = []) =>
  (net as DevnetFixture).ex.publicClient.request({ method: method as never, params: params as never });
const mine = () => rpc("evm_mine");
const RIVAL = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 25 });

/**
 * 20x ETH longs (one by default), mining paused, a keeper on them (one transaction per position unless `batching`),
 * the ETH price crashed to `price`.
 */
async function crashed(
  bidding: Record<string, unknown>,
  o: { positions?: number; batching?: boolean; price?: string } = {},
): Promise<{ k: RunningKeeper; logs: CapturedLog }> {
  net = await startDevnet({ accounts: 30 });
  const specs = ethLongs(o.positions ?? 1).map((p, i) => ({ ...p, margin: String(200 + 100 * i) }));
  await openPositions(net.ex, specs);
  await rpc("evm_setAutomine", [false]);
  const started = await startTestKeeper(net, {
    pollIntervalMs: 50,
    batching: o.batching ?? false,
    // gas priced in collateral: what a liquidation earns after gas is known, so a bid can be weighed
    gasTokenPrice: "3000",
    bidding: { txpoolPollMs: 50, ...bidding },
  });
  keeper = started.keeper;
  const k = keeper;
  await until("backfill", () => k.book.positions.size === specs.length && k.watcher.latestTick !== undefined);
  const ex = net.ex;
  await ex.owner.writeContract({
    address: ex.d.markets[ETH]?.oracle as Address,
    abi: mockV3AggregatorAbi,
    functionName: "updateAnswer",
    args: [parseUnits(o.price ?? "2375", ORACLE_DECIMALS)],
    gas: 200_000n,
  });
  await mine();
  await until("ours sent", () => started.logs.events("liquidation_sent").length >= 1, 15_000);
  return { k, logs: started.logs };
}

/**
 * The competitor's liquidation of the trader's ETH position, at this tip, left in the pool; its max fee as wallets
 * set it, twice the base fee plus the tip (Anvil orders its pool by max fee, real builders by the tip paid: with a
 * wallet's max fee both orders agree).
 */
async function rivalLiquidates(tip: bigint): Promise<Hex> {
  const ex = (net as DevnetFixture).ex;
  const block = await ex.publicClient.getBlock({ blockTag: "latest" });
  const base = block.baseFeePerGas ?? 0n;
  const wallet = createWalletClient({
    chain: anvil,
    transport: http((net as DevnetFixture).anvil.rpcUrl),
    account: RIVAL,
  });
  return wallet.writeContract({
    address: ex.d.engine,
    abi: perpEngineAbi,
    functionName: "liquidate",
    args: [ex.trader(2).account.address, BigInt(ETH)],
    gas: 500_000n,
    maxFeePerGas: 2n * base + tip,
    maxPriorityFeePerGas: tip,
  });
}

/** Who liquidated the position (the keeper named by the engine's event), and our mined transactions to the engine. */
async function outcome(k: RunningKeeper): Promise<{ liquidator: string | undefined; ourEngineTxs: number }> {
  const ex = (net as DevnetFixture).ex;
  const events = await ex.publicClient.getContractEvents({
    address: ex.d.engine,
    abi: perpEngineAbi,
    eventName: "PositionLiquidated",
    fromBlock: 0n,
  });
  const head = await ex.publicClient.getBlockNumber({ cacheTime: 0 });
  let ours = 0;
  const me = (k.addresses[0] as Address).toLowerCase();
  for (let b = head; b > head - 4n && b > 0n; b--) {
    const block = await ex.publicClient.getBlock({ blockNumber: b, includeTransactions: true });
    for (const tx of block.transactions) {
      if (tx.from.toLowerCase() === me && tx.to?.toLowerCase() === ex.d.engine.toLowerCase()) ours++;
    }
  }
  const args = events[0]?.args as { keeper?: Address } | undefined;
  return { liquidator: args?.keeper?.toLowerCase(), ourEngineTxs: ours };
}

describe("races for a contested liquidation", () => {
  it("outbids a competitor's pending liquidation that pays more than ours, and wins the position", async () => {
    const { k, logs } = await crashed({});
    const ours = logs.events("liquidation_sent")[0];
    const rivalTip = BigInt(ours?.maxPriorityFeePerGas as string) * 3n;
    const rivalTx = await rivalLiquidates(rivalTip);
    await until("outbid", () => logs.events("liquidation_outbid").length === 1, 15_000);
    const outbid = logs.events("liquidation_outbid")[0];
    expect(outbid?.competitor).toBe(RIVAL.address.toLowerCase());
    expect(outbid?.competitorTx).toBe(rivalTx);
    expect(BigInt(outbid?.maxPriorityFeePerGas as string)).toBeGreaterThan(rivalTip);
    await mine();
    await until("ours confirmed", () => k.executor.stats.confirmed === 1, 15_000);
    const o = await outcome(k);
    expect(o.liquidator).toBe((k.addresses[0] as Address).toLowerCase());
    expect(k.executor.races.byCompetitor.get(RIVAL.address.toLowerCase())).toEqual({ won: 1, lost: 0 });
    expect(k.executor.stats.lostRaceGasWei).toBe(0n);
    // never a loss: the reward covers the gas at the tip paid
    const net_ = k.executor.netProfit();
    expect(net_).toBeDefined();
    expect(net_ as bigint).toBeGreaterThan(0n);
  }, 60_000);

  it("withdraws (cancels before it is mined) when the competitor bids more than the reward pays", async () => {
    const { k, logs } = await crashed({});
    // a tip no keeper reward of this position pays: 2000 gwei x ~100k gas is 0.2 ETH, 600 collateral at 3000
    await rivalLiquidates(parseGwei("2000"));
    await until("withdrawn", () => logs.events("liquidation_withdrawn").length === 1, 15_000);
    expect(logs.events("liquidation_withdrawn")[0]).toMatchObject({ reason: "unprofitable" });
    expect(logs.events("liquidation_outbid")).toHaveLength(0);
    await mine();
    await until("the cancel mined", () => logs.events("liquidation_cancelled").length === 1, 15_000);
    const o = await outcome(k);
    expect(o.liquidator).toBe(RIVAL.address.toLowerCase());
    expect(o.ourEngineTxs).toBe(0); // nothing of ours mined to skip
    expect(k.executor.stats.lostRaceGasWei).toBe(21_000n * BigInt(await cancelGasPrice(logs)));
    expect(k.executor.stats.withdrawn).toBe(1);
  }, 60_000);

  it("sends the most valuable target first, as an unsimulated single (firstSingles), within its gas bound", async () => {
    // three positions, the last with the most margin (the largest reward); a crash deep enough for bad debt
    const { k, logs } = await crashed({ firstSingles: 1 }, { positions: 3, batching: true, price: "2200" });
    await until("all sent", () => logs.events("liquidation_sent").length === 2, 15_000);
    const [first, second] = logs.events("liquidation_sent");
    expect(first).toMatchObject({ kind: "single", trader: (net as DevnetFixture).ex.trader(4).account.address });
    expect(BigInt(first?.gas as string)).toBe(PERP_ENGINE_SINGLE_GAS_BOUND); // unsimulated: the bound is its limit
    expect(second).toMatchObject({ kind: "batch", positions: 2 });
    await mine();
    await until("all confirmed", () => k.executor.stats.confirmed === 3, 15_000);
    const confirmed = logs.events("liquidation_confirmed");
    expect(confirmed.some((l) => Number(l.badDebt) > 0)).toBe(true);
    const single = confirmed.find((l) => l.txHash === first?.txHash);
    expect(BigInt(single?.gasUsed as string)).toBeLessThan(PERP_ENGINE_SINGLE_GAS_BOUND / 2n);
    expect(logs.events("liquidation_reverted")).toHaveLength(0);
  }, 60_000);

  it("without bidding, the same competitor wins and our liquidation is mined for nothing", async () => {
    const { k, logs } = await crashed({ enabled: false });
    const ours = logs.events("liquidation_sent")[0];
    await rivalLiquidates(BigInt(ours?.maxPriorityFeePerGas as string) * 3n);
    // the keeper would have answered by now: a poll of the pool is 50 ms
    await until("the rival's transaction in the pool", async () => {
      const pool = (await rpc("txpool_content")) as { pending: Record<string, unknown> };
      return Object.keys(pool.pending).some((a) => a.toLowerCase() === RIVAL.address.toLowerCase());
    });
    await mine();
    await until("the lost race", () => logs.events("liquidation_lost_race").length === 1, 15_000);
    const o = await outcome(k);
    expect(o.liquidator).toBe(RIVAL.address.toLowerCase());
    expect(o.ourEngineTxs).toBe(1);
    expect(logs.events("liquidation_outbid")).toHaveLength(0);
    expect(logs.events("competitor_seen")).toHaveLength(0);
    expect(k.executor.stats.lostRaceGasWei).toBeGreaterThan(0n);
  }, 60_000);
});

/** The effective gas price our mined cancel paid (from its confirmation line). */
async function cancelGasPrice(logs: CapturedLog): Promise<string> {
  const line = logs.events("liquidation_cancelled")[0];
  return String(line?.effectiveGasPrice);
}

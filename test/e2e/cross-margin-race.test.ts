/**
 * Races on the pull-oracle exchange (issues 17 and 18), on Anvil with mining paused around each race: a competitor
 * that brings the same Hermes price and liquidates the same account, its transaction seen in the pool
 * (txpool_content), is outbid while the flag reward pays for it, so that the keeper's liquidation is mined first and
 * flags the account; when the competitor bids more than the reward pays, the keeper's liquidation is withdrawn (a
 * cancel at its nonce, before it is mined) and no transaction of the keeper reaches the exchange.
 */
import { type Address, encodeFunctionData, type Hex, parseAbi, parseGwei } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  atHead,
  type CrossMarginFixture,
  flagsSince,
  KEEPER_KEYS,
  keeperTxs,
  liquidatableAtPrices,
  marketOf,
  ROLE,
  sentFor,
  settledKeeper,
  show,
  startCrossMarginFixture,
  startCrossMarginTestKeeper,
  stopKeeper,
  type TestKeeper,
  walletOf,
  withMiningPaused,
  writeLogs,
} from "../helpers/crossMargin.ts";
import { until } from "../helpers/wait.ts";

const FEE = 10n ** 12n;
/** 100-ETH longs with 7000 of collateral: liquidatable about 1.4% under their entry (flag reward 0.03% of notional). */
const long100 = (name: string) => ({ name, collateral: "7000", positions: [{ market: "ETH", size: "100" }] });
const NEVER = ["executor_error", "liquidation_reverted", "liquidation_failed"];

let fx: CrossMarginFixture | undefined;
let run: TestKeeper | undefined;
const ready = () => fx as CrossMarginFixture;
const keeper = () => run as TestKeeper;

beforeAll(async () => {
  fx = await startCrossMarginFixture({ updateFeeWei: FEE });
  // gas priced in collateral, so that a bid can be weighed against the reward; the pool read every 50 ms
  run = await startCrossMarginTestKeeper(fx, {
    keys: [KEEPER_KEYS[0] as Hex],
    keeper: { gasTokenPrice: "3000", bidding: { txpoolPollMs: 50 } },
  });
}, 90_000);

afterAll(async () => {
  writeLogs("race", run?.logs);
  try {
    await stopKeeper(run?.keeper);
  } finally {
    await fx?.stop();
  }
});

/**
 * One account opened at the current ETH price, the keeper at the head; then, mining paused, ETH moved to `crash` on
 * Hermes, the keeper's liquidation sent, and the competitor's `liquidateMany([id], [update])` at `tip` (a wallet's
 * max fee: twice the base fee plus the tip) left in the pool; `answered` waited for before the block is mined.
 */
async function race(
  name: string,
  crash: string,
  tipOf: (ours: bigint) => bigint,
  answered: (k: TestKeeper) => boolean,
): Promise<{ id: bigint; block: bigint; rival: Hex; rivalTip: bigint }> {
  const f = ready();
  const k = keeper();
  const [opened] = await f.open([long100(name)]);
  const id = opened?.accountId as bigint;
  await atHead(f, k.keeper);
  expect(await liquidatableAtPrices(f, [id], { ETH: crash })).toEqual([id]);
  let block = 0n;
  let rival: Hex = "0x";
  let rivalTip = 0n;
  await withMiningPaused(f, async () => {
    const start = await f.head();
    const sentBefore = k.logs.events("liquidation_sent").length;
    const [moved] = f.move({ ETH: crash });
    await until("the keeper's liquidation sent", () => sentFor(k.keeper, [id]), 10_000);
    const ours = k.logs.events("liquidation_sent").slice(sentBefore)[0];
    rivalTip = tipOf(BigInt(ours?.maxPriorityFeePerGas as string));
    const base = (await f.client.getBlock({ blockTag: "latest" })).baseFeePerGas ?? 0n;
    rival = await walletOf(f, ROLE.competitor).sendTransaction({
      to: f.d.engine,
      data: encodeFunctionData({
        abi: parseAbi(["function liquidateMany(uint128[] accountIds, bytes[] priceUpdateData) payable"]),
        functionName: "liquidateMany",
        args: [[id], [marketOf(f, "ETH").update(crash, moved?.publishTime ?? 0n)]],
      }),
      value: FEE,
      gas: 1_000_000n,
      maxFeePerGas: 2n * base + rivalTip,
      maxPriorityFeePerGas: rivalTip,
    });
    await until("the keeper answers the competitor", () => answered(k), 15_000);
    await f.rpc("evm_mine");
    block = start + 1n;
  });
  await settledKeeper(k.keeper);
  return { id, block, rival, rivalTip };
}

describe("races on the cross-margin exchange", () => {
  it("outbids a competitor that brings the same price and liquidates the same account, and flags it first", async () => {
    const k = keeper();
    const outbidBefore = k.logs.events("liquidation_outbid").length;
    const { id, block, rival, rivalTip } = await race(
      "outbid",
      "2800",
      (ours) => ours * 3n,
      (t) => t.logs.events("liquidation_outbid").length > outbidBefore,
    );
    const [flag] = (await flagsSince(ready(), block, block)).filter((x) => x.accountId === id);
    const outbid = k.logs.events("liquidation_outbid").slice(outbidBefore)[0];
    const txs = await keeperTxs(ready(), k.signers, block, block);
    console.log(
      `[cross-margin race] outbid: competitor ${rival} at ${rivalTip} wei, ours replaced at ${outbid?.maxPriorityFeePerGas}; flag ${show(flag)}; ` +
        `keeper txs ${show(txs.map((t) => ({ fn: t.fn, status: t.status, value: t.value })))}`,
    );
    expect(outbid?.competitorTx).toBe(rival);
    expect(BigInt(outbid?.maxPriorityFeePerGas as string)).toBeGreaterThan(rivalTip);
    // ours was mined first and flagged the account, with the price it carried paid for
    expect(k.signers).toContain(flag?.from.toLowerCase() as Address);
    expect(txs.map((t) => t.status)).toEqual(["success"]);
    expect(txs[0]?.value).toBe(FEE);
    const competitor = walletOf(ready(), ROLE.competitor).account.address.toLowerCase();
    await until(
      "the race settled",
      () => (k.keeper.executor.races.byCompetitor.get(competitor)?.won ?? 0) === 1,
      10_000,
    );
    expect(k.keeper.executor.races.byCompetitor.get(competitor)).toEqual({ won: 1, lost: 0 });
    expect(k.keeper.executor.stats.lostRaceGasWei).toBe(0n);
    // never a loss: the flag reward covers the gas at the tip paid and the oracle's fee
    expect(k.keeper.executor.netProfit() as bigint).toBeGreaterThan(0n);
    for (const event of NEVER) expect.soft(k.logs.events(event)).toEqual([]);
  });

  it("withdraws when the competitor bids more than the flag reward pays: a cancel, nothing of ours at the exchange", async () => {
    const k = keeper();
    const withdrawnBefore = k.logs.events("liquidation_withdrawn").length;
    const outbidBefore = k.logs.events("liquidation_outbid").length;
    // 3000 gwei x ~170k gas is 0.5 ETH, 1500 collateral at 3000: no flag reward here pays that (about 80)
    const { id, block, rival } = await race(
      "withdraw",
      "2600",
      () => parseGwei("3000"),
      (t) => t.logs.events("liquidation_withdrawn").length > withdrawnBefore,
    );
    await until("the cancel mined", () => k.logs.events("liquidation_cancelled").length > 0, 15_000);
    const [flag] = (await flagsSince(ready(), block, block)).filter((x) => x.accountId === id);
    const txs = await keeperTxs(ready(), k.signers, block, block);
    console.log(
      `[cross-margin race] withdraw: competitor ${rival}; flag ${show(flag)}; withdrawn ${show(
        k.logs
          .events("liquidation_withdrawn")
          .slice(withdrawnBefore)
          .map((l) => ({ nonce: l.nonce, txHash: l.txHash })),
      )}; ` +
        `keeper txs ${show(txs.map((t) => ({ hash: t.hash, fn: t.fn, accounts: t.accounts, status: t.status })))}`,
    );
    expect(k.logs.events("liquidation_withdrawn").slice(withdrawnBefore)[0]).toMatchObject({ reason: "unprofitable" });
    expect(k.logs.events("liquidation_outbid").length).toBe(outbidBefore);
    expect(flag?.txHash).toBe(rival);
    // nothing of ours reached the exchange: the withdrawal's cancel (to ourselves) is all that was mined
    const cancel = k.logs.events("liquidation_withdrawn").slice(withdrawnBefore)[0]?.txHash;
    expect(txs.map((t) => ({ hash: t.hash, fn: t.fn }))).toEqual([{ hash: cancel, fn: "other" }]);
    expect(k.keeper.executor.stats.withdrawn).toBeGreaterThanOrEqual(1);
    for (const event of NEVER) expect.soft(k.logs.events(event)).toEqual([]);
  });
});

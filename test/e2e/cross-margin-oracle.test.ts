/**
 * The keeper on the Pyth-priced cross-margin exchange and its oracle (issue 17), on Anvil with 1-second blocks and the
 * stage's local Hermes. Layers of 10-ETH longs (and one account across ETH and BTC), each liquidatable at one step of
 * a falling ETH price and healthy at the step before:
 *
 * (a) ERC-7412 (exchange.priceUpdates "erc7412"): every flag is multicall(fulfillOracleQuery, liquidate), paying the
 *     oracle's fee for the bytes in the query, and succeeds.
 * (b) A competitor's newer update landing first, in the same block as the keeper's liquidation (ordered before it)
 *     or in a block before it, and a competitor that liquidates the accounts first: no error, the keeper's liquidation
 *     lands (the exchange takes the newer price) or is skipped as a lost race, and is never sent again.
 * (c) A stale Hermes, every endpoint down (closed) or frozen (paused): once the prices pass the exchange's
 *     maxPriceAge, a crash held on Hermes (no price published on chain) has nothing sent, `prices_stale` and
 *     `price_refused` are logged and prices_stale is posted to the keeper's webhook; then Hermes answers again and
 *     the accounts are flagged.
 * (d) A wrong fee: MockPyth's fee raised on chain (its storage) as a crash comes: the keeper follows it
 *     (`oracle_fee_changed`) and its liquidations succeed; raised while its liquidation waits in the pool: that one
 *     reverts, and it is the only one ever sent with too little value.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type Address, encodeFunctionData, type Hex, numberToHex, pad, parseAbi } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalHermes } from "../../src/devnet/hermes/server.ts";
import { mockPythAbi } from "../../src/devnet/hermes/updateData.ts";
import {
  atHead,
  type CrossMarginFixture,
  flagsSince,
  freshBlock,
  KEEPER_KEYS,
  keeperTxs,
  liquidatableAtPrices,
  marketOf,
  pythPriceOnChain,
  ROLE,
  sentFor,
  settledKeeper,
  show,
  startCrossMarginFixture,
  startCrossMarginTestKeeper,
  startMirrorHermes,
  stopKeeper,
  submitPriceUpdate,
  type TestKeeper,
  walletOf,
  withMiningPaused,
  writeLogs,
} from "../helpers/crossMargin.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

/** 10-ETH longs entered at 3000: liquidatable below about (30065 - collateral) / 9.897. */
const eth = (name: string, collateral: string) => ({ name, collateral, positions: [{ market: "ETH", size: "10" }] });
const ACCOUNTS = [
  eth("a1", "1400"), // below ~2896
  eth("a2", "1400"),
  {
    name: "aCross",
    collateral: "2000",
    positions: [
      { market: "ETH", size: "5" },
      { market: "BTC", size: "0.25" },
    ],
  },
  eth("b1", "3300"), // below ~2704
  eth("b2", "3300"),
  eth("before1", "5000"), // below ~2533
  eth("race1", "6500"), // below ~2381
  eth("race2", "6500"),
  eth("stale1", "8000"), // below ~2229
  eth("stale2", "8000"),
  eth("fee1", "9500"), // below ~2078
  eth("fee2", "9500"),
  eth("pool1", "11000"), // below ~1926
  eth("safe1", "14000"), // below ~1623
  { ...eth("safe2", "14000"), positions: [{ market: "ETH", size: "-10" }] },
] as const;
const STEPS = {
  a: { ETH: "2800", BTC: "56000" },
  b: { ETH: "2600" },
  before: { ETH: "2450" },
  race: { ETH: "2300" },
  stale: { ETH: "2150" },
  fee: { ETH: "2000" },
  pool: { ETH: "1850" },
} as const;
const LAYER: Record<keyof typeof STEPS, string[]> = {
  a: ["a1", "a2", "aCross"],
  b: ["b1", "b2"],
  before: ["before1"],
  race: ["race1", "race2"],
  stale: ["stale1", "stale2"],
  fee: ["fee1", "fee2"],
  pool: ["pool1"],
};
/** Seconds a Pyth price stays usable on the exchange: short, so that a frozen Hermes goes stale within the test. */
const MAX_PRICE_AGE = 6n;
const FEE = 10n ** 12n;

/** The keeper's webhook (keeper.notify, json preset): the bodies it posted. */
const alerts: Record<string, unknown>[] = [];
let webhook: Server | undefined;

async function startWebhook(): Promise<string> {
  webhook = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      alerts.push(JSON.parse(body) as Record<string, unknown>);
      res.writeHead(200).end();
    });
  });
  const server = webhook;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
}

let fx: CrossMarginFixture | undefined;
let run: TestKeeper | undefined;
let erc7412: TestKeeper | undefined;
let mirror: LocalHermes | undefined;
let erc7412Logs: CapturedLog | undefined;
const ready = () => fx as CrossMarginFixture;
const keeper = () => run as TestKeeper;
const idOf = (name: string) => ready().ids[ACCOUNTS.findIndex((a) => a.name === name)] as bigint;
const nameOf = (id: bigint) => ACCOUNTS[ready().ids.indexOf(id)]?.name ?? String(id);
const names = (ids: readonly bigint[]) => ids.map(nameOf).sort();
/** Prices so far: each step moves ETH on from the last. */
let prices: Record<string, string> = { ETH: "3000", BTC: "60000" };

/** The accounts not yet flagged that the exchange's rules find liquidatable at `step`'s prices. */
async function liquidatableAtStep(step: keyof typeof STEPS): Promise<string[]> {
  const f = ready();
  const open = [];
  for (const id of f.ids) {
    if ((await flagsSince(f, f.d.deployBlock)).some((x) => x.accountId === id)) continue;
    open.push(id);
  }
  return names(await liquidatableAtPrices(f, open, { ...prices, ...STEPS[step] }));
}

/** Every account of the layer flagged; returns the flags. */
async function flagged(layer: readonly string[], since: bigint, timeoutMs = 20_000) {
  const f = ready();
  await until(
    `${layer.join(", ")} flagged`,
    async () => {
      const flags = await flagsSince(f, since);
      return layer.every((n) => flags.some((x) => x.accountId === idOf(n)));
    },
    timeoutMs,
  );
  return (await flagsSince(f, since)).filter((x) => layer.includes(nameOf(x.accountId)));
}

const NEVER = ["executor_error", "liquidation_reverted", "liquidation_failed"];

beforeAll(async () => {
  fx = await startCrossMarginFixture({ accounts: ACCOUNTS, global: { maxPriceAge: MAX_PRICE_AGE }, updateFeeWei: FEE });
}, 60_000);

afterAll(async () => {
  writeLogs("oracle-erc7412", erc7412Logs);
  writeLogs("oracle-attach", run?.logs);
  try {
    await stopKeeper(erc7412?.keeper);
    await stopKeeper(run?.keeper);
    await mirror?.close().catch(() => {});
    webhook?.closeAllConnections();
    webhook?.close();
  } finally {
    await fx?.stop();
  }
});

describe("the cross-margin keeper and its pull oracle (Anvil, 1 s blocks, a local Hermes)", () => {
  it("(a) ERC-7412: each flag is multicall(fulfillOracleQuery, liquidate), paying the oracle's fee, and succeeds", async () => {
    const f = ready();
    erc7412 = await startCrossMarginTestKeeper(f, {
      keys: [KEEPER_KEYS[1] as Hex],
      exchange: { priceUpdates: "erc7412" },
    });
    const { keeper: k, logs, signers } = erc7412;
    erc7412Logs = logs;
    await atHead(f, k);
    expect(await liquidatableAtStep("a")).toEqual([...LAYER.a].sort());
    const moveBlock = await freshBlock(f);
    f.move(STEPS.a);
    prices = { ...prices, ...STEPS.a };
    const flags = await flagged(LAYER.a, moveBlock + 1n);
    await settledKeeper(k);
    const txs = await keeperTxs(f, signers, moveBlock + 1n);
    console.log(
      `[cross-margin oracle] erc7412: move at ${moveBlock}, flags ${show(flags.map((x) => ({ who: nameOf(x.accountId), block: x.blockNumber })))}, ` +
        `txs ${show(txs.map((t) => ({ block: t.blockNumber, fn: t.fn, inner: t.inner, accounts: t.accounts.map(nameOf), updates: t.updates.length, value: t.value, fee: t.feeRequired, status: t.status })))}`,
    );
    expect(names(flags.map((x) => x.accountId))).toEqual([...LAYER.a].sort());
    for (const flag of flags) {
      const tx = txs.find((t) => t.hash === flag.txHash);
      expect.soft(tx, `the flag of ${nameOf(flag.accountId)} by the keeper`).toBeDefined();
      if (!tx) continue;
      expect.soft({ who: nameOf(flag.accountId), fn: tx.fn, inner: tx.inner, status: tx.status }).toEqual({
        who: nameOf(flag.accountId),
        fn: "multicall",
        inner: ["fulfillOracleQuery", "liquidate"],
        status: "success",
      });
      // the query carries a price of every market the account holds, and the call pays exactly their fee
      expect.soft(tx.updates.length).toBe(nameOf(flag.accountId) === "aCross" ? 2 : 1);
      expect.soft(tx.value).toBe(tx.feeRequired);
      expect.soft(tx.value).toBe(FEE * BigInt(tx.updates.length));
      // in the first block after the price reached the keeper
      expect.soft(flag.blockNumber).toBe(moveBlock + 1n);
    }
    for (const tx of txs)
      expect.soft({ hash: tx.hash, status: tx.status }).toEqual({ hash: tx.hash, status: "success" });
    for (const event of NEVER) expect.soft(logs.events(event)).toEqual([]);
    await stopKeeper(k);
    erc7412 = undefined;
  });

  it("(b) a competitor's newer update landing first, in the same block or the one before: the keeper's liquidation still lands", async () => {
    const f = ready();
    mirror = await startMirrorHermes(f);
    // the attach keeper for the rest of the file, on two Hermes endpoints (the second is (c)'s)
    run = await startCrossMarginTestKeeper(f, {
      keys: [KEEPER_KEYS[0] as Hex],
      hermesUrls: [f.stage.hermes.url, mirror.url],
      exchange: { hermes: { staleAfterMs: 2500 } },
      keeper: { notify: { preset: "json", url: await startWebhook(), events: ["prices_stale"], retryBaseMs: 50 } },
    });
    const { keeper: k, logs, signers } = keeper();
    await atHead(f, k);

    // 1. around: the keeper's liquidation waits in the pool; a competitor's newer ETH update is ordered before it
    expect(await liquidatableAtStep("b")).toEqual([...LAYER.b].sort());
    let block = 0n;
    let competitor: Hex = "0x";
    let keeperPublish = 0n;
    await withMiningPaused(f, async () => {
      const start = await f.head();
      const [moved] = f.move(STEPS.b);
      keeperPublish = moved?.publishTime ?? 0n;
      prices = { ...prices, ...STEPS.b };
      await until("the keeper's liquidations sent", () => sentFor(k, LAYER.b.map(idOf)), 10_000);
      competitor = await submitPriceUpdate(f, ROLE.competitor, { ETH: "2590" }, keeperPublish + 1n);
      await f.rpc("evm_mine");
      block = start + 1n;
    });
    const flagsB = await flagged(LAYER.b, block);
    const blockB = await f.client.getBlock({ blockNumber: block, includeTransactions: true });
    const order = blockB.transactions.map((t) =>
      t.hash === competitor ? "competitor" : signers.includes(t.from.toLowerCase() as Address) ? "keeper" : "other",
    );
    const txsB = await keeperTxs(f, signers, block, block);
    const onChain = await pythPriceOnChain(f, "ETH");
    console.log(
      `[cross-margin oracle] around: block ${block} order ${show(order)}, flags ${show(flagsB.map((x) => ({ who: nameOf(x.accountId), block: x.blockNumber })))}, ` +
        `keeper's update published at ${keeperPublish}, on chain ${show(onChain)}, txs ${show(txsB.map((t) => ({ fn: t.fn, value: t.value, fee: t.feeRequired, status: t.status })))}`,
    );
    expect(order.indexOf("competitor")).toBe(0);
    expect(order).toContain("keeper");
    // the exchange took the competitor's newer price; the keeper's older bytes were passed over, its call succeeded
    expect(onChain.publishTime).toBe(keeperPublish + 1n);
    expect(onChain.price).toBe(259_000_000_000n);
    for (const flag of flagsB) expect.soft(flag.blockNumber).toBe(block);
    // one liquidation for them, never sent again
    expect(txsB.filter((t) => t.accounts.some((a) => LAYER.b.map(idOf).includes(a))).length).toBe(1);
    for (const flag of flagsB) expect.soft(signers).toContain(flag.from);
    for (const tx of txsB) {
      expect.soft(tx.status).toBe("success");
      expect.soft(tx.value).toBe(tx.feeRequired);
    }

    // 2. before: a competitor's update newer than anything Hermes has lands a block before the keeper sees the move
    expect(await liquidatableAtStep("before")).toEqual([...LAYER.before].sort());
    let beforeBlock = 0n;
    let competitorPublish = 0n;
    await withMiningPaused(f, async () => {
      const start = await f.head();
      // newer than anything Hermes has or will have in the next seconds (Hermes publishes at now, or a second after its
      // last publish time when that is not older)
      const hermesLast = f.stage.hermes.feed(marketOf(f, "ETH").feedId).publishTime;
      const now = BigInt(Math.floor(Date.now() / 1000));
      competitorPublish = (hermesLast > now ? hermesLast : now) + 3n;
      await submitPriceUpdate(f, ROLE.competitor, STEPS.before, competitorPublish);
      await f.rpc("evm_mine");
      const [moved] = f.move(STEPS.before);
      keeperPublish = moved?.publishTime ?? 0n;
      prices = { ...prices, ...STEPS.before };
      await until("the keeper's liquidation sent", () => sentFor(k, LAYER.before.map(idOf)), 10_000);
      await f.rpc("evm_mine");
      beforeBlock = start + 2n;
    });
    const flagsBefore = await flagged(LAYER.before, beforeBlock - 1n);
    const txsBefore = await keeperTxs(f, signers, beforeBlock, beforeBlock);
    const onChainBefore = await pythPriceOnChain(f, "ETH");
    console.log(
      `[cross-margin oracle] before: competitor published at ${competitorPublish}, keeper's update at ${keeperPublish}; flags ${show(flagsBefore.map((x) => ({ who: nameOf(x.accountId), block: x.blockNumber })))}, ` +
        `on chain ${show(onChainBefore)}, txs ${show(txsBefore.map((t) => ({ fn: t.fn, value: t.value, fee: t.feeRequired, status: t.status })))}`,
    );
    // the chain holds a price newer than Hermes' until Hermes publishes past it: the next steps wait for that
    await until(
      "Hermes past the competitor's publish time",
      () => f.stage.hermes.feed(marketOf(f, "ETH").feedId).publishTime > competitorPublish,
      10_000,
    );
    expect(keeperPublish).toBeLessThan(competitorPublish);
    expect(onChainBefore.publishTime).toBe(competitorPublish);
    expect(flagsBefore.map((x) => x.blockNumber)).toEqual([beforeBlock]);
    expect(signers).toContain(flagsBefore[0]?.from);
    for (const tx of txsBefore) {
      expect.soft(tx.status).toBe("success");
      expect.soft(tx.value).toBe(tx.feeRequired);
    }
    await settledKeeper(k);
    const since = await keeperTxs(f, signers, block);
    const addressing = (layer: readonly string[]) =>
      since.filter((t) => t.accounts.some((a) => layer.map(idOf).includes(a))).length;
    expect({ b: addressing(LAYER.b), before: addressing(LAYER.before) }).toEqual({ b: 1, before: 1 });
    for (const event of NEVER) expect.soft(logs.events(event)).toEqual([]);
  });

  it("(b) a competitor that liquidates first: the keeper's call is a lost race, never sent again, no error", async () => {
    const f = ready();
    const { keeper: k, logs, signers } = keeper();
    expect(await liquidatableAtStep("race")).toEqual([...LAYER.race].sort());
    const ids = LAYER.race.map(idOf);
    let block = 0n;
    let competitor: Hex = "0x";
    await withMiningPaused(f, async () => {
      const start = await f.head();
      const [moved] = f.move(STEPS.race);
      prices = { ...prices, ...STEPS.race };
      await until("the keeper's liquidations sent", () => sentFor(k, ids), 10_000);
      // the competitor brings a newer price and liquidates both accounts, ordered before the keeper
      const update = marketUpdate(f, "ETH", STEPS.race.ETH, (moved?.publishTime ?? 0n) + 1n);
      const wallet = walletOf(f, ROLE.competitor);
      competitor = await wallet.sendTransaction({
        to: f.d.engine,
        data: encodeFunctionData({
          abi: parseAbi(["function liquidateMany(uint128[] accountIds, bytes[] priceUpdateData) payable"]),
          functionName: "liquidateMany",
          args: [ids, [update]],
        }),
        value: FEE,
        gas: 1_500_000n,
        maxFeePerGas: 100_000_000_000n,
        maxPriorityFeePerGas: 10n ** 10n,
      });
      await f.rpc("evm_mine");
      block = start + 1n;
    });
    const flags = await flagged(LAYER.race, block);
    // the keeper follows a few heads: nothing more is sent for them
    const sentAfterRace = logs.events("liquidation_sent").length;
    const end = (await f.head()) + 4n;
    await until("four more heads ticked", () => (k.watcher.latestTick?.blockNumber ?? 0n) >= end, 15_000);
    await settledKeeper(k);
    const txs = await keeperTxs(f, signers, block);
    const lost = logs.events("liquidation_lost_race");
    console.log(
      `[cross-margin oracle] race: competitor ${competitor} in block ${block}; flags ${show(flags.map((x) => ({ who: nameOf(x.accountId), from: x.from, tx: x.txHash })))}; ` +
        `keeper txs ${show(txs.map((t) => ({ block: t.blockNumber, fn: t.fn, accounts: t.accounts.map(nameOf), status: t.status })))}; lost races ${show(lost.map((l) => l.how))}`,
    );
    // the competitor flagged both; the keeper's call landed after it without reverting, and was not sent again
    for (const flag of flags) expect.soft(flag.txHash).toBe(competitor);
    const ours = txs.filter((t) => t.accounts.some((a) => ids.includes(a)));
    expect(ours.length).toBe(1);
    expect(ours[0]?.status).toBe("success");
    expect(ours[0]?.blockNumber).toBe(block);
    expect(logs.events("liquidation_sent").length).toBe(sentAfterRace);
    expect(lost.length).toBeGreaterThanOrEqual(1);
    for (const event of NEVER) expect.soft(logs.events(event)).toEqual([]);
  });

  it("(c) a stale Hermes (one endpoint down, the other frozen): nothing sent, prices_stale and price_refused logged; then recovery", async () => {
    const f = ready();
    const { keeper: k, logs, signers } = keeper();
    expect(await liquidatableAtStep("stale")).toEqual([...LAYER.stale].sort());
    const refusedBefore = logs.events("price_refused").length;
    const sentBefore = logs.events("liquidation_sent").length;
    const frozenAt = await f.head();
    await mirror?.close();
    f.stage.hermes.pause();
    let resumed = false;
    try {
      await until("prices_stale", () => logs.events("prices_stale").length > 0, 15_000);
      // the prices pass the exchange's maxPriceAge: refused for every market
      await until(
        "price_refused for both markets",
        () =>
          new Set(
            logs
              .events("price_refused")
              .slice(refusedBefore)
              .map((l) => l.marketId),
          ).size === 2,
        (Number(MAX_PRICE_AGE) + 8) * 1000,
      );
      // a crash held by the frozen Hermes; nothing published on chain
      f.move(STEPS.stale);
      prices = { ...prices, ...STEPS.stale };
      const crashAt = await f.head();
      await until("three more heads ticked", () => (k.watcher.latestTick?.blockNumber ?? 0n) >= crashAt + 3n, 15_000);
      await settledKeeper(k);
      const txs = await keeperTxs(f, signers, frozenAt + 1n);
      console.log(
        `[cross-margin oracle] stale: frozen at ${frozenAt}, crash held at ${crashAt}; prices_stale ${show(logs.events("prices_stale"))}; ` +
          `price_refused ${show(
            logs
              .events("price_refused")
              .slice(refusedBefore)
              .map((l) => ({ m: l.marketId, reason: l.reason })),
          )}; txs ${txs.length}`,
      );
      expect(logs.events("liquidation_sent").length).toBe(sentBefore);
      expect(txs).toEqual([]);
      // and alerted: the webhook got prices_stale
      await until("the prices_stale alert", () => alerts.some((a) => a.event === "prices_stale"), 10_000);
      expect(await flagsSince(f, frozenAt + 1n)).toEqual([]);
      f.stage.hermes.resume();
      resumed = true;
      const flags = await flagged(LAYER.stale, frozenAt + 1n, 30_000);
      await until("prices_recovered", () => logs.events("prices_recovered").length > 0, 10_000);
      await until("price_recovered", () => logs.events("price_recovered").length > 0, 10_000);
      for (const flag of flags) expect.soft(signers).toContain(flag.from);
      const after = await keeperTxs(f, signers, frozenAt + 1n);
      for (const tx of after) {
        expect.soft(tx.status).toBe("success");
        expect.soft(tx.value).toBe(tx.feeRequired);
      }
      for (const event of NEVER) expect.soft(logs.events(event)).toEqual([]);
    } finally {
      if (!resumed) f.stage.hermes.resume();
    }
  });

  it("(d) the oracle's fee raised on chain as a crash comes: the keeper follows it, and its liquidations succeed", async () => {
    const f = ready();
    const { keeper: k, logs, signers } = keeper();
    expect(await liquidatableAtStep("fee")).toEqual([...LAYER.fee].sort());
    feeStorage = await feeSlot(f);
    const moveBlock = await freshBlock(f);
    await setFee(f, FEE * 5n);
    f.move(STEPS.fee);
    prices = { ...prices, ...STEPS.fee };
    const flags = await flagged(LAYER.fee, moveBlock + 1n);
    await until("oracle_fee_changed", () => logs.events("oracle_fee_changed").length > 0, 10_000);
    await settledKeeper(k);
    const txs = await keeperTxs(f, signers, moveBlock + 1n);
    const changed = logs.events("oracle_fee_changed");
    const short = txs.filter((t) => t.value < t.feeRequired);
    console.log(
      `[cross-margin oracle] fee: raised to ${FEE * 5n} at block ${moveBlock}; oracle_fee_changed ${show(changed)}; flags ${show(flags.map((x) => ({ who: nameOf(x.accountId), block: x.blockNumber })))}; ` +
        `txs ${show(txs.map((t) => ({ block: t.blockNumber, fn: t.fn, value: t.value, fee: t.feeRequired, status: t.status })))}; refused ${show(logs.events("liquidation_skipped").map((l) => l.reason))}`,
    );
    expect(changed[0]?.before).toBe(FEE.toString());
    expect(changed[0]?.after).toBe((FEE * 5n).toString());
    for (const flag of flags) expect.soft(signers).toContain(flag.from);
    // at most one went out with the fee read before the change (refused by the simulation, or sent unsimulated and
    // reverted); every other paid what the oracle asked, and the flags paid the new fee
    expect(short.length).toBeLessThanOrEqual(1);
    for (const tx of short) expect(tx.status).toBe("reverted");
    for (const tx of txs.filter((t) => !short.includes(t))) {
      expect.soft(tx.status).toBe("success");
      expect.soft(tx.value).toBe(tx.feeRequired);
    }
    expect(txs.some((t) => t.status === "success" && t.value === FEE * 5n)).toBe(true);
    expect(logs.events("liquidation_reverted").length).toBe(short.length);
    // what the old fee refused or reverted is not held for a cooldown: flagged within two blocks of the head that
    // read the new fee (liquidations_retried lifts the refusals)
    const readAt = BigInt(changed[0]?.blockNumber as string);
    for (const flag of flags) expect(flag.blockNumber).toBeLessThanOrEqual(readAt + 2n);
    for (const event of NEVER.filter((e) => e !== "liquidation_reverted")) expect.soft(logs.events(event)).toEqual([]);
  });

  it("(d) the fee raised while the keeper's liquidation waits in the pool: that one reverts, the next pays the new fee", async () => {
    const f = ready();
    const { keeper: k, logs, signers } = keeper();
    expect(await liquidatableAtStep("pool")).toEqual([...LAYER.pool].sort());
    const higher = FEE * 9n;
    const changedBefore = logs.events("oracle_fee_changed").length;
    const revertedBefore = logs.events("liquidation_reverted").length;
    let block = 0n;
    await withMiningPaused(f, async () => {
      const start = await f.head();
      f.move(STEPS.pool);
      prices = { ...prices, ...STEPS.pool };
      await until("the keeper's liquidation sent", () => sentFor(k, LAYER.pool.map(idOf)), 10_000);
      await setFee(f, higher);
      await f.rpc("evm_mine");
      block = start + 1n;
    });
    const flags = await flagged(LAYER.pool, block);
    await settledKeeper(k);
    const txs = await keeperTxs(f, signers, block);
    const short = txs.filter((t) => t.value < t.feeRequired);
    const changed = logs.events("oracle_fee_changed").slice(changedBefore);
    console.log(
      `[cross-margin oracle] fee in the pool: raised to ${higher} before block ${block}; oracle_fee_changed ${show(changed.map((l) => [l.before, l.after]))}; ` +
        `flags ${show(flags.map((x) => ({ who: nameOf(x.accountId), block: x.blockNumber })))}; txs ${show(txs.map((t) => ({ block: t.blockNumber, fn: t.fn, value: t.value, fee: t.feeRequired, status: t.status })))}`,
    );
    // the one in the pool when the fee rose reverted; it was the only one sent with too little
    expect(short.map((t) => ({ block: t.blockNumber, status: t.status }))).toEqual([{ block, status: "reverted" }]);
    expect(changed.map((l) => l.after)).toEqual([higher.toString()]);
    for (const flag of flags) expect(signers).toContain(flag.from);
    const rest = txs.filter((t) => !short.includes(t));
    expect(rest.length).toBeGreaterThanOrEqual(1);
    for (const tx of rest) {
      expect.soft(tx.status).toBe("success");
      expect.soft(tx.value).toBe(higher);
    }
    expect(logs.events("liquidation_reverted").length - revertedBefore).toBe(1);
    expect(logs.events("executor_error")).toEqual([]);
  });
});

let feeStorage: Hex | undefined;

/** Writes MockPyth's fee per update (the slot feeSlot found). */
async function setFee(f: CrossMarginFixture, wei: bigint): Promise<void> {
  if (!feeStorage) throw new Error("the fee's storage slot is not known yet");
  await f.rpc("anvil_setStorageAt", [f.d.pyth, feeStorage, pad(numberToHex(wei), { size: 32 })]);
}

/** A MockPyth update of one market at `price` published at `publishTime`. */
function marketUpdate(f: CrossMarginFixture, name: string, price: string, publishTime: bigint): Hex {
  return marketOf(f, name).update(price, publishTime);
}

/**
 * MockPyth's storage slot of singleUpdateFeeInWei: the slot among the first few that holds the deployment's fee, and
 * that getUpdateFee follows when it is written (checked, then put back).
 */
async function feeSlot(f: CrossMarginFixture): Promise<Hex> {
  const update = marketUpdate(f, "ETH", "3000", 1n);
  const feeOfOne = () =>
    f.client.readContract({ address: f.d.pyth, abi: mockPythAbi, functionName: "getUpdateFee", args: [[update]] });
  for (let i = 0; i < 8; i++) {
    const slot = pad(numberToHex(i), { size: 32 });
    const value = (await f.rpc("eth_getStorageAt", [f.d.pyth, slot, "latest"])) as Hex;
    if (BigInt(value) !== FEE) continue;
    await f.rpc("anvil_setStorageAt", [f.d.pyth, slot, pad(numberToHex(FEE + 7n), { size: 32 })]);
    const seen = await feeOfOne();
    await f.rpc("anvil_setStorageAt", [f.d.pyth, slot, value]);
    if (seen === FEE + 7n) return slot;
  }
  throw new Error("no storage slot of MockPyth holds its update fee");
}

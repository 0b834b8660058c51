/**
 * `npm run bench:exec -- --exchange perp-v2 [--json] [--traders N] [--modes keeper,baseline]`: the keeper on
 * Perpetual Protocol v2 ("Curie", its npm bytecode) against a naive baseline, each on a fresh Anvil (1-second blocks,
 * 30M block gas limit) with the same population and crash.
 *
 * Population: N traders (default 130) over vETH and vBTC, long in one market or both (cross margin), at leverages
 * that the crash (each index, then its pool, ETH 2000 -> 1800 and BTC 30000 -> 26500) puts wholly under maintenance
 * (margin ratio < 3.125%), partly (the contract takes at most half a call), or leaves healthy. The maker's liquidity
 * is deep (about $400M in vETH, $240M in vBTC) so that opening them barely moves the pools.
 *
 * - keeper: the keeper in process (startPerpV2Keeper), one signer (`--signers 2`: two), through its PerpV2Liquidator (batches, takeovers
 *   closed through the pool in the same transaction), talking to Anvil through a counting proxy.
 * - baseline: a naive bot with its own Vault account, also through a counting proxy: at every head it reads every
 *   trader's getAccountValue and getMarginRequirementForLiquidation, then liquidates each liquidatable one, market by
 *   market, with liquidate(trader, baseToken, 0) (as much as the contract allows), one transaction at a time (sent,
 *   then its receipt waited for), with a 3M gas limit.
 *
 * Figures, from the chain (every trader's health read at every block after the crash began):
 * - blocksP50 / blocksMax: from a block at which the chain says an account is liquidatable to the first block after
 *   which it is not (liquidated whole, or partly until healthy), over every such episode (an account the still
 *   falling price makes liquidatable again starts another);
 * - firstCallP50 / firstCallMax: from the same block to the first block with one of the bot's liquidations of the
 *   account (the issue's "to the block that liquidates it"; an account the crash keeps pushing needs more after it);
 * - physicalLimitBlocks: ceil(gas of every liquidation call the keeper needed / 30M), the fewest blocks that work fits
 *   in; the target is blocksMax <= physicalLimitBlocks + 1;
 * - leftLiquidatable: accounts liquidatable 10 blocks after the crash's last block;
 * - txReverted: mined transactions of the bot's signers that reverted; itemsOutOfGas: liquidation items the
 *   keeper's liquidator did not try, or that ran out of gas (LiquidationFailed with no revert data);
 * - rpcPerLiquidation: JSON-RPC calls at the proxy (batch elements one by one) from the crash to the end / calls;
 * - takeoverClosed: the liquidator holds no position at the end; closeSlippageBpsMax: the worst close's price against
 *   the mark before it.
 */
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import {
  type Address,
  createWalletClient,
  decodeFunctionData,
  type Hex,
  http,
  type PublicClient,
  parseEventLogs,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { perpV2LiquidatorAbi } from "../../abi/PerpV2Liquidator.ts";
import { httpPublicClient } from "../../src/chain/httpClient.ts";
import { parseConfig } from "../../src/config/load.ts";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../../src/devnet/anvil.ts";
import { accountBalanceAbi, clearingHouseAbi } from "../../src/devnet/perpV2/abis.ts";
import { perpV2KeeperConfig } from "../../src/devnet/perpV2/deploy.ts";
import { PerpV2Devnet } from "../../src/devnet/perpV2/scenario.ts";
import {
  long,
  openTraders,
  short,
  spec,
  stageLiquidator,
  type Trader,
  type TraderSpec,
} from "../../src/devnet/perpV2/stage.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { revertMeaning } from "../../src/protocol/perpV2/outcomes.ts";
import { type PerpV2RunningKeeper, startPerpV2Keeper } from "../../src/protocol/perpV2/run.ts";
import { CountingHttpProxy } from "./countingProxies.ts";
import { benchArgs, round, sleep, untilEvery } from "./tools.ts";

const BLOCK_GAS_LIMIT = 30_000_000n;
const FIRST_TRADER = 10;
const KEEPER_KEYS = [ANVIL_KEYS[8], ANVIL_KEYS[7]] as Hex[];
const BASELINE_KEY = ANVIL_KEYS[9] as Hex;
const until = untilEvery(250);
const progress = (line: string) => process.stderr.write(`${line}\n`);

/** The population: 4 in 5 liquidatable by the crash (whole or partly), the rest healthy; ETH, BTC and both. */
export function population(n: number): TraderSpec[] {
  return Array.from({ length: n }, (_, i) => {
    const kind = i % 5; // 0, 1 whole; 2, 3 partial; 4 healthy
    const name = `t${i}`;
    switch (i % 4) {
      case 0:
      case 1:
        return spec(name, 1000, long("vETH", [9000, 8800, 6800, 6600, 5000][kind] as number));
      case 2:
        return spec(name, 1000, long("vBTC", [9000, 8800, 6800, 6600, 5000][kind] as number));
      default:
        return kind < 2
          ? spec(name, 1400, long("vETH", 6500), long("vBTC", 6000))
          : kind < 4
            ? spec(name, 2000, long("vETH", 7000), long("vBTC", 6000))
            : spec(name, 3000, long("vETH", 5000), short("vBTC", 4000));
    }
  });
}

interface ModeResult {
  readonly accounts: number;
  readonly liquidatable: number;
  readonly liquidations: number;
  readonly partial: number;
  readonly blocksP50: number;
  readonly blocksMax: number;
  readonly firstCallP50: number;
  readonly itemsOutOfGas: number;
  readonly firstCallMax: number;
  readonly physicalLimitBlocks: number;
  readonly leftLiquidatable: number;
  readonly txReverted: number;
  readonly rpcPerLiquidation: number;
  readonly takeoverClosed?: boolean;
  readonly closeSlippageBpsMax?: number;
}

interface Stage {
  readonly anvil: Anvil;
  readonly dev: PerpV2Devnet;
  readonly client: PublicClient;
  readonly traders: Trader[];
  readonly proxy: CountingHttpProxy;
}

async function stage(n: number): Promise<Stage> {
  const anvil = await startAnvil({
    blockTime: 1,
    accounts: FIRST_TRADER + n + 2,
    extraArgs: ["--gas-limit", "30000000"],
  });
  try {
    const dev = await PerpV2Devnet.deploy(anvil.rpcUrl);
    const maker = dev.account(1);
    await dev.fundMany([
      { trader: maker, usdc: "400000000" },
      { trader: dev.arb, usdc: "20000000" },
    ]);
    await dev.addLiquidity(maker, "vETH", "100000", "200000000");
    await dev.addLiquidity(maker, "vBTC", "4000", "120000000");
    const traders = await openTraders(dev, FIRST_TRADER, population(n));
    // back to the index where the opening moved the pools
    await dev.movePoolTo("vETH", "2000");
    await dev.movePoolTo("vBTC", "30000");
    const proxy = await CountingHttpProxy.start(anvil.rpcUrl);
    return { anvil, dev, client: dev.publicClient as unknown as PublicClient, traders, proxy };
  } catch (error) {
    await anvil.stop();
    throw error;
  }
}

/**
 * The chain's own condition per trader at one block: getAccountValue < getMarginRequirementForLiquidation;
 * undefined where the view reverts. (The devnet's index feed reverts SafeMath for a block or two after an update
 * when the TWAP is read; liquidate reverts there too, so such a block counts as neither liquidatable nor healthy.)
 */
async function liquidatableAt(s: Stage, block: bigint, client = s.client): Promise<(boolean | undefined)[]> {
  return Promise.all(
    s.traders.map(async (t) => {
      const read = Promise.all([
        client.readContract({
          address: s.dev.d.clearingHouse,
          abi: clearingHouseAbi,
          functionName: "getAccountValue",
          args: [t.address],
          blockNumber: block,
        }),
        client.readContract({
          address: s.dev.d.accountBalance,
          abi: accountBalanceAbi,
          functionName: "getMarginRequirementForLiquidation",
          args: [t.address],
          blockNumber: block,
        }),
      ]);
      const answer = await read.catch(() => undefined);
      return answer === undefined ? undefined : answer[0] < answer[1];
    }),
  );
}

/** The crash: each market's index, then its pool, to the new price. Returns its first and last block. */
async function crash(s: Stage): Promise<{ from: bigint; to: bigint }> {
  const from = await s.client.getBlockNumber({ cacheTime: 0 });
  await s.dev.crash("vETH", "1800");
  await s.dev.crash("vBTC", "26500");
  return { from: from + 1n, to: await s.client.getBlockNumber({ cacheTime: 0 }) };
}

/** The naive bot: every head, every trader's views; each liquidatable one liquidated market by market, one at a time. */
function naiveBot(s: Stage, signal: AbortSignal): Promise<void> {
  const client = httpPublicClient(s.proxy.url, { batch: true });
  const account = privateKeyToAccount(BASELINE_KEY);
  const wallet = createWalletClient({ account, transport: http(s.proxy.url) });
  const bases = new Map(s.dev.d.markets.map((m) => [m.name, m.baseToken]));
  return (async () => {
    let seen = -1n;
    while (!signal.aborted) {
      const head = await client.getBlockNumber({ cacheTime: 0 });
      if (head === seen) {
        await sleep(100);
        continue;
      }
      seen = head;
      const flags = await liquidatableAt(s, head, client);
      for (const [i, t] of s.traders.entries()) {
        if (!flags[i] || signal.aborted) continue;
        for (const leg of t.legs) {
          const hash = await wallet
            .writeContract({
              address: s.dev.d.clearingHouse,
              abi: clearingHouseAbi,
              functionName: "liquidate",
              args: [t.address, bases.get(leg.market) as Address, 0n],
              gas: 3_000_000n,
              chain: null,
            })
            .catch(() => undefined);
          if (hash) await client.waitForTransactionReceipt({ hash, pollingInterval: 100 }).catch(() => undefined);
        }
      }
    }
  })();
}

/** --keeper-log <file>: the keeper's JSON log lines, for a post-mortem. */
const keeperLogPath = benchArgs().stringArg("--keeper-log");
const keeperLog = keeperLogPath ? createWriteStream(keeperLogPath, { flags: "w" }) : undefined;

/** --signers: the keeper's keys (1 or 2), each an operator of its liquidator and a nonce lane of its own. */
const signers = benchArgs().intArg("--signers", 1);
if (signers > KEEPER_KEYS.length) throw new Error(`--signers takes 1 or ${KEEPER_KEYS.length}`);

async function runMode(mode: "keeper" | "baseline", n: number): Promise<ModeResult> {
  progress(`[${mode}] staging Perp v2 with ${n} traders...`);
  const s = await stage(n);
  const controller = new AbortController();
  let keeper: PerpV2RunningKeeper | undefined;
  let bot: Promise<void> | undefined;
  const stateDir = mkdtempSync(join(os.tmpdir(), "bench-exec-perp-v2-"));
  try {
    const keys = mode === "keeper" ? KEEPER_KEYS.slice(0, signers) : [BASELINE_KEY];
    const addresses = keys.map((k) => privateKeyToAccount(k).address);
    let holder: Address = addresses[0] as Address;
    if (mode === "keeper") {
      holder = await stageLiquidator(s.dev, s.dev.account(3), addresses, "5000000");
      const raw = perpV2KeeperConfig(s.dev.d, s.proxy.url, { pollIntervalMs: 100, stateDir, metricsPort: 0 });
      const config = parseConfig({ ...raw, exchange: { ...(raw.exchange as object), liquidator: holder } }, "bench");
      keeper = await startPerpV2Keeper({
        config,
        rpcUrl: s.proxy.url,
        privateKeys: keys,
        // --keeper-log <file>: the keeper's JSON log lines, for a post-mortem
        log: createLogger({
          level: keeperLog ? "info" : "error",
          format: "json",
          ...(keeperLog ? { destination: keeperLog } : {}),
        }),
        signal: controller.signal,
      });
      keeper.done.catch(() => {});
      const head = await s.client.getBlockNumber({ cacheTime: 0 });
      await until("the keeper's backfill", () => (keeper?.watcher.latestTick?.blockNumber ?? -1n) >= head, 120_000);
    } else {
      await s.dev.fund(s.dev.account(9), "5000000"); // ANVIL_KEYS[9]: its own Vault account
      bot = naiveBot(s, controller.signal);
    }
    s.proxy.startCounting();
    progress(`[${mode}] crash`);
    const { from, to } = await crash(s);
    // until no account is liquidatable (or 60 blocks), then 10 more blocks
    let end = to;
    await until(
      "the crash settled",
      async () => {
        end = await s.client.getBlockNumber({ cacheTime: 0 });
        return (await liquidatableAt(s, end)).every((f) => f === false) || end > to + 60n;
      },
      180_000,
    );
    const after = to + 10n > end ? to + 10n : end;
    await until(
      "10 blocks after the crash",
      async () => (await s.client.getBlockNumber({ cacheTime: 0 })) >= after,
      60_000,
    );
    s.proxy.stopCounting();
    const calls = s.proxy.snapshot().calls;
    controller.abort();
    progress(`[${mode}] reading the chain, blocks ${from}..${after}`);
    return await measure(s, mode, holder, addresses, from, to, after, calls);
  } finally {
    controller.abort();
    await keeper?.stop("bench finished").catch(() => {});
    await bot?.catch(() => {});
    await s.proxy.close();
    await s.anvil.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function measure(
  s: Stage,
  mode: "keeper" | "baseline",
  holder: Address,
  signers: readonly Address[],
  from: bigint,
  crashEnd: bigint,
  end: bigint,
  rpcCalls: number,
): Promise<ModeResult> {
  // episodes: from a block where the chain says an account is liquidatable to the first block after which it says it
  // is not (liquidated whole, or partly until healthy); an account the falling price (or the pool our closes move)
  // makes liquidatable again starts a new episode
  const open = new Map<number, bigint>();
  const episodes: { i: number; first: bigint; span: bigint }[] = [];
  const seen = new Set<number>();
  let leftLiquidatable = 0;
  for (let b = from; b <= end; b++) {
    const flags = await liquidatableAt(s, b);
    flags.forEach((flag, i) => {
      if (flag === true && !open.has(i)) {
        open.set(i, b);
        seen.add(i);
      }
      const first = open.get(i);
      if (flag === false && first !== undefined) {
        episodes.push({ i, first, span: b - first });
        open.delete(i);
      }
    });
    if (b === crashEnd + 10n) leftLiquidatable = flags.filter((f) => f !== false).length;
  }
  for (const [i, first] of open) episodes.push({ i, first, span: end + 1n - first });
  const spans = episodes.map((e) => Number(e.span)).sort((a, b) => a - b);
  // the liquidator's calls, and the signer's transactions
  const logs = await s.client.getLogs({ address: [s.dev.d.clearingHouse, holder], fromBlock: from, toBlock: end });
  const events = parseEventLogs({ abi: [...clearingHouseAbi, ...perpV2LiquidatorAbi], logs });
  const ours = events.filter(
    (e) =>
      e.eventName === "PositionLiquidated" &&
      (e.args as { liquidator: Address }).liquidator.toLowerCase() === holder.toLowerCase(),
  );
  const perTrader = new Map<string, number>();
  for (const e of ours) {
    const who = (e.args as { trader: Address }).trader.toLowerCase();
    perTrader.set(who, (perTrader.get(who) ?? 0) + 1);
  }
  let gas = 0n;
  let reverted = 0;
  /** --details: each keeper transaction's liquidation items (block, nonce, trader, base token). */
  const asked: { block: bigint; nonce: number; trader: string; base: string }[] = [];
  for (let b = from; b <= end; b++) {
    const block = await s.client.getBlock({ blockNumber: b, includeTransactions: true });
    for (const tx of block.transactions) {
      if (!signers.some((a) => a.toLowerCase() === tx.from.toLowerCase())) continue;
      try {
        const call = decodeFunctionData({ abi: perpV2LiquidatorAbi, data: tx.input });
        const items = (call.args as readonly unknown[]).find(
          (a) => Array.isArray(a) && (a[0] as { trader?: string })?.trader,
        );
        for (const it of (items ?? []) as { trader: string; baseToken: string }[]) {
          asked.push({ block: b, nonce: tx.nonce, trader: it.trader.toLowerCase(), base: it.baseToken.toLowerCase() });
        }
      } catch {
        // a cancel, or a call not to the liquidator
      }
      const receipt = await s.client.getTransactionReceipt({ hash: tx.hash });
      gas += receipt.gasUsed;
      if (receipt.status !== "success") reverted++;
    }
  }
  const liquidations = ours.length;
  const itemsOutOfGas = events.filter(
    (e) => e.eventName === "LiquidationFailed" && (e.args as { reason: Hex }).reason === "0x",
  ).length;
  // per episode, the blocks to our first liquidation of the account in it (none: to the end, as the span)
  const callBlocks = new Map<string, bigint[]>();
  for (const e of ours) {
    const who = (e.args as { trader: Address }).trader.toLowerCase();
    const list = callBlocks.get(who) ?? [];
    list.push(e.blockNumber as bigint);
    callBlocks.set(who, list);
  }
  const toFirstCall = episodes
    .map((e) => {
      const t = s.traders[e.i] as Trader;
      const call = (callBlocks.get(t.address.toLowerCase()) ?? [])
        .filter((b) => b >= e.first)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))[0];
      return Number(call === undefined || call > e.first + e.span ? e.span : call - e.first);
    })
    .sort((a, b) => a - b);
  if (process.argv.includes("--details")) {
    // the slowest accounts: when the chain first said liquidatable, when healthy again, and our calls' blocks
    const slow = [...episodes].sort((a, b) => Number(b.span - a.span)).slice(0, 8);
    for (const { i, first, span } of slow) {
      const t = s.traders[i] as Trader;
      const blocks = ours
        .filter((e) => (e.args as { trader: Address }).trader.toLowerCase() === t.address)
        .map((e) => String(e.blockNumber));
      const market = (base: string) =>
        s.dev.d.markets.find((m) => m.baseToken.toLowerCase() === base.toLowerCase())?.name ?? base;
      const items = asked
        .filter((a) => a.trader === t.address.toLowerCase())
        .map((a) => `${a.block}#${a.nonce}:${market(a.base)}`);
      const failed = events
        .filter(
          (e) =>
            e.eventName === "LiquidationFailed" &&
            (e.args as { trader: Address }).trader.toLowerCase() === t.address.toLowerCase(),
        )
        .map((e) => {
          const a = e.args as { baseToken: Address; reason: Hex };
          return `${e.blockNumber}:${market(a.baseToken)}:${a.reason === "0x" ? "out of gas" : (revertMeaning(a.reason)?.name ?? a.reason.slice(0, 10))}`;
        });
      progress(
        `  ${t.name} ${t.address} ${t.legs.map((l) => `${l.market}:${l.notional}`).join("+")} on ${t.usdc}: liquidatable at ${first}, healthy after ${span} blocks; calls in ${blocks.join(", ")}; items ${items.join(" ") || "-"}; failed ${failed.join(" ") || "-"}`,
      );
    }
  }
  const result: ModeResult = {
    accounts: s.traders.length,
    liquidatable: seen.size,
    liquidations,
    partial: [...perTrader.values()].filter((c) => c > 1).length,
    blocksP50: spans.length ? (spans[Math.floor((spans.length - 1) / 2)] as number) : 0,
    blocksMax: spans.length ? (spans[spans.length - 1] as number) : 0,
    itemsOutOfGas,
    firstCallP50: toFirstCall.length ? (toFirstCall[Math.floor((toFirstCall.length - 1) / 2)] as number) : 0,
    firstCallMax: toFirstCall.length ? (toFirstCall[toFirstCall.length - 1] as number) : 0,
    physicalLimitBlocks: Number((gas + BLOCK_GAS_LIMIT - 1n) / BLOCK_GAS_LIMIT),
    leftLiquidatable,
    txReverted: reverted,
    rpcPerLiquidation: liquidations > 0 ? round(rpcCalls / liquidations, 3) : rpcCalls,
  };
  if (mode === "baseline") return result;
  let worst = 0;
  for (const e of events) {
    if (e.eventName !== "InventoryClosed") continue;
    const { baseToken, positionSize, quote } = e.args as { baseToken: Address; positionSize: bigint; quote: bigint };
    const mark = await s.client.readContract({
      address: s.dev.d.accountBalance,
      abi: accountBalanceAbi,
      functionName: "getMarkPrice",
      args: [baseToken],
      blockNumber: (e.blockNumber as bigint) - 1n,
    });
    const size = positionSize < 0n ? -positionSize : positionSize;
    const price = Number(quote) / Number(size);
    // a long sold under the mark, a short bought back above it: both a cost
    const cost =
      positionSize > 0n
        ? (Number(mark) / 1e18 - price) / (Number(mark) / 1e18)
        : (price - Number(mark) / 1e18) / (Number(mark) / 1e18);
    worst = Math.max(worst, cost * 10_000);
  }
  const sizes = await Promise.all(
    s.dev.d.markets.map((m) =>
      s.client.readContract({
        address: s.dev.d.accountBalance,
        abi: accountBalanceAbi,
        functionName: "getTakerPositionSize",
        args: [holder, m.baseToken],
      }),
    ),
  );
  return { ...result, takeoverClosed: sizes.every((x) => x === 0n), closeSlippageBpsMax: round(worst, 3) };
}

export async function runPerpV2ExecBench(): Promise<void> {
  const { json, intArg, stringArg } = benchArgs();
  const n = intArg("--traders", 130);
  const modes = (stringArg("--modes") ?? "keeper,baseline").split(",");
  const keeper = modes.includes("keeper") ? await runMode("keeper", n) : undefined;
  const baseline = modes.includes("baseline") ? await runMode("baseline", n) : undefined;
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const show = (name: string, r: ModeResult | undefined) => {
    if (!r) return;
    console.log(
      `${name.padEnd(9)} ${r.liquidatable}/${r.accounts} liquidatable, ${r.liquidations} liquidations (${r.partial} accounts over several calls); ` +
        `blocks to healthy p50 ${r.blocksP50}, max ${r.blocksMax}, to the first call p50 ${r.firstCallP50}, max ${r.firstCallMax} ` +
        `(physical limit ${r.physicalLimitBlocks}); left ${r.leftLiquidatable}; ` +
        `reverted ${r.txReverted}; ${r.itemsOutOfGas} items out of gas; ${r.rpcPerLiquidation} RPC/liquidation` +
        (r.takeoverClosed === undefined
          ? ""
          : `; takeovers closed: ${r.takeoverClosed}, worst close ${r.closeSlippageBpsMax} bps from the mark`),
    );
  };
  console.log(
    `bench:exec perp-v2 on ${cpu}, ${os.cpus().length} cores, Node ${process.version}; Anvil 1-s blocks, 30M gas`,
  );
  show("keeper", keeper);
  show("baseline", baseline);
  if (json) {
    const k = keeper;
    console.log(
      JSON.stringify({
        bench: "exec",
        exchange: "perp-v2",
        signers,
        accounts: k?.liquidatable ?? baseline?.liquidatable,
        liquidations: k?.liquidations,
        blocksP50: k?.blocksP50,
        blocksMax: k?.blocksMax,
        firstCallP50: k?.firstCallP50,
        firstCallMax: k?.firstCallMax,
        physicalLimitBlocks: k?.physicalLimitBlocks,
        leftLiquidatable: k?.leftLiquidatable,
        txReverted: k?.txReverted,
        itemsOutOfGas: k?.itemsOutOfGas,
        rpcPerLiquidation: k?.rpcPerLiquidation,
        takeoverClosed: k?.takeoverClosed,
        closeSlippageBpsMax: k?.closeSlippageBpsMax,
        partial: k?.partial,
        baseline: baseline && {
          blocksP50: baseline.blocksP50,
          blocksMax: baseline.blocksMax,
          firstCallP50: baseline.firstCallP50,
          firstCallMax: baseline.firstCallMax,
          leftLiquidatable: baseline.leftLiquidatable,
          txReverted: baseline.txReverted,
          rpcPerLiquidation: baseline.rpcPerLiquidation,
          liquidations: baseline.liquidations,
        },
      }),
    );
  }
}

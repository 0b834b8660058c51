/**
 * Test fixture for the keeper on the Pyth-priced cross-margin exchange (CrossMarginEngine, issue 17) on Anvil: 1-second
 * blocks, the exchange staged with its local Hermes (src/devnet/crossMargin/stage.ts), accounts opened from specs, a
 * keeper started in process with its log captured, and what the chain says afterwards: flags and closes (with their
 * blocks' timestamps), every transaction of the keeper's signers with the update bytes it carried and the fee the
 * oracle asked for them, the journal's attempts, and whether a market's liquidation window had room that went
 * unused. Anvil and Hermes are always stopped, also when a test failed.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type Address,
  createWalletClient,
  decodeAbiParameters,
  decodeEventLog,
  decodeFunctionData,
  encodeFunctionData,
  type Hex,
  http,
  type PublicClient,
  parseUnits,
  type TransactionReceipt,
} from "viem";
import { mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { anvil as anvilChain } from "viem/chains";
import { crossMarginEngineAbi } from "../../abi/CrossMarginEngine.ts";
import type { RunningKeeper } from "../../src/app.ts";
import { httpPublicClient } from "../../src/chain/httpClient.ts";
import { parseConfig } from "../../src/config/load.ts";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../../src/devnet/anvil.ts";
import {
  type CrossMarginAccountSpec,
  type CrossMarginDeployment,
  type CrossMarginMarketSpec,
  DEFAULT_CROSS_MARGIN_MARKETS,
  LARGE_ACCOUNT_ID_BASE,
  marketPriceUpdate,
  type OpenedCrossMarginAccount,
  openCrossMarginAccounts,
} from "../../src/devnet/crossMargin/deploy.ts";
import {
  type CrossMarginStage,
  crossMarginKeeperConfig,
  liquidatableAt,
  type StageOptions,
  stageCrossMargin,
} from "../../src/devnet/crossMargin/stage.ts";
import { ANVIL_MNEMONIC } from "../../src/devnet/exchange.ts";
import { type HermesFeedState, type LocalHermes, startHermes } from "../../src/devnet/hermes/server.ts";
import { mockPythAbi } from "../../src/devnet/hermes/updateData.ts";
import type { Attempt } from "../../src/executor/attempt.ts";
import { parseJournal, replay } from "../../src/executor/journal.ts";
import { journalPath } from "../../src/executor/signers.ts";
import { type CrossMarginRunningKeeper, startCrossMarginKeeper } from "../../src/protocol/crossMargin/run.ts";
import { testStateDir } from "./devnet.ts";
import { type CapturedLog, captureLogs } from "./logs.ts";
import { settled, until } from "./wait.ts";

const wad = (v: string) => parseUnits(v, 18);

/** The keeper's signers: Anvil's dev keys 8 and 9, which the stage never uses. */
export const KEEPER_KEYS: readonly Hex[] = [ANVIL_KEYS[8], ANVIL_KEYS[9]];
/** Mnemonic indexes: 0 deploys and owns everything; 5 is a competitor (another keeper); traders from 10. */
export const ROLE = { competitor: 5 } as const;
export const FIRST_TRADER = 10;

/**
 * The devnet's markets with short liquidation windows (`seconds`) and caps of `ethPerWindow` ETH and
 * `btcPerWindow` BTC a window: cap = (maker + taker) x skewScale x multiplier x seconds, so the multiplier is solved
 * for (exact for the defaults used here: fees 0.0007, skew scales 1M ETH and 35k BTC).
 */
export function windowedMarkets(seconds: bigint, ethPerWindow: string, btcPerWindow: string): CrossMarginMarketSpec[] {
  const per = { ETH: wad(ethPerWindow), BTC: wad(btcPerWindow) } as Record<string, bigint>;
  return DEFAULT_CROSS_MARGIN_MARKETS.map((m) => {
    const c = m.config;
    const perSecondAtOne = ((c.makerFeeRatio + c.takerFeeRatio) * c.skewScale) / 10n ** 18n;
    const cap = per[m.name] as bigint;
    const multiplier = (cap * 10n ** 18n) / (perSecondAtOne * seconds);
    const config = {
      ...c,
      maxSecondsInLiquidationWindow: seconds,
      maxLiquidationLimitAccumulationMultiplier: multiplier,
    };
    if (windowCap(config) !== cap) throw new Error(`no exact multiplier for ${cap} ${m.name} a window`);
    return { ...m, config };
  });
}

/** A market's cap a window, as the contract computes it. */
export function windowCap(c: CrossMarginMarketSpec["config"]): bigint {
  const mul = (x: bigint, y: bigint) => (x * y) / 10n ** 18n;
  return (
    mul(mul(c.makerFeeRatio + c.takerFeeRatio, c.skewScale), c.maxLiquidationLimitAccumulationMultiplier) *
    c.maxSecondsInLiquidationWindow
  );
}

export interface CrossMarginFixture {
  readonly anvil: Anvil;
  readonly stage: CrossMarginStage;
  readonly d: CrossMarginDeployment;
  readonly client: PublicClient;
  /** The accounts opened, in spec order. */
  readonly accounts: readonly OpenedCrossMarginAccount[];
  readonly ids: readonly bigint[];
  /**
   * Moves prices (by market name, decimal USD) on Hermes, as stage.move does; prefer it to stage.move: the fixture's
   * heartbeat keeps publish times from running ahead of the clock (see startCrossMarginFixture).
   */
  move(prices: Readonly<Record<string, string>>): HermesFeedState[];
  rpc(method: string, params?: unknown[]): Promise<unknown>;
  head(): Promise<bigint>;
  /** Opens more accounts (traders after those used so far). */
  open(specs: readonly Omit<CrossMarginAccountSpec, "trader">[]): Promise<OpenedCrossMarginAccount[]>;
  stop(): Promise<void>;
}

export interface FixtureOptions extends Omit<StageOptions, "heartbeatMs"> {
  /** Every feed published again at its price once a second has passed (checked every min(heartbeatMs, 250) ms; default 1000; 0: never). */
  readonly heartbeatMs?: number;
  /** Accounts opened at once (traders from FIRST_TRADER, account ids from LARGE_ACCOUNT_ID_BASE). */
  readonly accounts?: readonly Omit<CrossMarginAccountSpec, "trader">[];
  /** Dev accounts funded by Anvil (default: enough for the accounts and 20 more). */
  readonly anvilAccounts?: number;
}

/**
 * Anvil (1 s blocks), the exchange and its Hermes staged, accounts opened. Anvil is stopped if any of it fails.
 *
 * The heartbeat is the fixture's, not the stage's: the stage publishes every feed each second at "now, or a second
 * after its last publish time when that is not older", so a move made in a second the heartbeat already published in
 * is a second ahead of the clock, and every later heartbeat keeps that lead: publish times run ahead by one second a
 * move. With a short maxPriceAge the prices end up "from the future" for the exchange (|age| > maxPriceAge) and
 * OracleDataRequired. Here a feed is published again only once the clock has passed its last publish time.
 */
export async function startCrossMarginFixture(options: FixtureOptions = {}): Promise<CrossMarginFixture> {
  const specs = options.accounts ?? [];
  const anvil = await startAnvil({ blockTime: 1, accounts: options.anvilAccounts ?? FIRST_TRADER + specs.length + 40 });
  let stage: CrossMarginStage | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    stage = await stageCrossMargin(anvil.rpcUrl, { ...options, heartbeatMs: 0 });
    const hermes = stage.hermes;
    const feeds = stage.deployment.markets.map((m) => m.feedId);
    const beat = options.heartbeatMs ?? 1000;
    if (beat > 0) {
      timer = setInterval(
        () => {
          const now = BigInt(Math.floor(Date.now() / 1000));
          const due = feeds.map((id) => hermes.feed(id)).filter((f) => f.publishTime < now);
          if (due.length > 0) hermes.setPrices(due.map((f) => ({ id: f.id, price: f.price, publishTime: now })));
        },
        Math.min(beat, 250),
      );
      timer.unref();
    }
    const d = stage.deployment;
    const client = createClient(anvil.rpcUrl);
    let traders = 0;
    const opened: OpenedCrossMarginAccount[] = [];
    const open = async (more: readonly Omit<CrossMarginAccountSpec, "trader">[]) => {
      const first = traders;
      traders += more.length;
      const accounts = await openCrossMarginAccounts(
        d,
        anvil.rpcUrl,
        more.map((a, i) => ({
          ...a,
          trader: FIRST_TRADER + first + i,
          accountId: a.accountId ?? LARGE_ACCOUNT_ID_BASE + BigInt(first + i),
        })),
      );
      opened.push(...accounts);
      return accounts;
    };
    await open(specs);
    const st = stage;
    const rpc = (method: string, params: unknown[] = []) =>
      client.request({ method: method as never, params: params as never }) as Promise<unknown>;
    return {
      anvil,
      stage: st,
      d,
      client,
      accounts: opened,
      get ids() {
        return opened.map((a) => a.accountId);
      },
      move: (prices) => st.move(prices),
      rpc,
      head: () => client.getBlockNumber({ cacheTime: 0 }),
      open,
      async stop() {
        if (timer) clearInterval(timer);
        try {
          await st.close();
        } finally {
          await anvil.stop();
        }
      },
    };
  } catch (error) {
    if (timer) clearInterval(timer);
    await stage?.close().catch(() => {});
    await anvil.stop();
    throw error;
  }
}

function createClient(rpcUrl: string): PublicClient {
  return httpPublicClient(rpcUrl, { retryCount: 0, timeout: 30_000 }, { chain: anvilChain, pollingInterval: 50 });
}

export interface TestKeeper {
  readonly keeper: CrossMarginRunningKeeper;
  readonly logs: CapturedLog;
  readonly stateDir: string;
  /** The signers, lower case. */
  readonly signers: readonly Address[];
}

/** A keeper on the fixture (cross-margin adapter), its log captured; `done` is left to the test. */
export async function startCrossMarginTestKeeper(
  fx: CrossMarginFixture,
  options: {
    readonly stateDir?: string;
    readonly keys?: readonly Hex[];
    readonly keeper?: Record<string, unknown>;
    /** Exchange settings over the fixture's (priceUpdates, hermes). */
    readonly exchange?: Record<string, unknown>;
    /** Hermes endpoints (default the stage's). */
    readonly hermesUrls?: readonly string[];
    readonly logs?: CapturedLog;
  } = {},
): Promise<TestKeeper> {
  const logs = options.logs ?? captureLogs();
  const stateDir = options.stateDir ?? testStateDir();
  const endpoints = options.hermesUrls ?? [fx.stage.hermes.url];
  const { hermes, ...exchange } = options.exchange ?? {};
  const raw = crossMarginKeeperConfig(
    fx.d,
    fx.anvil.rpcUrl,
    endpoints,
    { pollIntervalMs: 100, metricsPort: 0, stateDir, ...options.keeper },
    { ...exchange, hermes: { endpoints, ...(hermes as object | undefined) } },
  );
  const config = parseConfig(raw, "cross-margin test config");
  const keys = options.keys ?? KEEPER_KEYS;
  const keeper = await startCrossMarginKeeper({ config, rpcUrl: fx.anvil.rpcUrl, privateKeys: keys, log: logs.log });
  keeper.done.catch(() => {});
  return {
    keeper,
    logs,
    stateDir,
    signers: keys.map((k) => privateKeyToAccount(k).address.toLowerCase() as Address),
  };
}

/** Stops a keeper, given at most 15 s. */
export async function stopKeeper(
  keeper: { stop(reason?: string): Promise<void> } | undefined,
  reason = "test finished",
) {
  if (!keeper) return;
  await Promise.race([keeper.stop(reason).catch(() => {}), new Promise((r) => setTimeout(r, 15_000))]);
}

/** Waits until the keeper has ticked the chain's head (its backfill done). */
export async function atHead(fx: CrossMarginFixture, k: CrossMarginRunningKeeper, timeoutMs = 30_000): Promise<bigint> {
  let head = 0n;
  await until(
    "the keeper at the head",
    async () => {
      head = await fx.head();
      return (k.watcher.latestTick?.blockNumber ?? -1n) >= head;
    },
    timeoutMs,
  );
  return head;
}

/** Waits for the next block to be mined and returns its number: what is done right after has most of a block's time. */
export async function freshBlock(fx: CrossMarginFixture): Promise<bigint> {
  const start = await fx.head();
  let now = start;
  const deadline = Date.now() + 10_000;
  while (now === start) {
    if (Date.now() > deadline) throw new Error(`no block after ${start} within 10 s`);
    await new Promise((r) => setTimeout(r, 10));
    now = await fx.head();
  }
  return now;
}

/** Mining stopped while `fn` runs (blocks come only from evm_mine), then 1-second blocks again. */
export async function withMiningPaused<T>(fx: CrossMarginFixture, fn: () => Promise<T>): Promise<T> {
  await fx.rpc("evm_setIntervalMining", [0]);
  try {
    return await fn();
  } finally {
    await fx.rpc("evm_setIntervalMining", [1]);
  }
}

/** Prices by market name, decimal USD, as WAD (liquidatableAt's form). */
export function wadPrices(prices: Readonly<Record<string, string>>): Record<string, bigint> {
  return Object.fromEntries(Object.entries(prices).map(([k, v]) => [k, wad(v)]));
}

/** The accounts among `ids` the exchange's rules find liquidatable at `prices` (decimal USD), read at the head. */
export function liquidatableAtPrices(
  fx: CrossMarginFixture,
  ids: readonly bigint[],
  prices: Readonly<Record<string, string>>,
): Promise<bigint[]> {
  return liquidatableAt(fx.client, fx.d, ids, wadPrices(prices));
}

export interface Flag {
  readonly accountId: bigint;
  readonly blockNumber: bigint;
  readonly txHash: Hex;
  readonly from: Address;
}

export interface Close {
  readonly accountId: bigint;
  readonly marketId: bigint;
  readonly amount: bigint;
  readonly left: bigint;
  readonly blockNumber: bigint;
  readonly timestamp: bigint;
  readonly txHash: Hex;
}

const timestamps = new Map<string, bigint>();
/** A block's timestamp (cached per node and block). */
export async function blockTime(fx: CrossMarginFixture, blockNumber: bigint): Promise<bigint> {
  const key = `${fx.anvil.port}:${blockNumber}`;
  let t = timestamps.get(key);
  if (t === undefined) {
    t = (await fx.client.getBlock({ blockNumber })).timestamp;
    timestamps.set(key, t);
  }
  return t;
}

/** Forgets cached timestamps (after a reorganisation). */
export function forgetBlockTimes(): void {
  timestamps.clear();
}

/** AccountFlaggedForLiquidation since `from`, with who sent the transaction. */
export async function flagsSince(fx: CrossMarginFixture, from: bigint, to?: bigint): Promise<Flag[]> {
  if (from > (to ?? (await fx.head()))) return [];
  const logs = await fx.client.getContractEvents({
    address: fx.d.engine,
    abi: crossMarginEngineAbi,
    eventName: "AccountFlaggedForLiquidation",
    fromBlock: from,
    ...(to === undefined ? {} : { toBlock: to }),
  });
  const out: Flag[] = [];
  for (const l of logs) {
    const tx = await fx.client.getTransaction({ hash: l.transactionHash });
    out.push({
      accountId: l.args.accountId as bigint,
      blockNumber: l.blockNumber,
      txHash: l.transactionHash,
      from: tx.from.toLowerCase() as Address,
    });
  }
  return out;
}

/** PositionLiquidated since `from`, with their blocks' timestamps. */
export async function closesSince(fx: CrossMarginFixture, from: bigint, to?: bigint): Promise<Close[]> {
  if (from > (to ?? (await fx.head()))) return [];
  const logs = await fx.client.getContractEvents({
    address: fx.d.engine,
    abi: crossMarginEngineAbi,
    eventName: "PositionLiquidated",
    fromBlock: from,
    ...(to === undefined ? {} : { toBlock: to }),
  });
  const out: Close[] = [];
  for (const l of logs) {
    out.push({
      accountId: l.args.accountId as bigint,
      marketId: l.args.marketId as bigint,
      amount: l.args.amountLiquidated as bigint,
      left: l.args.currentPositionSize as bigint,
      blockNumber: l.blockNumber,
      timestamp: await blockTime(fx, l.blockNumber),
      txHash: l.transactionHash,
    });
  }
  return out;
}

export interface KeeperTx {
  readonly hash: Hex;
  readonly from: Address;
  readonly nonce: number;
  readonly blockNumber: bigint;
  readonly status: "success" | "reverted";
  readonly value: bigint;
  /** The engine's function ("liquidate", "liquidateMany", "multicall", ...), or "other". */
  readonly fn: string;
  /** For a multicall: the inner calls' function names, in order. */
  readonly inner: readonly string[];
  /** The Pyth update bytes the call carried (attached, or in fulfillOracleQuery's data). */
  readonly updates: readonly Hex[];
  /** The account ids it addressed. */
  readonly accounts: readonly bigint[];
  /** MockPyth.getUpdateFee(updates) in the transaction's block. */
  readonly feeRequired: bigint;
  readonly receipt: TransactionReceipt;
}

function decodeEngineCall(data: Hex): { fn: string; inner: string[]; updates: Hex[]; accounts: bigint[] } {
  let call: { functionName: string; args?: readonly unknown[] };
  try {
    call = decodeFunctionData({ abi: crossMarginEngineAbi, data }) as typeof call;
  } catch {
    return { fn: "other", inner: [], updates: [], accounts: [] };
  }
  const args = call.args ?? [];
  switch (call.functionName) {
    case "liquidate":
      return {
        fn: "liquidate",
        inner: [],
        updates: args.length > 1 ? [...(args[1] as Hex[])] : [],
        accounts: [args[0] as bigint],
      };
    case "liquidateMany":
      return { fn: "liquidateMany", inner: [], updates: [...(args[1] as Hex[])], accounts: [...(args[0] as bigint[])] };
    case "liquidateFlaggedAccounts":
      return { fn: call.functionName, inner: [], updates: [], accounts: [...(args[0] as bigint[])] };
    case "fulfillOracleQuery": {
      const [, , , updates] = decodeAbiParameters(
        [{ type: "uint8" }, { type: "uint64" }, { type: "bytes32[]" }, { type: "bytes[]" }],
        args[0] as Hex,
      );
      return { fn: "fulfillOracleQuery", inner: [], updates: [...updates], accounts: [] };
    }
    case "multicall": {
      const inner: string[] = [];
      const updates: Hex[] = [];
      const accounts: bigint[] = [];
      for (const d of args[0] as Hex[]) {
        const c = decodeEngineCall(d);
        inner.push(c.fn);
        updates.push(...c.updates);
        accounts.push(...c.accounts);
      }
      return { fn: "multicall", inner, updates, accounts };
    }
    default:
      return { fn: call.functionName, inner: [], updates: [], accounts: [] };
  }
}

/** Every transaction from `signers` mined in [from, to], decoded, with its receipt and the fee its updates cost. */
export async function keeperTxs(
  fx: CrossMarginFixture,
  signers: readonly Address[],
  from: bigint,
  to?: bigint,
): Promise<KeeperTx[]> {
  const ours = new Set(signers.map((s) => s.toLowerCase()));
  const last = to ?? (await fx.head());
  const out: KeeperTx[] = [];
  for (let n = from; n <= last; n++) {
    const block = await fx.client.getBlock({ blockNumber: n, includeTransactions: true });
    for (const tx of block.transactions) {
      if (!ours.has(tx.from.toLowerCase())) continue;
      const receipt = await fx.client.getTransactionReceipt({ hash: tx.hash });
      const call = decodeEngineCall(tx.input);
      const feeRequired =
        call.updates.length === 0
          ? 0n
          : await fx.client.readContract({
              address: fx.d.pyth,
              abi: mockPythAbi,
              functionName: "getUpdateFee",
              args: [call.updates],
              blockNumber: n,
            });
      out.push({
        hash: tx.hash,
        from: tx.from.toLowerCase() as Address,
        nonce: tx.nonce,
        blockNumber: n,
        status: receipt.status,
        value: tx.value,
        ...call,
        feeRequired,
        receipt,
      });
    }
  }
  return out;
}

/** The engine's events in a receipt, decoded. */
export function engineEvents(fx: CrossMarginFixture, receipt: TransactionReceipt) {
  const out: { eventName: string; args: Record<string, unknown> }[] = [];
  for (const l of receipt.logs) {
    if (l.address.toLowerCase() !== fx.d.engine.toLowerCase()) continue;
    try {
      out.push(decodeEventLog({ abi: crossMarginEngineAbi, data: l.data, topics: l.topics }) as (typeof out)[number]);
    } catch {
      // not one of the engine's
    }
  }
  return out;
}

/** Every attempt a signer's journal holds (terminal ones too), by id. */
export function journalAttempts(fx: CrossMarginFixture, stateDir: string, signer: Address): Attempt[] {
  const path = journalPath(stateDir, fx.d.chainId, signer);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  return [...replay(parseJournal(text, path), path).values()];
}

/** An account's open positions by market id (nonzero sizes), read at `blockNumber` (default the head). */
export async function positionsOf(
  fx: CrossMarginFixture,
  accountId: bigint,
  blockNumber?: bigint,
): Promise<Map<bigint, bigint>> {
  const out = new Map<bigint, bigint>();
  for (const m of fx.d.markets) {
    const [size] = await fx.client.readContract({
      address: fx.d.engine,
      abi: crossMarginEngineAbi,
      functionName: "getOpenPosition",
      args: [accountId, m.marketId],
      ...(blockNumber === undefined ? {} : { blockNumber }),
    });
    if (size !== 0n) out.set(m.marketId, size);
  }
  return out;
}

/** The exchange's flagged list at the head. */
export async function flaggedOnChain(fx: CrossMarginFixture): Promise<readonly bigint[]> {
  return fx.client.readContract({ address: fx.d.engine, abi: crossMarginEngineAbi, functionName: "flaggedAccounts" });
}

export interface UnusedRoom {
  readonly blockNumber: bigint;
  readonly timestamp: bigint;
  readonly marketId: bigint;
  /** Capacity the market's window had at the block's time. */
  readonly room: bigint;
  /** Flagged accounts holding a position in the market when the block began. */
  readonly waiting: readonly bigint[];
}

/**
 * The blocks in [from, to] where a market's window had room at the block's time while a flagged account among
 * `accounts` still held a position in it when the block began, and the block closed nothing in that market: a
 * continuation that came late. The window is rebuilt from the chain's PositionLiquidated events since `since` (the
 * contract's rule: an entry counts while its time + window > the block's time).
 */
export async function unusedRoom(
  fx: CrossMarginFixture,
  accounts: readonly bigint[],
  since: bigint,
  from: bigint,
  to: bigint,
): Promise<UnusedRoom[]> {
  const closes = await closesSince(fx, since, to);
  const out: UnusedRoom[] = [];
  for (let b = from; b <= to; b++) {
    const t = await blockTime(fx, b);
    for (const m of fx.d.markets) {
      const seconds = m.config.maxSecondsInLiquidationWindow;
      if (seconds === 0n) continue;
      let used = 0n;
      for (const c of closes) {
        if (c.marketId === m.marketId && c.blockNumber < b && c.timestamp + seconds > t) used += c.amount;
      }
      const room = windowCap(m.config) - used;
      if (room <= 0n) continue;
      const waiting: bigint[] = [];
      for (const id of accounts) {
        const flagged = await fx.client.readContract({
          address: fx.d.engine,
          abi: crossMarginEngineAbi,
          functionName: "isFlagged",
          args: [id],
          blockNumber: b - 1n,
        });
        if (flagged && (await positionsOf(fx, id, b - 1n)).has(m.marketId)) waiting.push(id);
      }
      if (waiting.length === 0) continue;
      if (closes.some((c) => c.blockNumber === b && c.marketId === m.marketId)) continue;
      out.push({ blockNumber: b, timestamp: t, marketId: m.marketId, room, waiting });
    }
  }
  return out;
}

/** A wallet of a mnemonic index (the competitor's). */
export function walletOf(fx: CrossMarginFixture, index: number) {
  return createWalletClient({
    chain: { ...anvilChain, id: fx.d.chainId },
    transport: http(fx.anvil.rpcUrl),
    account: mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: index }),
  });
}

/**
 * Sends MockPyth.updatePriceFeeds of `prices` (by market name, decimal USD) published at `publishTime` from `index`'s
 * wallet without waiting for it to be mined, with a priority fee of `tipWei` (Anvil orders a block by it).
 */
export async function submitPriceUpdate(
  fx: CrossMarginFixture,
  index: number,
  prices: Readonly<Record<string, string>>,
  publishTime: bigint,
  tipWei = 10n ** 10n,
): Promise<Hex> {
  const wallet = walletOf(fx, index);
  const updates = Object.entries(prices).map(([name, price]) => {
    const m = fx.d.markets.find((x) => x.name === name);
    if (!m) throw new Error(`no market ${name}`);
    return marketPriceUpdate(m, price, publishTime);
  });
  const fee = await fx.client.readContract({
    address: fx.d.pyth,
    abi: mockPythAbi,
    functionName: "getUpdateFee",
    args: [updates],
  });
  return wallet.sendTransaction({
    to: fx.d.pyth,
    data: encodeFunctionData({ abi: mockPythAbi, functionName: "updatePriceFeeds", args: [updates] }),
    value: fee,
    gas: 200_000n * BigInt(updates.length),
    maxFeePerGas: 100_000_000_000n,
    maxPriorityFeePerGas: tipWei,
  });
}

/** The price MockPyth holds for a market (Pyth units and publish time). */
export async function pythPriceOnChain(fx: CrossMarginFixture, name: string) {
  const m = fx.d.markets.find((x) => x.name === name);
  if (!m) throw new Error(`no market ${name}`);
  return fx.client.readContract({
    address: fx.d.pyth,
    abi: mockPythAbi,
    functionName: "getPriceUnsafe",
    args: [m.feedId],
  });
}

/** JSON of log lines, bigint-safe, for a failure's message. */
export function show(value: unknown): string {
  return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v));
}

/**
 * A second local Hermes that mirrors the stage's (every feed's price and publish time, copied every 100 ms): a second
 * endpoint for the keeper that serves the same update bytes. Stop it with close() (its copying stops too).
 */
export async function startMirrorHermes(fx: CrossMarginFixture): Promise<LocalHermes> {
  const source = fx.stage.hermes;
  const mirror = await startHermes({
    feeds: fx.d.markets.map((m) => {
      const s = source.feed(m.feedId);
      return {
        id: m.feedId,
        symbol: `${m.name}/USD`,
        price: s.price,
        expo: s.expo,
        conf: s.conf,
        publishTime: s.publishTime,
      };
    }),
  });
  const timer = setInterval(() => {
    const moves = fx.d.markets
      .map((m) => source.feed(m.feedId))
      .filter((s) => s.publishTime > mirror.feed(s.id).publishTime)
      .map((s) => ({ id: s.id, price: s.price, publishTime: s.publishTime }));
    if (moves.length > 0) mirror.setPrices(moves);
  }, 100);
  timer.unref();
  const close = mirror.close;
  return Object.assign(mirror, {
    close: async () => {
      clearInterval(timer);
      await close();
    },
  });
}

/** A market of the deployment by name, with a way to encode its MockPyth updates. */
export function marketOf(fx: CrossMarginFixture, name: string) {
  const m = fx.d.markets.find((x) => x.name === name);
  if (!m) throw new Error(`no market ${name}`);
  return { ...m, update: (price: string | bigint, publishTime: bigint) => marketPriceUpdate(m, price, publishTime) };
}

/** wait.ts's settled() for a cross-margin keeper (it looks at the executor alone). */
export function settledKeeper(k: CrossMarginRunningKeeper): Promise<void> {
  return settled(k as unknown as RunningKeeper);
}

/** Whether the keeper has a liquidation broadcast (pending) for each of these accounts. */
export function sentFor(k: CrossMarginRunningKeeper, ids: readonly bigint[]): boolean {
  const pending = k.executor.pendingAttempts.filter((a) => a.status === "pending");
  return ids.every((id) => pending.some((a) => a.targets.some((t) => t.key === id.toString())));
}

/** With CM_E2E_LOGS set to a directory: each keeper's captured log written there (`<name>.jsonl`), for a diagnosis. */
export function writeLogs(name: string, logs: CapturedLog | undefined): void {
  const dir = process.env.CM_E2E_LOGS;
  if (!dir || !logs) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.jsonl`), logs.raw.join(""));
}

/**
 * CrossMarginEngine on Anvil, priced by Pyth's MockPyth (npm bytecode): orders, flag then close within the windows
 * and the continuation in a later window, liquidateMany's skips, liquidateFlagged, the ERC-7412 path (the
 * documented OracleDataRequired, then multicall[fulfillOracleQuery, liquidate]), Pyth's fee and its refusal of an
 * older update, permissions, uint128 ids far above 2^53, and gas.
 *
 * Every test runs from a snapshot of the deployed exchange with its accounts open, and reverts to it afterwards.
 * Expected figures come from the mirror (src/protocol/crossMargin/math.ts).
 */
import {
  type Address,
  createTestClient,
  createWalletClient,
  decodeAbiParameters,
  decodeErrorResult,
  decodeFunctionResult,
  encodeAbiParameters,
  encodeFunctionData,
  type Hex,
  http,
  type PublicClient,
  parseAbiParameters,
  parseEventLogs,
  type TransactionReceipt,
} from "viem";
import { mnemonicToAccount } from "viem/accounts";
import { anvil as anvilChain } from "viem/chains";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { crossMarginEngineAbi } from "../../abi/CrossMarginEngine.ts";
import { testUSDAbi } from "../../abi/TestUSD.ts";
import { httpPublicClient } from "../../src/chain/httpClient.ts";
import { type Anvil, startAnvil } from "../../src/devnet/anvil.ts";
import {
  type CrossMarginDeployment,
  type CrossMarginMarketSpec,
  deployCrossMargin,
  LARGE_ACCOUNT_ID_BASE,
  marketPriceUpdate,
  type OpenedCrossMarginAccount,
  openCrossMarginAccounts,
  publishCrossMarginPrices,
} from "../../src/devnet/crossMargin/deploy.ts";
import { ANVIL_MNEMONIC } from "../../src/devnet/exchange.ts";
import { mockPythAbi } from "../../src/devnet/hermes/updateData.ts";
import { accountHealth, type PositionAt, WAD } from "../../src/protocol/crossMargin/math.ts";

const w = (n: number | string) => BigInt(Math.round(Number(n) * 1e6)) * 10n ** 12n;
const feed = (byte: string) => `0x${byte.repeat(32)}` as Hex;
const COMMON = {
  makerFeeRatio: w("0.0002"),
  takerFeeRatio: w("0.0008"),
  initialMarginRatio: WAD,
  minimumInitialMarginRatio: w("0.05"),
  maintenanceMarginScalar: w("0.5"),
  flagRewardRatio: w("0.01"),
  minimumPositionMargin: w(5),
  maxLiquidationLimitAccumulationMultiplier: WAD,
};
/** ETH: 10 per 10 s window; BTC: 1 per 5 s; SOL: no window, expo -6. */
const MARKETS: readonly CrossMarginMarketSpec[] = [
  {
    marketId: 100n,
    name: "ETH",
    feedId: feed("e1"),
    price: "100",
    config: { ...COMMON, skewScale: w(1000), maxSecondsInLiquidationWindow: 10n },
  },
  {
    marketId: 200n,
    name: "BTC",
    feedId: feed("b2"),
    price: "1000",
    config: {
      ...COMMON,
      skewScale: w(100),
      maxLiquidationLimitAccumulationMultiplier: w(2),
      maxSecondsInLiquidationWindow: 5n,
    },
  },
  {
    marketId: 300n,
    name: "SOL",
    feedId: feed("5a"),
    price: "10",
    expo: -6,
    config: { ...COMMON, skewScale: w(100000), maxSecondsInLiquidationWindow: 0n },
  },
];
const ETH = 100n;
const BTC = 200n;
const SOL = 300n;
const GLOBAL = { minKeeperReward: w(1), maxKeeperReward: w(100), stepReward: w(2), maxPriceAge: 60n };
const MAX_UINT128 = 2n ** 128n - 1n;

/** Account ids (LARGE_ACCOUNT_ID_BASE + index, the last one the largest uint128). */
const BIG_ETH = LARGE_ACCOUNT_ID_BASE;
const THREE = LARGE_ACCOUNT_ID_BASE + 1n;
const ONE = LARGE_ACCOUNT_ID_BASE + 2n;
const TWO = LARGE_ACCOUNT_ID_BASE + 3n;
const HEALTHY = LARGE_ACCOUNT_ID_BASE + 4n;
const EMPTY = LARGE_ACCOUNT_ID_BASE + 5n;
const UNKNOWN = LARGE_ACCOUNT_ID_BASE + 99n;

const ERRORS_ABI = [...crossMarginEngineAbi, ...mockPythAbi.filter((i) => i.type === "error")];
const ORACLE_QUERY = parseAbiParameters("uint8, uint64, bytes32[]");
const FULFILL_DATA = parseAbiParameters("uint8, uint64, bytes32[], bytes[]");

let anvil: Anvil | undefined;
let d: CrossMarginDeployment;
let opened: OpenedCrossMarginAccount[];
let client: PublicClient;
let snapshot: Hex;

const keeperAccount = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 1 });
const trader = (i: number) => mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: i });
const walletOf = (account: ReturnType<typeof trader>) =>
  createWalletClient({ chain: anvilChain, account, transport: http(anvil?.rpcUrl) });
const testClient = () => createTestClient({ chain: anvilChain, mode: "anvil", transport: http(anvil?.rpcUrl) });
const market = (id: bigint) => d.markets.find((m) => m.marketId === id) as CrossMarginDeployment["markets"][number];

beforeAll(async () => {
  anvil = await startAnvil({ accounts: 12 });
  client = httpPublicClient(anvil.rpcUrl, {}, { chain: anvilChain, pollingInterval: 50 });
  d = await deployCrossMargin(anvil.rpcUrl, { markets: MARKETS, global: GLOBAL });
  opened = await openCrossMarginAccounts(d, anvil.rpcUrl, [
    { trader: 2, collateral: "400", positions: [{ market: "ETH", size: "30" }] },
    {
      trader: 3,
      collateral: "160",
      positions: [
        { market: "ETH", size: "4" },
        { market: "BTC", size: "-0.5" },
        { market: "SOL", size: "100" },
      ],
    },
    { trader: 4, collateral: "60", positions: [{ market: "ETH", size: "5" }] },
    {
      trader: 5,
      collateral: "70",
      positions: [
        { market: "ETH", size: "3" },
        { market: "BTC", size: "0.2" },
      ],
    },
    { trader: 6, collateral: "10000", positions: [{ market: "ETH", size: "1" }] },
    { trader: 7, collateral: "100" },
    { trader: 8, accountId: MAX_UINT128, collateral: "50", positions: [{ market: "SOL", size: "10" }] },
  ]);
}, 60_000);

afterAll(async () => {
  await anvil?.stop();
});

beforeEach(async () => {
  snapshot = await testClient().snapshot();
  // fresh prices at the head's time, whatever time the earlier tests took
  await publishCrossMarginPrices(d, anvil?.rpcUrl as string, { ETH: "100", BTC: "1000", SOL: "10" }, await now());
});

afterEach(async () => {
  await testClient().setAutomine(true);
  expect(
    await testClient()
      .revert({ id: snapshot })
      .then(() => true),
  ).toBe(true);
});

// ------------------------------------------------------------------ helpers

async function now(): Promise<bigint> {
  return (await client.getBlock({ blockTag: "latest" })).timestamp;
}

async function at(timestamp: bigint): Promise<void> {
  await testClient().setNextBlockTimestamp({ timestamp });
}

async function rpc<T>(method: string, params: readonly unknown[]): Promise<T> {
  const res = await fetch(anvil?.rpcUrl as string, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = (await res.json()) as { result?: T; error?: { message: string; data?: Hex } };
  if (body.error) throw Object.assign(new Error(`${method}: ${body.error.message}`), { data: body.error.data });
  return body.result as T;
}

const call = (functionName: string, args: readonly unknown[]) =>
  encodeFunctionData({ abi: crossMarginEngineAbi, functionName, args } as Parameters<typeof encodeFunctionData>[0]);

interface Revert {
  readonly errorName: string;
  readonly args: readonly unknown[];
}

/** eth_call of `data` on the engine from `from`; the revert decoded (engine and Pyth errors), or the return data. */
async function simulate(
  data: Hex,
  options: { from?: Address; value?: bigint; time?: bigint } = {},
): Promise<{ ok: true; data: Hex } | { ok: false; revert: Revert }> {
  const tx = {
    from: options.from ?? keeperAccount.address,
    to: d.engine,
    data,
    gas: "0x1c9c380",
    value: `0x${(options.value ?? 0n).toString(16)}`,
  };
  const params: unknown[] = [tx, "latest"];
  if (options.time !== undefined) params.push({}, { time: `0x${options.time.toString(16)}` });
  try {
    return { ok: true, data: await rpc<Hex>("eth_call", params) };
  } catch (error) {
    const raw = (error as { data?: Hex }).data;
    if (!raw || raw === "0x") return { ok: false, revert: { errorName: "<no data>", args: [] } };
    const decoded = decodeErrorResult({ abi: ERRORS_ABI, data: raw });
    return { ok: false, revert: { errorName: decoded.errorName, args: decoded.args ?? [] } };
  }
}

async function revertOf(data: Hex, options: { from?: Address; value?: bigint } = {}): Promise<Revert> {
  const out = await simulate(data, options);
  if (out.ok) throw new Error("expected a revert");
  return out.revert;
}

/** Sends `data` to the engine and waits for a successful receipt. */
async function send(
  data: Hex,
  options: { from?: ReturnType<typeof trader>; value?: bigint; gas?: bigint } = {},
): Promise<TransactionReceipt> {
  const wallet = walletOf(options.from ?? keeperAccount);
  const hash = await wallet.sendTransaction({
    to: d.engine,
    data,
    value: options.value ?? 0n,
    gas: options.gas ?? 3_000_000n,
  });
  const receipt = await client.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`transaction reverted: ${JSON.stringify(await simulate(data))}`);
  return receipt;
}

const events = (receipt: TransactionReceipt) => parseEventLogs({ abi: crossMarginEngineAbi, logs: receipt.logs });
const named = (receipt: TransactionReceipt, eventName: string) =>
  events(receipt)
    .filter((e) => e.eventName === eventName)
    .map((e) => e.args as Record<string, unknown>);

async function read<T>(functionName: string, args: readonly unknown[] = []): Promise<T> {
  return (await client.readContract({
    address: d.engine,
    abi: crossMarginEngineAbi,
    functionName,
    args,
  } as never)) as T;
}

async function balance(address: Address): Promise<bigint> {
  return client.readContract({ address: d.quoteToken, abi: testUSDAbi, functionName: "balanceOf", args: [address] });
}

/** The mirror's figures for an account from the engine's own state, at the given WAD prices by market. */
async function mirror(accountId: bigint, prices: ReadonlyMap<bigint, bigint>) {
  const collateral = await read<bigint>("getCollateral", [accountId]);
  const positions: PositionAt[] = [];
  for (const m of d.markets) {
    const [size, entryPrice] = await read<readonly [bigint, bigint]>("getOpenPosition", [accountId, m.marketId]);
    positions.push({ config: m.config, size, entryPrice, price: prices.get(m.marketId) ?? 0n });
  }
  return accountHealth(GLOBAL, collateral, positions);
}

const prices = (eth: string, btc = "1000", sol = "10") =>
  new Map([
    [ETH, w(eth)],
    [BTC, w(btc)],
    [SOL, w(sol)],
  ]);
const update = (marketId: bigint, price: string, publishTime: bigint) =>
  marketPriceUpdate(market(marketId), price, publishTime);

// ------------------------------------------------------------------ tests

describe("CrossMarginEngine: setup", () => {
  it("the markets, configs, prices and accounts are as deployed; ids above 2^53 are exact", async () => {
    expect(await read<readonly bigint[]>("marketIds")).toEqual([ETH, BTC, SOL]);
    expect(await read("getMarketConfig", [ETH])).toEqual(market(ETH).config);
    const configured = await client.getContractEvents({
      address: d.engine,
      abi: crossMarginEngineAbi,
      eventName: "GlobalConfigured",
      fromBlock: d.deployBlock,
      toBlock: d.deployBlock,
    });
    expect(configured.map((e) => e.args)).toEqual([
      { minKeeperRewardUsd: w(1), maxKeeperRewardUsd: w(100), stepRewardUsd: w(2), maxPriceAge: 60n },
    ]);
    expect(await read("indexPrice", [SOL])).toBe(w(10));
    expect(await read("oracleId")).toBe(`0x${Buffer.from("PYTH").toString("hex").padEnd(64, "0")}`);
    expect(await read("globalConfig")).toEqual([
      GLOBAL.minKeeperReward,
      GLOBAL.maxKeeperReward,
      GLOBAL.stepReward,
      60n,
    ]);
    for (const [i, a] of opened.entries()) {
      expect(await read("accountOwner", [a.accountId])).toBe(trader(i + 2).address);
      expect(a.accountId > 2n ** 53n).toBe(true);
    }
    expect(await read("accountOwner", [MAX_UINT128])).toBe(trader(8).address);
    expect(await read("getOpenPosition", [MAX_UINT128, SOL])).toEqual([w(10), w(10)]);
    // the collateral after the order fees: 160 - (4 x 100 + 0.5 x 1000 + 100 x 10) x 0.0008
    expect(await read("getCollateral", [THREE])).toBe(w(160) - w("1.52"));
    const h = await mirror(THREE, prices("100"));
    expect(await read("getAvailableMargin", [THREE])).toBe(h.availableMargin);
    expect(await read("getRequiredMargins", [THREE])).toEqual([
      h.requiredInitial,
      h.requiredMaintenance,
      h.liquidationReward,
    ]);
    expect(await read("canLiquidate", [THREE])).toBe(false);
  });
});

describe("CrossMarginEngine: orders and collateral", () => {
  it("an order fills at the oracle price, realizes the pnl into collateral and takes the fee", async () => {
    const t = (await now()) + 1n;
    const before = await read<bigint>("getCollateral", [HEALTHY]);
    await at(t);
    const receipt = await send(call("modifyPosition", [HEALTHY, ETH, w(1), [update(ETH, "110", t)]]), {
      from: trader(6),
      value: d.updateFee,
    });
    const [settled] = named(receipt, "OrderSettled");
    const fee = (w(110) * w("0.0008")) / WAD;
    expect(settled).toEqual({
      marketId: ETH,
      accountId: HEALTHY,
      fillPrice: w(110),
      pnl: w(10),
      sizeDelta: w(1),
      newSize: w(2),
      totalFees: fee,
      settler: trader(6).address,
    });
    expect(await read("getCollateral", [HEALTHY])).toBe(before + w(10) - fee);
    expect(await read("getOpenPosition", [HEALTHY, ETH])).toEqual([w(2), w(110)]);
    // closing flat clears the entry price
    await send(call("modifyPosition", [HEALTHY, ETH, -w(2), []]), { from: trader(6) });
    expect(await read("getOpenPosition", [HEALTHY, ETH])).toEqual([0n, 0n]);
  });

  it("an order or a withdrawal that leaves less than initial + reward reverts InsufficientMargin", async () => {
    const big = w(5000);
    const revert = await revertOf(call("modifyPosition", [HEALTHY, ETH, big, []]), { from: trader(6).address });
    const collateral = await read<bigint>("getCollateral", [HEALTHY]);
    const fee = (((big * w(100)) / WAD) * w("0.0008")) / WAD;
    const h = accountHealth(GLOBAL, collateral - fee, [
      { config: market(ETH).config, size: w(1) + big, entryPrice: w(100), price: w(100) },
    ]);
    expect(revert).toEqual({
      errorName: "InsufficientMargin",
      args: [h.availableMargin, h.requiredInitial + h.liquidationReward],
    });
    // no position: the collateral itself must stay >= 0
    expect(await revertOf(call("modifyCollateral", [EMPTY, 0n, -w(101)]), { from: trader(7).address })).toEqual({
      errorName: "InsufficientMargin",
      args: [-w(1), 0n],
    });
    const paid = await balance(trader(7).address);
    await send(call("modifyCollateral", [EMPTY, 0n, -w(100)]), { from: trader(7) });
    expect(await balance(trader(7).address)).toBe(paid + w(100));
  });

  it("permissions: only the owner trades and moves collateral; only the deployer configures; ids are unique", async () => {
    const stranger = trader(9).address;
    expect(await revertOf(call("modifyPosition", [HEALTHY, ETH, w(1), []]), { from: stranger })).toEqual({
      errorName: "PermissionDenied",
      args: [HEALTHY, stranger],
    });
    expect(await revertOf(call("modifyCollateral", [HEALTHY, 0n, -w(1)]), { from: stranger })).toEqual({
      errorName: "PermissionDenied",
      args: [HEALTHY, stranger],
    });
    expect(await revertOf(call("modifyCollateral", [UNKNOWN, 0n, w(1)]), { from: stranger })).toEqual({
      errorName: "AccountNotFound",
      args: [UNKNOWN],
    });
    expect(await revertOf(call("modifyCollateral", [HEALTHY, 1n, w(1)]), { from: trader(6).address })).toEqual({
      errorName: "MarketNotFound",
      args: [1n],
    });
    expect(await revertOf(call("modifyPosition", [HEALTHY, 7n, w(1), []]), { from: trader(6).address })).toEqual({
      errorName: "MarketNotFound",
      args: [7n],
    });
    expect(await revertOf(call("modifyPosition", [HEALTHY, ETH, 0n, []]), { from: trader(6).address })).toEqual({
      errorName: "ZeroAmount",
      args: [],
    });
    expect(await revertOf(call("createAccount", [HEALTHY]), { from: stranger })).toEqual({
      errorName: "AccountExists",
      args: [HEALTHY],
    });
    expect(await revertOf(call("createAccount", [0n]), { from: stranger })).toEqual({
      errorName: "AccountExists",
      args: [0n],
    });
    const config = { ...market(ETH).config, feedId: feed("77") };
    for (const data of [
      call("createMarket", [400n, "DOGE", config]),
      call("setMarketConfig", [ETH, config]),
      call("setGlobalConfig", [0n, 0n, 0n, 60n]),
    ]) {
      expect(await revertOf(data, { from: stranger })).toEqual({
        errorName: "OwnableUnauthorizedAccount",
        args: [stranger],
      });
    }
    const owner = d.deployer;
    for (const bad of [
      { ...config, feedId: feed("00") },
      { ...config, skewScale: 0n },
      { ...config, takerFeeRatio: WAD },
      { ...config, maintenanceMarginScalar: WAD + 1n },
      { ...config, makerFeeRatio: 0n, takerFeeRatio: 0n }, // a window whose cap is 0
      { ...config, maxSecondsInLiquidationWindow: 3601n },
    ]) {
      expect((await revertOf(call("createMarket", [400n, "DOGE", bad]), { from: owner })).errorName).toBe(
        "InvalidMarketConfig",
      );
    }
    expect((await revertOf(call("createMarket", [ETH, "ETH again", config]), { from: owner })).errorName).toBe(
      "InvalidMarketConfig",
    );
    expect((await revertOf(call("setGlobalConfig", [2n, 1n, 0n, 60n]), { from: owner })).errorName).toBe(
      "InvalidMarketConfig",
    );
    // a window is resized, never switched on or off
    const windowed = { ...market(SOL).config, maxSecondsInLiquidationWindow: 10n };
    expect((await revertOf(call("setMarketConfig", [SOL, windowed]), { from: owner })).errorName).toBe(
      "InvalidMarketConfig",
    );
    const unwindowed = { ...market(ETH).config, maxSecondsInLiquidationWindow: 0n };
    expect((await revertOf(call("setMarketConfig", [ETH, unwindowed]), { from: owner })).errorName).toBe(
      "InvalidMarketConfig",
    );
    const resized = { ...market(ETH).config, maxSecondsInLiquidationWindow: 20n };
    const configured = await send(call("setMarketConfig", [ETH, resized]), { from: trader(0) });
    expect(named(configured, "MarketConfigured")).toEqual([{ marketId: ETH, config: resized }]);
    // the largest uint128 is an id like any other; its events carry it exactly
    const created = await send(call("createAccount", [MAX_UINT128 - 1n]), { from: trader(9) });
    expect(named(created, "AccountCreated")).toEqual([{ accountId: MAX_UINT128 - 1n, owner: trader(9).address }]);
  });
});

describe("CrossMarginEngine: liquidation", () => {
  it("flags (seizing the collateral), closes within the window, continues in the next windows", async () => {
    const t0 = (await now()) + 1n;
    const h = await mirror(BIG_ETH, prices("90"));
    expect(h.liquidatable).toBe(true);
    const keeperBefore = await balance(keeperAccount.address);
    await at(t0);
    const first = await send(call("liquidate", [BIG_ETH, [update(ETH, "90", t0)]]), { value: d.updateFee });
    expect(named(first, "AccountFlaggedForLiquidation")).toEqual([
      {
        accountId: BIG_ETH,
        availableMargin: h.availableMargin,
        requiredMaintenanceMargin: h.requiredMaintenance,
        liquidationReward: h.liquidationReward,
        flagReward: h.liquidationReward,
      },
    ]);
    // 30 ETH x 90 x 1% = 27 of flag reward, within [1, 100]
    expect(h.liquidationReward).toBe(w(27));
    expect(named(first, "PositionLiquidated")).toEqual([
      { accountId: BIG_ETH, marketId: ETH, amountLiquidated: w(10), currentPositionSize: w(20) },
    ]);
    expect(named(first, "AccountLiquidationAttempt")).toEqual([
      { accountId: BIG_ETH, reward: w(27), fullLiquidation: false },
    ]);
    expect(await balance(keeperAccount.address)).toBe(keeperBefore + w(27));
    expect(await read("getCollateral", [BIG_ETH])).toBe(0n);
    expect(await read("isFlagged", [BIG_ETH])).toBe(true);
    expect(await read("flaggedAccounts")).toEqual([BIG_ETH]);
    expect(await read("liquidationCapacity", [ETH])).toEqual([0n, w(10), t0]);

    // within the window: nothing to close; liquidate says so, liquidateMany skips (3)
    await at(t0 + 8n);
    const stuck = await send(call("liquidate", [BIG_ETH]));
    expect(named(stuck, "AccountLiquidationAttempt")).toEqual([
      { accountId: BIG_ETH, reward: 0n, fullLiquidation: false },
    ]);
    expect(named(stuck, "PositionLiquidated")).toEqual([]);
    await at(t0 + 9n);
    const skipped = await send(call("liquidateMany", [[BIG_ETH], []]));
    expect(named(skipped, "LiquidationSkipped")).toEqual([{ accountId: BIG_ETH, reason: 3 }]);

    // the next window, long after the price went stale: continuing needs no price, and pays the step reward
    await at(t0 + 10n);
    const second = await send(call("liquidate", [BIG_ETH]));
    expect(named(second, "PositionLiquidated")).toEqual([
      { accountId: BIG_ETH, marketId: ETH, amountLiquidated: w(10), currentPositionSize: w(10) },
    ]);
    expect(named(second, "AccountLiquidationAttempt")).toEqual([
      { accountId: BIG_ETH, reward: GLOBAL.stepReward, fullLiquidation: false },
    ]);
    await at(t0 + 200n);
    const third = await send(call("liquidate", [BIG_ETH]));
    expect(named(third, "PositionLiquidated")).toEqual([
      { accountId: BIG_ETH, marketId: ETH, amountLiquidated: w(10), currentPositionSize: 0n },
    ]);
    expect(named(third, "AccountLiquidationAttempt")).toEqual([
      { accountId: BIG_ETH, reward: GLOBAL.stepReward, fullLiquidation: true },
    ]);
    expect(await read("isFlagged", [BIG_ETH])).toBe(false);
    expect(await read("flaggedAccounts")).toEqual([]);
    expect(await read("getOpenPosition", [BIG_ETH, ETH])).toEqual([0n, 0n]);
    expect(await balance(keeperAccount.address)).toBe(keeperBefore + w(27) + 2n * GLOBAL.stepReward);
    // a fully liquidated account is an empty one
    expect(await revertOf(call("liquidate", [BIG_ETH]))).toEqual({
      errorName: "NotEligibleForLiquidation",
      args: [BIG_ETH],
    });
  });

  it("a flagged account cannot trade nor move collateral", async () => {
    const t = (await now()) + 1n;
    await at(t);
    await send(call("liquidate", [BIG_ETH, [update(ETH, "90", t)]]), { value: d.updateFee });
    for (const data of [
      call("modifyPosition", [BIG_ETH, ETH, -w(1), []]),
      call("modifyCollateral", [BIG_ETH, 0n, w(1)]),
    ]) {
      expect(await revertOf(data, { from: trader(2).address })).toEqual({
        errorName: "AccountFlagged",
        args: [BIG_ETH],
      });
    }
  });

  it("a healthy, unknown or empty account: liquidate reverts, liquidateMany skips (1, 2, 2)", async () => {
    expect(await revertOf(call("liquidate", [HEALTHY]))).toEqual({
      errorName: "NotEligibleForLiquidation",
      args: [HEALTHY],
    });
    expect(await revertOf(call("liquidate", [UNKNOWN]))).toEqual({ errorName: "AccountNotFound", args: [UNKNOWN] });
    expect(await revertOf(call("liquidate", [EMPTY]))).toEqual({
      errorName: "NotEligibleForLiquidation",
      args: [EMPTY],
    });
    const receipt = await send(call("liquidateMany", [[HEALTHY, UNKNOWN, EMPTY], []]));
    expect(named(receipt, "LiquidationSkipped")).toEqual([
      { accountId: HEALTHY, reason: 1 },
      { accountId: UNKNOWN, reason: 2 },
      { accountId: EMPTY, reason: 2 },
    ]);
  });

  it("liquidateMany: one update for all, each account as liquidate would, skips in place; pays the sum", async () => {
    const t = (await now()) + 1n;
    const expected = new Map<bigint, bigint>();
    for (const id of [ONE, TWO, THREE]) expected.set(id, (await mirror(id, prices("80"))).liquidationReward);
    const keeperBefore = await balance(keeperAccount.address);
    await at(t);
    const ids = [ONE, HEALTHY, TWO, UNKNOWN, THREE];
    const data = call("liquidateMany", [ids, [update(ETH, "80", t)]]);
    const total = [...expected.values()].reduce((a, b) => a + b, 0n);
    const simulated = await simulate(data, { value: d.updateFee, time: t });
    expect(
      simulated.ok &&
        decodeFunctionResult({ abi: crossMarginEngineAbi, functionName: "liquidateMany", data: simulated.data }),
    ).toBe(total);
    const receipt = await send(data, { value: d.updateFee });
    const attempts = named(receipt, "AccountLiquidationAttempt");
    expect(attempts.map((a) => a.accountId)).toEqual([ONE, TWO, THREE]);
    expect(named(receipt, "LiquidationSkipped")).toEqual([
      { accountId: HEALTHY, reason: 1 },
      { accountId: UNKNOWN, reason: 2 },
    ]);
    // ETH's window (10) takes ONE's 5 and TWO's 3, then 2 of THREE's 4; BTC and SOL close in full
    expect(named(receipt, "PositionLiquidated")).toEqual([
      { accountId: ONE, marketId: ETH, amountLiquidated: w(5), currentPositionSize: 0n },
      { accountId: TWO, marketId: ETH, amountLiquidated: w(3), currentPositionSize: 0n },
      { accountId: TWO, marketId: BTC, amountLiquidated: w("0.2"), currentPositionSize: 0n },
      { accountId: THREE, marketId: ETH, amountLiquidated: w(2), currentPositionSize: w(2) },
      { accountId: THREE, marketId: BTC, amountLiquidated: w("0.5"), currentPositionSize: 0n },
      { accountId: THREE, marketId: SOL, amountLiquidated: w(100), currentPositionSize: 0n },
    ]);
    expect(attempts.map((a) => [a.reward, a.fullLiquidation])).toEqual([
      [expected.get(ONE), true],
      [expected.get(TWO), true],
      [expected.get(THREE), false],
    ]);
    expect(await balance(keeperAccount.address)).toBe(keeperBefore + total);
    expect(await read("flaggedAccounts")).toEqual([THREE]);
  });

  it("liquidateFlagged continues the oldest flags first, up to its count; liquidateFlaggedAccounts only flagged ones", async () => {
    const t = (await now()) + 1n;
    await at(t);
    // BIG_ETH takes the ETH window; ONE and TWO are flagged behind it (TWO's BTC closes, its ETH waits)
    await send(call("liquidateMany", [[BIG_ETH, ONE, TWO], [update(ETH, "80", t)]]), { value: d.updateFee });
    expect(await read("flaggedAccounts")).toEqual([BIG_ETH, ONE, TWO]);
    expect(await read("getOpenPosition", [TWO, BTC])).toEqual([0n, 0n]);
    expect(await read("getOpenPosition", [TWO, ETH])).toEqual([w(3), w(100)]);

    await at(t + 10n);
    const receipt = await send(call("liquidateFlagged", [2n]));
    // BIG_ETH gets the new window's 10; ONE finds no capacity left and is passed over
    expect(named(receipt, "PositionLiquidated")).toEqual([
      { accountId: BIG_ETH, marketId: ETH, amountLiquidated: w(10), currentPositionSize: w(10) },
    ]);
    expect(named(receipt, "LiquidationSkipped")).toEqual([{ accountId: ONE, reason: 3 }]);
    expect(named(receipt, "AccountLiquidationAttempt")).toEqual([
      { accountId: BIG_ETH, reward: GLOBAL.stepReward, fullLiquidation: false },
    ]);

    await at(t + 20n);
    const targeted = await send(call("liquidateFlaggedAccounts", [[TWO, HEALTHY, UNKNOWN, ONE]]));
    expect(named(targeted, "PositionLiquidated")).toEqual([
      { accountId: TWO, marketId: ETH, amountLiquidated: w(3), currentPositionSize: 0n },
      { accountId: ONE, marketId: ETH, amountLiquidated: w(5), currentPositionSize: 0n },
    ]);
    expect(named(targeted, "LiquidationSkipped")).toEqual([
      { accountId: HEALTHY, reason: 1 },
      { accountId: UNKNOWN, reason: 2 },
    ]);
    expect(await read("flaggedAccounts")).toEqual([BIG_ETH]);
  });
});

describe("CrossMarginEngine: prices", () => {
  it("ERC-7412: a stale price reverts OracleDataRequired with the documented query; multicall[fulfill, liquidate] works", async () => {
    const stale = (await now()) + 61n;
    await at(stale);
    await testClient().mine({ blocks: 1 });
    const required = await revertOf(call("liquidate", [THREE]));
    expect(required.errorName).toBe("OracleDataRequired");
    expect(required.args[0]).toBe(d.engine);
    const query = decodeAbiParameters(ORACLE_QUERY, required.args[1] as Hex);
    expect(query).toEqual([1, 60n, [feed("e1"), feed("b2"), feed("5a")]]);
    // the views ask the same
    expect((await revertOf(call("canLiquidate", [TWO]))).args[1]).toBe(
      encodeAbiParameters(ORACLE_QUERY, [1, 60n, [feed("e1"), feed("b2")]]),
    );

    const t = stale + 1n;
    const fulfill = call("fulfillOracleQuery", [
      encodeAbiParameters(FULFILL_DATA, [1, 60n, [feed("e1")], [update(ETH, "90", t)]]),
    ]);
    // msg.value pays Pyth once: a second payer in the same multicall finds no ether
    const twice = call("multicall", [[fulfill, call("liquidate", [ONE, [update(ETH, "90", t)]])]]);
    expect((await revertOf(twice, { value: d.updateFee })).errorName).toBe("<no data>");
    // liquidate(uint128) refuses ether outside a multicall
    expect((await revertOf(call("liquidate", [ONE]), { value: 1n })).errorName).toBe("<no data>");
    const reward = (await mirror(ONE, prices("90"))).liquidationReward;
    await at(t);
    const receipt = await send(call("multicall", [[fulfill, call("liquidate", [ONE])]]), { value: d.updateFee });
    expect(named(receipt, "AccountFlaggedForLiquidation").map((e) => e.accountId)).toEqual([ONE]);
    expect(named(receipt, "AccountLiquidationAttempt")).toEqual([{ accountId: ONE, reward, fullLiquidation: true }]);
  });

  it("Pyth's fee: one wei short reverts InsufficientFee", async () => {
    const t = (await now()) + 1n;
    const data = call("liquidate", [ONE, [update(ETH, "90", t), update(BTC, "1000", t)]]);
    expect(await revertOf(data, { value: 2n * d.updateFee - 1n })).toEqual({ errorName: "InsufficientFee", args: [] });
    expect((await simulate(data, { value: 2n * d.updateFee })).ok).toBe(true);
  });

  it("an update older than Pyth's price does not override it", async () => {
    const t = await now();
    // ETH at 100 published at t; a crash published at t - 5 arrives late
    const late = call("liquidate", [ONE, [update(ETH, "50", t - 5n)]]);
    expect(await revertOf(late, { value: d.updateFee })).toEqual({
      errorName: "NotEligibleForLiquidation",
      args: [ONE],
    });
    await publishCrossMarginPrices(d, anvil?.rpcUrl as string, { ETH: "50" }, t - 5n);
    expect(await read("indexPrice", [ETH])).toBe(w(100));
    // a newer one does
    await publishCrossMarginPrices(d, anvil?.rpcUrl as string, { ETH: "50" }, t + 1n);
    expect(await read("indexPrice", [ETH])).toBe(w(50));
    expect(await read("canLiquidate", [ONE])).toBe(true);
  });

  it("uint128 ids far above 2^53 (the largest one) liquidate with exact ids in every event", async () => {
    const t = (await now()) + 1n;
    await at(t);
    const receipt = await send(call("liquidate", [MAX_UINT128, [update(SOL, "1", t)]]), { value: d.updateFee });
    for (const e of events(receipt)) expect((e.args as { accountId: bigint }).accountId).toBe(MAX_UINT128);
    expect(named(receipt, "PositionLiquidated")).toEqual([
      { accountId: MAX_UINT128, marketId: SOL, amountLiquidated: w(10), currentPositionSize: 0n },
    ]);
  });
});

describe("CrossMarginEngine: gas", () => {
  it("flag + close of a 1, 2 and 3-market account, and liquidateMany per account", async () => {
    const figures: Record<string, bigint> = {};
    // steady state: the keeper already holds the quote token (a first receipt would add a fresh storage slot)
    const mint = encodeFunctionData({ abi: testUSDAbi, functionName: "mint", args: [keeperAccount.address, 1n] });
    const minted = await walletOf(trader(0)).sendTransaction({ to: d.quoteToken, data: mint, gas: 100_000n });
    await client.waitForTransactionReceipt({ hash: minted });
    // continuing a flagged account: BIG_ETH flagged with 20 ETH left, its next window
    const t1 = (await now()) + 1n;
    await at(t1);
    await send(call("liquidate", [BIG_ETH, [update(ETH, "90", t1)]]), { value: d.updateFee });
    await at(t1 + 10n);
    figures["liquidate(id) continuing a flagged 1-market account"] = (await send(call("liquidate", [BIG_ETH]))).gasUsed;
    await at(t1 + 20n);
    figures["liquidateFlagged(1) finishing it"] = (await send(call("liquidateFlagged", [1n]))).gasUsed;
    // a wide ETH window, so that every position closes in full
    const wide = { ...market(ETH).config, maxLiquidationLimitAccumulationMultiplier: w(100) };
    await send(call("setMarketConfig", [ETH, wide]), { from: trader(0) });
    for (const [label, id] of [
      ["1 market", ONE],
      ["2 markets", TWO],
      ["3 markets", THREE],
    ] as const) {
      const before = await testClient().snapshot();
      const t = (await now()) + 1n;
      await at(t);
      const withUpdate = await send(call("liquidate", [id, [update(ETH, "80", t)]]), { value: d.updateFee });
      expect(named(withUpdate, "AccountLiquidationAttempt")[0]?.fullLiquidation).toBe(true);
      figures[`liquidate(id, [ETH update]) ${label}`] = withUpdate.gasUsed;
      await testClient().revert({ id: before });
      const again = await testClient().snapshot();
      await publishCrossMarginPrices(d, anvil?.rpcUrl as string, { ETH: "80" }, (await now()) + 1n);
      const bare = await send(call("liquidate", [id]));
      figures[`liquidate(id) ${label}, prices already fresh`] = bare.gasUsed;
      await testClient().revert({ id: again });
    }
    const t = (await now()) + 1n;
    await at(t);
    const many = await send(call("liquidateMany", [[ONE, TWO, THREE], [update(ETH, "80", t)]]), {
      value: d.updateFee,
    });
    expect(named(many, "AccountLiquidationAttempt").every((a) => a.fullLiquidation)).toBe(true);
    figures["liquidateMany([1, 2, 3 markets], [ETH update]) per account"] = many.gasUsed / 3n;
    console.log(
      Object.entries(figures)
        .map(([k, v]) => `${k}: ${v}`)
        .join("\n"),
    );
    for (const v of Object.values(figures)) expect(v < 400_000n).toBe(true);
  });
});

/**
 * Deploys the cross-margin reference exchange on a local Anvil: Pyth's MockPyth (its npm artifact, read at run
 * time), TestUSD (18-decimal quote, the deployer mints), CrossMarginEngine and its markets, each priced by a Pyth
 * feed whose first price is published at once; and opens accounts on it (mint, approve, create, deposit, orders
 * that each carry a fresh Pyth update and pay its fee).
 *
 * Transactions go out as in the Perp v2 devnet (perpV2/tx.ts): explicit gas limits, local nonces, no waiting between
 * them; CREATE addresses are known in advance, so under interval mining a deploy fills a block or two. Receipts are
 * checked in order and the first failure names its step.
 */
import {
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  custom,
  encodeDeployData,
  encodeFunctionData,
  getContractAddress,
  type Hex,
  http,
  maxUint256,
  type PublicClient,
  parseUnits,
  type Transport,
} from "viem";
import { mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { crossMarginEngineAbi, crossMarginEngineBytecode } from "../../../abi/CrossMarginEngine.ts";
import { testUSDAbi, testUSDBytecode } from "../../../abi/TestUSD.ts";
import type { CrossMarginGlobalConfig, CrossMarginMarketConfig } from "../../protocol/crossMargin/math.ts";
import { ANVIL_KEYS } from "../anvil.ts";
import { ANVIL_MNEMONIC } from "../exchange.ts";
import { encodeMockPythUpdate, mockPythAbi, mockPythArtifact } from "../hermes/updateData.ts";
import { type PendingTx, type StepRecord, TxSender, type Wallet } from "../perpV2/tx.ts";

const wad = (value: string) => parseUnits(value, 18);

/** Pyth's production feed ids (Pyth price feed ids page): ETH/USD and BTC/USD. */
export const PYTH_ETH_USD: Hex = "0xff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace";
export const PYTH_BTC_USD: Hex = "0xe62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43";

/** The first of the large account ids the devnet gives out (2^127: far above 2^53, where a JS number breaks). */
export const LARGE_ACCOUNT_ID_BASE = 170141183460469231731687303715884105728n;

export interface CrossMarginMarketSpec {
  readonly marketId: bigint;
  /** e.g. "ETH" (MarketCreated's name). */
  readonly name: string;
  readonly feedId: Hex;
  /** First Pyth price, a decimal string in USD. */
  readonly price: string;
  /** Pyth exponent of the feed (default -8, as Pyth's crypto feeds). */
  readonly expo?: number;
  /** The market's configuration except its feed id. */
  readonly config: Omit<CrossMarginMarketConfig, "feedId">;
}

/** Synthetix-like risk settings (v3 perps-market on Base, rounded): 0.02% maker, 0.05% taker, 50x at the minimum. */
const SYNTHETIX_LIKE = {
  makerFeeRatio: wad("0.0002"),
  takerFeeRatio: wad("0.0005"),
  initialMarginRatio: wad("2"),
  minimumInitialMarginRatio: wad("0.02"),
  maintenanceMarginScalar: wad("0.5"),
  flagRewardRatio: wad("0.0003"),
  minimumPositionMargin: wad("50"),
  maxLiquidationLimitAccumulationMultiplier: wad("1"),
  maxSecondsInLiquidationWindow: 30n,
} as const;

const defaultMarket = (marketId: bigint, name: string, feedId: Hex, price: string, skewScale: string) =>
  ({ marketId, name, feedId, price, config: { ...SYNTHETIX_LIKE, skewScale: wad(skewScale) } }) as const;

/** ETH at 3000 (skew scale 1M ETH) and BTC at 60000 (35k BTC). */
export const DEFAULT_CROSS_MARGIN_MARKETS: readonly CrossMarginMarketSpec[] = [
  defaultMarket(100n, "ETH", PYTH_ETH_USD, "3000", "1000000"),
  defaultMarket(200n, "BTC", PYTH_BTC_USD, "60000", "35000"),
];

/** Keeper rewards between 1 and 500 USD, 1 USD per continued step, prices at most 60 s old. */
export const DEFAULT_CROSS_MARGIN_GLOBAL: CrossMarginGlobalConfig = {
  minKeeperReward: wad("1"),
  maxKeeperReward: wad("500"),
  stepReward: wad("1"),
  maxPriceAge: 60n,
};

export interface CrossMarginDeployOptions {
  readonly markets?: readonly CrossMarginMarketSpec[];
  readonly global?: Partial<CrossMarginGlobalConfig>;
  /** MockPyth's fee per update (wei); nonzero by default so that fees are exercised. */
  readonly updateFeeWei?: bigint;
  /** MockPyth's validTimePeriod (seconds; only its deprecated getPrice reads it). Default 60. */
  readonly validTimePeriod?: bigint;
  /** TestUSD minted to the engine: the pool behind traders' profits and keepers' rewards (default "10000000"). */
  readonly rewardPool?: string;
  /** Deployer and owner of everything (default Anvil's first key). */
  readonly deployerKey?: Hex;
  readonly onStep?: (record: StepRecord) => void;
}

export interface CrossMarginMarketDeployment {
  readonly marketId: bigint;
  readonly name: string;
  readonly feedId: Hex;
  readonly expo: number;
  /** The first price in Pyth units (price x 10^expo USD). */
  readonly initialPrice: bigint;
  readonly config: CrossMarginMarketConfig;
}

export interface CrossMarginDeployment {
  readonly chainId: number;
  /** The engine's deployment block: the keeper's log backfill starts there. */
  readonly deployBlock: bigint;
  readonly deployer: Address;
  /** MockPyth. */
  readonly pyth: Address;
  /** MockPyth's fee per update, wei. */
  readonly updateFee: bigint;
  /** TestUSD (18 decimals). */
  readonly quoteToken: Address;
  readonly engine: Address;
  readonly global: CrossMarginGlobalConfig;
  readonly markets: readonly CrossMarginMarketDeployment[];
}

/** An RPC URL, or a client (and optionally the deployer's wallet) already connected. */
export type CrossMarginConnection = string | { readonly publicClient: PublicClient; readonly wallet?: Wallet };

/** Gas limits, about 1.4x what each step used on Anvil 1.7.1 (the run's gasUsed in the comments). */
export const CROSS_MARGIN_GAS = {
  mockPyth: 3_300_000n, // 2,326,178
  testUsd: 820_000n, // 577,752
  engine: 5_100_000n, // 3,642,809
  createMarket: 490_000n, // 344,430
  updatePrices: 200_000n, // per feed
  mint: 100_000n,
  approve: 70_000n,
  createAccount: 70_000n,
  deposit: 110_000n,
  order: 400_000n,
} as const;

interface Connected {
  readonly publicClient: PublicClient<Transport, Chain>;
  readonly chain: Chain;
  readonly transport: Transport;
}

async function connect(connection: CrossMarginConnection): Promise<Connected> {
  if (typeof connection === "string") {
    const transport = http(connection, { timeout: 60_000, retryCount: 0, batch: { wait: 0 } });
    const probe = createPublicClient({ chain: anvil, transport });
    const chain = { ...anvil, id: await probe.getChainId() };
    return { publicClient: createPublicClient({ chain, transport, pollingInterval: 50 }), chain, transport };
  }
  const client = connection.publicClient;
  const chain = client.chain ?? { ...anvil, id: await client.getChainId() };
  const transport = custom({ request: client.request });
  return { publicClient: createPublicClient({ chain, transport, pollingInterval: 50 }), chain, transport };
}

/** The connection's wallet, else the key's (default Anvil's first: the deployer). */
function walletFor(connection: CrossMarginConnection, c: Connected, key: Hex = ANVIL_KEYS[0]): Wallet {
  if (typeof connection !== "string" && connection.wallet) return connection.wallet;
  return createWalletClient({ chain: c.chain, transport: c.transport, account: privateKeyToAccount(key) });
}

const engineData = (functionName: string, args: readonly unknown[]) =>
  encodeFunctionData({ abi: crossMarginEngineAbi, functionName, args } as Parameters<typeof encodeFunctionData>[0]);

/** A MockPyth update for one market at `price` (decimal string in USD, or Pyth units) published at `publishTime`. */
export function marketPriceUpdate(
  market: Pick<CrossMarginMarketDeployment, "feedId" | "expo">,
  price: string | bigint,
  publishTime: bigint,
): Hex {
  const units = typeof price === "bigint" ? price : parseUnits(price, -market.expo);
  return encodeMockPythUpdate({ id: market.feedId, price: units, conf: 0n, expo: market.expo, publishTime });
}

/** Deploys MockPyth, TestUSD and CrossMarginEngine with its markets; publishes every market's first price. */
export async function deployCrossMargin(
  connection: CrossMarginConnection,
  options: CrossMarginDeployOptions = {},
): Promise<CrossMarginDeployment> {
  const specs = options.markets ?? DEFAULT_CROSS_MARGIN_MARKETS;
  const global = { ...DEFAULT_CROSS_MARGIN_GLOBAL, ...options.global };
  const updateFee = options.updateFeeWei ?? 10n ** 12n;
  const c = await connect(connection);
  const { publicClient } = c;
  const deployer = walletFor(connection, c, options.deployerKey);
  const from = deployer.account.address;
  const tx = new TxSender(publicClient, { onStep: options.onStep });
  const G = CROSS_MARGIN_GAS;
  const pending: PendingTx[] = [];

  const deploy = async (step: string, data: Hex, gas: bigint) => {
    const address = getContractAddress({ from, nonce: BigInt(await tx.nextNonce(from)) });
    pending.push(await tx.submit(deployer, `deploy ${step}`, { data, gas }));
    return address;
  };
  const pythArgs = [options.validTimePeriod ?? 60n, updateFee] as const;
  const pythCode = encodeDeployData({ abi: mockPythAbi, bytecode: mockPythArtifact().bytecode, args: pythArgs });
  const pyth = await deploy("MockPyth", pythCode, G.mockPyth);
  const quoteToken = await deploy(
    "TestUSD",
    encodeDeployData({ abi: testUSDAbi, bytecode: testUSDBytecode }),
    G.testUsd,
  );
  const g = global;
  const engineArgs = [pyth, quoteToken, g.minKeeperReward, g.maxKeeperReward, g.stepReward, g.maxPriceAge] as const;
  const engineCode = encodeDeployData({
    abi: crossMarginEngineAbi,
    bytecode: crossMarginEngineBytecode,
    args: engineArgs,
  });
  const engine = await deploy("CrossMarginEngine", engineCode, G.engine);
  const engineStep = pending.length - 1;

  const markets: CrossMarginMarketDeployment[] = [];
  for (const spec of specs) {
    const expo = spec.expo ?? -8;
    const config = { feedId: spec.feedId, ...spec.config };
    const data = engineData("createMarket", [spec.marketId, spec.name, config]);
    pending.push(await tx.submit(deployer, `createMarket ${spec.name}`, { to: engine, data, gas: G.createMarket }));
    const { marketId, name, feedId } = spec;
    markets.push({ marketId, name, feedId, expo, initialPrice: parseUnits(spec.price, -expo), config });
  }

  const now = (await publicClient.getBlock({ blockTag: "latest" })).timestamp;
  const updates = markets.map((m) => marketPriceUpdate(m, m.initialPrice, now));
  pending.push(
    await tx.submit(deployer, "MockPyth.updatePriceFeeds (first prices)", {
      to: pyth,
      data: encodeFunctionData({ abi: mockPythAbi, functionName: "updatePriceFeeds", args: [updates] }),
      gas: G.updatePrices * BigInt(Math.max(1, updates.length)),
      value: updateFee * BigInt(updates.length),
    }),
  );
  const pool = parseUnits(options.rewardPool ?? "10000000", 18);
  if (pool > 0n) {
    pending.push(
      await tx.submit(deployer, "TestUSD.mint (engine pool)", {
        to: quoteToken,
        data: encodeFunctionData({ abi: testUSDAbi, functionName: "mint", args: [engine, pool] }),
        gas: G.mint,
      }),
    );
  }
  const receipts = await tx.confirm(pending);
  const deployBlock = receipts[engineStep]?.blockNumber;
  if (deployBlock === undefined) throw new Error("deployCrossMargin: no receipt for the engine");
  return { chainId: c.chain.id, deployBlock, deployer: from, pyth, updateFee, quoteToken, engine, global, markets };
}

export interface CrossMarginPositionSpec {
  /** Market id, or its name. */
  readonly market: bigint | string;
  /** Base units: a decimal string ("-1.5"), or WAD. */
  readonly size: string | bigint;
}

export interface CrossMarginAccountSpec {
  /** Anvil mnemonic index of the owner. */
  readonly trader: number;
  /** Default LARGE_ACCOUNT_ID_BASE + the spec's index. */
  readonly accountId?: bigint;
  /** TestUSD deposited, a decimal string or WAD. */
  readonly collateral: string | bigint;
  readonly positions?: readonly CrossMarginPositionSpec[];
}

export interface OpenedCrossMarginAccount {
  readonly accountId: bigint;
  readonly owner: Address;
  readonly collateral: bigint;
  readonly positions: readonly { readonly marketId: bigint; readonly size: bigint }[];
}

export interface OpenAccountsOptions {
  /** Prices the orders' updates carry, by market name (decimal USD); default each feed's current price. */
  readonly prices?: Readonly<Record<string, string>>;
  readonly mnemonic?: string;
  readonly onStep?: (record: StepRecord) => void;
}

const toWad = (v: string | bigint) => (typeof v === "bigint" ? v : wad(v));

/**
 * Opens accounts: TestUSD minted to each owner (by the deployer), approved, the account created, the collateral
 * deposited, then the orders in the given order, each with a fresh MockPyth update of its market (published at the
 * head's timestamp) and its fee. An order the engine refuses (InsufficientMargin) throws, naming it.
 */
export async function openCrossMarginAccounts(
  deployment: CrossMarginDeployment,
  connection: CrossMarginConnection,
  specs: readonly CrossMarginAccountSpec[],
  options: OpenAccountsOptions = {},
): Promise<OpenedCrossMarginAccount[]> {
  const c = await connect(connection);
  const { publicClient } = c;
  const deployer = walletFor(connection, c);
  const tx = new TxSender(publicClient, { onStep: options.onStep });
  const G = CROSS_MARGIN_GAS;
  const market = (ref: bigint | string) => {
    const m = deployment.markets.find((x) => (typeof ref === "bigint" ? x.marketId === ref : x.name === ref));
    if (!m) throw new Error(`openCrossMarginAccounts: no market ${String(ref)}`);
    return m;
  };
  // each order's update: the given price or the feed's current one, published at the head's time, or a second after
  // the feed's last publish time when that is not older (MockPyth ignores an update that is not newer)
  const head = (await publicClient.getBlock({ blockTag: "latest" })).timestamp;
  const updates = new Map<bigint, Hex>();
  for (const m of deployment.markets) {
    const stored = await publicClient.readContract({
      address: deployment.pyth,
      abi: mockPythAbi,
      functionName: "getPriceUnsafe",
      args: [m.feedId],
    });
    const override = options.prices?.[m.name];
    const price = override ? parseUnits(override, -m.expo) : stored.price;
    // never ahead of the chain's clock unless a new price needs a newer time (MockPyth keeps only newer prices): a
    // publish time in the future would hide the next update made at the chain's time
    const publishTime =
      head > stored.publishTime ? head : price !== stored.price ? stored.publishTime + 1n : stored.publishTime;
    updates.set(m.marketId, marketPriceUpdate(m, price, publishTime));
  }
  const opened: OpenedCrossMarginAccount[] = specs.map((spec, i) => ({
    accountId: spec.accountId ?? LARGE_ACCOUNT_ID_BASE + BigInt(i),
    owner: mnemonicToAccount(options.mnemonic ?? ANVIL_MNEMONIC, { addressIndex: spec.trader }).address,
    collateral: toWad(spec.collateral),
    positions: (spec.positions ?? []).map((p) => ({ marketId: market(p.market).marketId, size: toWad(p.size) })),
  }));

  // 1. the deployer mints to every owner (all before any deposit: different senders are not ordered in a block)
  const mints: PendingTx[] = [];
  for (const a of opened) {
    mints.push(
      await tx.submit(deployer, `TestUSD.mint ${a.owner}`, {
        to: deployment.quoteToken,
        data: encodeFunctionData({ abi: testUSDAbi, functionName: "mint", args: [a.owner, a.collateral] }),
        gas: G.mint,
      }),
    );
  }
  await tx.confirm(mints);

  // 2. each owner's own sequence, in nonce order
  const pending: PendingTx[] = [];
  for (const [i, a] of opened.entries()) {
    const spec = specs[i] as CrossMarginAccountSpec;
    const wallet = createWalletClient({
      chain: c.chain,
      transport: c.transport,
      account: mnemonicToAccount(options.mnemonic ?? ANVIL_MNEMONIC, { addressIndex: spec.trader }),
    });
    const call = async (step: string, data: Hex, gas: bigint, value = 0n, to = deployment.engine) =>
      pending.push(await tx.submit(wallet, `${step} (account ${a.accountId})`, { to, data, gas, value }));
    await call(
      "TestUSD.approve",
      encodeFunctionData({ abi: testUSDAbi, functionName: "approve", args: [deployment.engine, maxUint256] }),
      G.approve,
      0n,
      deployment.quoteToken,
    );
    await call("createAccount", engineData("createAccount", [a.accountId]), G.createAccount);
    if (a.collateral > 0n) {
      await call("modifyCollateral", engineData("modifyCollateral", [a.accountId, 0n, a.collateral]), G.deposit);
    }
    for (const p of a.positions) {
      const m = market(p.marketId);
      const data = engineData("modifyPosition", [a.accountId, m.marketId, p.size, [updates.get(m.marketId) as Hex]]);
      await call(`modifyPosition ${m.name} ${p.size}`, data, G.order, deployment.updateFee);
    }
  }
  await tx.confirm(pending);
  return opened;
}

/**
 * Publishes prices on MockPyth (deployer pays the fee): by market name, decimal USD or Pyth units, at `publishTime`
 * (default the head's timestamp). MockPyth keeps a feed's price unless the new one is newer.
 */
export async function publishCrossMarginPrices(
  deployment: CrossMarginDeployment,
  connection: CrossMarginConnection,
  prices: Readonly<Record<string, string | bigint>>,
  publishTime?: bigint,
): Promise<void> {
  const c = await connect(connection);
  const wallet = walletFor(connection, c);
  const time = publishTime ?? (await c.publicClient.getBlock({ blockTag: "latest" })).timestamp;
  const updates = Object.entries(prices).map(([name, price]) => {
    const m = deployment.markets.find((x) => x.name === name);
    if (!m) throw new Error(`publishCrossMarginPrices: no market ${name}`);
    return marketPriceUpdate(m, price, time);
  });
  await new TxSender(c.publicClient).send(wallet, "MockPyth.updatePriceFeeds", {
    to: deployment.pyth,
    data: encodeFunctionData({ abi: mockPythAbi, functionName: "updatePriceFeeds", args: [updates] }),
    gas: CROSS_MARGIN_GAS.updatePrices * BigInt(Math.max(1, updates.length)),
    value: deployment.updateFee * BigInt(updates.length),
  });
}

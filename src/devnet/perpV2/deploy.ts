/**
 * Deploys Perpetual Protocol v2 ("Curie") from its real npm bytecode on a local Anvil: the eleven core contracts
 * (deployed directly and initialised, no proxies), Uniswap v3's factory and one pool per market, and per market a
 * Chainlink MockV3Aggregator behind Perp's ChainlinkPriceFeedV3 and PriceFeedDispatcher. The order, initialisers and
 * settings are those measured in /work/shared/notes/perp-v2-curie.md (Perp's own test fixture order).
 *
 * Every transaction goes out with an explicit gas limit and a local nonce, without waiting for the previous one:
 * addresses are known in advance (CREATE from the deployer's nonce, CREATE2 for the pools), so under interval mining
 * the whole deploy fills a few blocks. The receipts are then checked in order; the first failure names its step.
 */
import {
  type Abi,
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  encodeAbiParameters,
  encodeDeployData,
  getContractAddress,
  type Hex,
  http,
  keccak256,
  maxUint256,
  type PublicClient,
  parseUnits,
  type Transport,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { mockV3AggregatorAbi, mockV3AggregatorBytecode } from "../../../abi/MockV3Aggregator.ts";
import { testUSDCAbi, testUSDCBytecode } from "../../../abi/TestUSDC.ts";
import { ANVIL_KEYS } from "../anvil.ts";
import {
  accountBalanceAbi,
  baseTokenAbi,
  clearingHouseAbi,
  clearingHouseConfigAbi,
  collateralManagerAbi,
  exchangeAbi,
  insuranceFundAbi,
  marketRegistryAbi,
  orderBookAbi,
  uniswapV3FactoryAbi,
  uniswapV3PoolAbi,
  vaultAbi,
  virtualTokenAbi,
} from "./abis.ts";
import { type PerpV2ContractName, perpV2Artifact } from "./artifacts.ts";
import { priceToSqrtPriceX96 } from "./math.ts";
import { type PendingTx, type StepRecord, TxSender, type Wallet } from "./tx.ts";

export const USDC_DECIMALS = 6;
export const ORACLE_DECIMALS = 8;
/** The Uniswap v3 fee tier of every pool (tick spacing 60); Perp charges its own fee (`feeRatio`) instead. */
export const UNISWAP_FEE_TIER = 3000;

export interface PerpV2MarketSpec {
  /** Base token symbol, e.g. "vETH" (its ERC-20 name is "Perp Virtual ETH"). */
  readonly name: string;
  /** Initial index and pool price in USD, a decimal string. */
  readonly price: string;
  /** Exchange fee, 1e6 scale (default 1000 = 0.1%). */
  readonly feeRatio?: number;
  /** Share of the exchange fee that goes to the insurance fund, 1e6 scale (default 100000 = 10%). */
  readonly insuranceFundFeeRatio?: number;
  /** Ticks a price may move per 15 s (default 1000, about 10%; 0 would pause the market). */
  readonly maxTickCrossedWithinBlock?: number;
  /** Pool observation slots (default 500; growing them costs about 11M gas). */
  readonly observationCardinality?: number;
}

/** The devnet's default markets: vETH at 2000 and vBTC at 30000. */
export const DEFAULT_PERP_V2_MARKETS: readonly PerpV2MarketSpec[] = [
  { name: "vETH", price: "2000" },
  { name: "vBTC", price: "30000" },
];

export interface MarkPriceConfig {
  /** ClearingHouseConfig.markPriceMarketTwapInterval, seconds (protocol default 1800; must be > 0). */
  readonly marketTwapInterval: number;
  /** ClearingHouseConfig.markPricePremiumInterval, seconds (protocol default 900; must be > 0). */
  readonly premiumInterval: number;
}

/** Both mark intervals at 1 s: the mark follows the pool at once, and there is no 30-minute warm-up. */
export const FAST_MARK_PRICE: MarkPriceConfig = { marketTwapInterval: 1, premiumInterval: 1 };
/** The protocol's defaults (ClearingHouseConfig.initialize). */
export const PROTOCOL_MARK_PRICE: MarkPriceConfig = { marketTwapInterval: 1800, premiumInterval: 900 };

export interface PerpV2DeployOptions {
  readonly markets?: readonly PerpV2MarketSpec[];
  /** "fast" (default, 1 s / 1 s), "protocol" (1800 / 900) or explicit intervals. */
  readonly markPrice?: "fast" | "protocol" | MarkPriceConfig;
  /**
   * Seconds the chain is advanced (evm_increaseTime + evm_mine) after the pools are initialised, so that their
   * TWAP reads do not revert `OLD`. Default: 60 with intervals under 10 s (the mark still reads a 15 s TWAP), else
   * twice the longest interval (3600 with the protocol's).
   */
  readonly warmUpSeconds?: number;
  /** USDC minted to the insurance fund, so that it can absorb bad debt (`CH_IIC`). Default "1000000". */
  readonly insuranceFundUsdc?: string;
  /** ClearingHouseConfig.settlementTokenBalanceCap in USDC units (default: the maximum; the protocol's 0 blocks every deposit). */
  readonly settlementTokenBalanceCap?: bigint;
  /** ChainlinkPriceFeedV3 timeout in seconds (default 86400) and its cached TWAP interval (default 900). */
  readonly chainlinkTimeout?: number;
  readonly chainlinkTwapInterval?: number;
  /** Deployer and owner of everything (default Anvil's first key). */
  readonly deployerKey?: Hex;
  /** Each confirmed step with its gas. */
  readonly onStep?: (record: StepRecord) => void;
}

export interface PerpV2MarketDeployment {
  readonly name: string;
  readonly baseToken: Address;
  readonly pool: Address;
  /** MockV3Aggregator (8 decimals): updateAnswer moves the index. */
  readonly aggregator: Address;
  readonly chainlinkPriceFeed: Address;
  /** The PriceFeedDispatcher the BaseToken reads (18 decimals). */
  readonly priceFeed: Address;
  readonly initialPrice: string;
}

export interface PerpV2Deployment {
  readonly chainId: number;
  /** The block of the ClearingHouse deployment: the keeper's log backfill starts there. */
  readonly deployBlock: bigint;
  readonly deployer: Address;
  readonly clearingHouse: Address;
  readonly clearingHouseConfig: Address;
  readonly vault: Address;
  readonly accountBalance: Address;
  readonly exchange: Address;
  readonly orderBook: Address;
  readonly marketRegistry: Address;
  readonly insuranceFund: Address;
  readonly collateralManager: Address;
  readonly quoteToken: Address;
  /** TestUSDC (6 decimals, the deployer mints): the settlement token. */
  readonly usdc: Address;
  readonly uniswapV3Factory: Address;
  readonly markPrice: MarkPriceConfig;
  readonly markets: readonly PerpV2MarketDeployment[];
}

/**
 * Gas limits: about 1.4x what each step used on Anvil 1.7.1 (the run's gasUsed in the comments), rounded up. They also
 * decide how many transactions one 30M block packs under interval mining, so they are not simply huge.
 */
export const PERP_V2_DEPLOY_GAS = {
  skipNonce: 21_000n,
  testUsdc: 820_000n, // 577,844
  aggregator: 620_000n, // 440,479
  chainlinkPriceFeedV3: 1_450_000n, // 1,033,533
  priceFeedDispatcher: 950_000n, // 672,815
  uniswapV3Factory: 7_650_000n, // 5,440,656
  createPool: 6_400_000n, // 4,558,970
  initialize: 450_000n, // 93,248 (OrderBook) .. 309,581 (ClearingHouse)
  setter: 100_000n, // 29,795 .. 58,599
  mintMaximumTo: 100_000n, // 70,596
  poolInitialize: 100_000n, // 70,472
  addPool: 200_000n, // 139,468
  mint: 100_000n, // 70,242
  /** Perp's own contracts, deployed without proxies. */
  contracts: {
    QuoteToken: 2_050_000n, // 1,450,857
    BaseToken: 2_800_000n, // 1,987,310
    ClearingHouseConfig: 1_400_000n, // 972,255
    MarketRegistry: 2_850_000n, // 2,016,986
    OrderBook: 7_200_000n, // 5,126,581
    AccountBalance: 4_050_000n, // 2,886,773
    Exchange: 6_000_000n, // 4,279,400
    InsuranceFund: 2_750_000n, // 1,961,230
    Vault: 7_000_000n, // 4,984,512
    CollateralManager: 3_200_000n, // 2,277,387
    ClearingHouse: 7_150_000n, // 5,104,060
  },
} as const;

/** Observation slots added per transaction, and the gas for n of them (11,125,678 for 499 in the run). */
const CARDINALITY_STEP = 600;
function cardinalityGas(added: number): bigint {
  return ((BigInt(added) * 22_300n + 60_000n) * 14n) / 10n;
}

type DeployArtifact = { abi: Abi; bytecode: Hex };

/** Deploys Perp v2 with its markets on the Anvil at `rpcUrl` and returns every address. */
export async function deployPerpV2(rpcUrl: string, options: PerpV2DeployOptions = {}): Promise<PerpV2Deployment> {
  const specs = options.markets ?? DEFAULT_PERP_V2_MARKETS;
  if (specs.length === 0) throw new Error("deployPerpV2: no markets");
  const markPrice =
    options.markPrice === "protocol"
      ? PROTOCOL_MARK_PRICE
      : options.markPrice === "fast" || options.markPrice === undefined
        ? FAST_MARK_PRICE
        : options.markPrice;
  if (markPrice.marketTwapInterval <= 0 || markPrice.premiumInterval <= 0)
    throw new Error("deployPerpV2: mark price intervals must be > 0 (CHC_IMPMTI / CHC_IMPPI)");

  const transport = http(rpcUrl, { timeout: 60_000, retryCount: 0, batch: { wait: 0 } });
  const publicClient = createPublicClient({ chain: anvil, transport, pollingInterval: 50 }) as PublicClient<
    Transport,
    Chain
  >;
  const chainId = await publicClient.getChainId();
  const chain = { ...anvil, id: chainId };
  const deployer: Wallet = createWalletClient({
    chain,
    transport,
    account: privateKeyToAccount(options.deployerKey ?? ANVIL_KEYS[0]),
  });
  const from = deployer.account.address;
  const tx = new TxSender(publicClient, { onStep: options.onStep });
  const pending: PendingTx[] = [];
  const G = PERP_V2_DEPLOY_GAS;

  const nextAddress = async () => getContractAddress({ from, nonce: BigInt(await tx.nextNonce(from)) });
  const deploy = async (step: string, artifact: DeployArtifact, args: readonly unknown[], gas: bigint) => {
    const address = await nextAddress();
    const data = encodeDeployData({ abi: artifact.abi, bytecode: artifact.bytecode, args } as Parameters<
      typeof encodeDeployData
    >[0]);
    pending.push(await tx.submit(deployer, `deploy ${step}`, { data, gas }));
    return address;
  };
  const perp = (name: PerpV2ContractName) => perpV2Artifact(name);
  const call = async (
    step: string,
    address: Address,
    abi: Abi,
    functionName: string,
    args: readonly unknown[],
    gas: bigint,
  ) => {
    pending.push(await tx.submitCall(deployer, step, { address, abi, functionName, args, gas } as never));
  };
  /** Burns nonces (self-transfers) until the next CREATE address satisfies `ok`. */
  const skipUntil = async (ok: (address: Address) => boolean, what: string) => {
    for (let i = 0; !ok(await nextAddress()); i++) {
      if (i >= 256) throw new Error(`deployPerpV2: no nonce within 256 gives ${what}`);
      pending.push(await tx.submit(deployer, `skip nonce (${what})`, { to: from, data: "0x", gas: G.skipNonce }));
    }
  };

  // 1. settlement token
  const usdc = await deploy("TestUSDC", { abi: testUSDCAbi, bytecode: testUSDCBytecode }, [], G.testUsdc);

  // 2-4. per market: aggregator -> ChainlinkPriceFeedV3 -> PriceFeedDispatcher (the BaseToken's price feed)
  const oracles: { aggregator: Address; chainlinkPriceFeed: Address; priceFeed: Address }[] = [];
  for (const spec of specs) {
    const aggregator = await deploy(
      `MockV3Aggregator ${spec.name}`,
      { abi: mockV3AggregatorAbi, bytecode: mockV3AggregatorBytecode },
      [ORACLE_DECIMALS, parseUnits(spec.price, ORACLE_DECIMALS)],
      G.aggregator,
    );
    const chainlinkPriceFeed = await deploy(
      `ChainlinkPriceFeedV3 ${spec.name}`,
      perp("ChainlinkPriceFeedV3"),
      [aggregator, BigInt(options.chainlinkTimeout ?? 86_400), BigInt(options.chainlinkTwapInterval ?? 900)],
      G.chainlinkPriceFeedV3,
    );
    const priceFeed = await deploy(
      `PriceFeedDispatcher ${spec.name}`,
      perp("PriceFeedDispatcher"),
      [chainlinkPriceFeed],
      G.priceFeedDispatcher,
    );
    oracles.push({ aggregator, chainlinkPriceFeed, priceFeed });
  }

  // 5. QuoteToken, at a high address: every base token must sort below it (MR_IB; base is the pool's token0)
  await skipUntil((a) => BigInt(a) >= 0xc0n << 152n, "a quote token address >= 0xc0…");
  const quoteToken = await deploy("QuoteToken", perp("QuoteToken"), [], G.contracts.QuoteToken);
  await call(
    "QuoteToken.initialize",
    quoteToken,
    virtualTokenAbi,
    "initialize",
    ["Perp Virtual USD", "vUSD"],
    G.initialize,
  );

  // 6. BaseTokens, each below the quote token
  const baseTokens: Address[] = [];
  for (const [i, spec] of specs.entries()) {
    await skipUntil((a) => BigInt(a) < BigInt(quoteToken), `a ${spec.name} address below the quote token`);
    const baseToken = await deploy(`BaseToken ${spec.name}`, perp("BaseToken"), [], G.contracts.BaseToken);
    await call(
      `BaseToken ${spec.name}.initialize`,
      baseToken,
      baseTokenAbi,
      "initialize",
      [`Perp Virtual ${spec.name.replace(/^v/, "")}`, spec.name, oracles[i]?.priceFeed],
      G.initialize,
    );
    baseTokens.push(baseToken);
  }

  // 7. Uniswap v3 factory and one pool per market (CREATE2: the address is known before it is mined)
  const uniswapV3Factory = await deploy("UniswapV3Factory", perp("UniswapV3Factory"), [], G.uniswapV3Factory);
  const poolInitCodeHash = keccak256(perp("UniswapV3Pool").bytecode);
  const pools: Address[] = [];
  for (const [i, spec] of specs.entries()) {
    const baseToken = baseTokens[i] as Address;
    await call(
      `UniswapV3Factory.createPool ${spec.name}`,
      uniswapV3Factory,
      uniswapV3FactoryAbi,
      "createPool",
      [baseToken, quoteToken, UNISWAP_FEE_TIER],
      G.createPool,
    );
    pools.push(
      getContractAddress({
        opcode: "CREATE2",
        from: uniswapV3Factory,
        salt: keccak256(
          encodeAbiParameters(
            [{ type: "address" }, { type: "address" }, { type: "uint24" }],
            [baseToken, quoteToken, UNISWAP_FEE_TIER],
          ),
        ),
        bytecodeHash: poolInitCodeHash,
      }),
    );
  }

  // 8-18. the core, in the fixture's order
  const clearingHouseConfig = await deploy(
    "ClearingHouseConfig",
    perp("ClearingHouseConfig"),
    [],
    G.contracts.ClearingHouseConfig,
  );
  await call(
    "ClearingHouseConfig.initialize",
    clearingHouseConfig,
    clearingHouseConfigAbi,
    "initialize",
    [],
    G.initialize,
  );
  const marketRegistry = await deploy("MarketRegistry", perp("MarketRegistry"), [], G.contracts.MarketRegistry);
  await call(
    "MarketRegistry.initialize",
    marketRegistry,
    marketRegistryAbi,
    "initialize",
    [uniswapV3Factory, quoteToken],
    G.initialize,
  );
  const orderBook = await deploy("OrderBook", perp("OrderBook"), [], G.contracts.OrderBook);
  await call("OrderBook.initialize", orderBook, orderBookAbi, "initialize", [marketRegistry], G.initialize);
  const accountBalance = await deploy("AccountBalance", perp("AccountBalance"), [], G.contracts.AccountBalance);
  const exchange = await deploy("Exchange", perp("Exchange"), [], G.contracts.Exchange);
  const insuranceFund = await deploy("InsuranceFund", perp("InsuranceFund"), [], G.contracts.InsuranceFund);
  await call("InsuranceFund.initialize", insuranceFund, insuranceFundAbi, "initialize", [usdc], G.initialize);
  await call(
    "Exchange.initialize",
    exchange,
    exchangeAbi,
    "initialize",
    [marketRegistry, orderBook, clearingHouseConfig],
    G.initialize,
  );
  await call("Exchange.setAccountBalance", exchange, exchangeAbi, "setAccountBalance", [accountBalance], G.setter);
  await call("OrderBook.setExchange", orderBook, orderBookAbi, "setExchange", [exchange], G.setter);
  await call(
    "AccountBalance.initialize",
    accountBalance,
    accountBalanceAbi,
    "initialize",
    [clearingHouseConfig, orderBook],
    G.initialize,
  );
  const vault = await deploy("Vault", perp("Vault"), [], G.contracts.Vault);
  await call(
    "Vault.initialize",
    vault,
    vaultAbi,
    "initialize",
    [insuranceFund, clearingHouseConfig, accountBalance, exchange],
    G.initialize,
  );
  const collateralManager = await deploy(
    "CollateralManager",
    perp("CollateralManager"),
    [],
    G.contracts.CollateralManager,
  );
  // the values of Perp's test fixture (no non-USDC collateral is registered)
  await call(
    "CollateralManager.initialize",
    collateralManager,
    collateralManagerAbi,
    "initialize",
    [clearingHouseConfig, vault, 5, 750_000, 500_000, 2000, 30_000, 10_000n * 10n ** 6n, 500n * 10n ** 6n],
    G.initialize,
  );
  await call("Vault.setCollateralManager", vault, vaultAbi, "setCollateralManager", [collateralManager], G.setter);
  await call("InsuranceFund.setVault", insuranceFund, insuranceFundAbi, "setVault", [vault], G.setter);
  await call("AccountBalance.setVault", accountBalance, accountBalanceAbi, "setVault", [vault], G.setter);
  for (const [i, spec] of specs.entries()) {
    const pool = pools[i] as Address;
    await call(
      `BaseToken ${spec.name}.addWhitelist(pool)`,
      baseTokens[i] as Address,
      baseTokenAbi,
      "addWhitelist",
      [pool],
      G.setter,
    );
    await call(
      `QuoteToken.addWhitelist(pool ${spec.name})`,
      quoteToken,
      virtualTokenAbi,
      "addWhitelist",
      [pool],
      G.setter,
    );
  }

  // 20. ClearingHouse
  const clearingHouse = await deploy("ClearingHouse", perp("ClearingHouse"), [], G.contracts.ClearingHouse);
  const clearingHouseDeployStep = pending.length - 1;
  await call(
    "ClearingHouse.initialize",
    clearingHouse,
    clearingHouseAbi,
    "initialize",
    [clearingHouseConfig, vault, quoteToken, uniswapV3Factory, exchange, accountBalance, insuranceFund],
    G.initialize,
  );

  // 21. the settings without which nothing works
  await call(
    "ClearingHouseConfig.setSettlementTokenBalanceCap",
    clearingHouseConfig,
    clearingHouseConfigAbi,
    "setSettlementTokenBalanceCap",
    [options.settlementTokenBalanceCap ?? maxUint256],
    G.setter,
  );
  if (markPrice.marketTwapInterval !== PROTOCOL_MARK_PRICE.marketTwapInterval) {
    await call(
      "ClearingHouseConfig.setMarkPriceMarketTwapInterval",
      clearingHouseConfig,
      clearingHouseConfigAbi,
      "setMarkPriceMarketTwapInterval",
      [markPrice.marketTwapInterval],
      G.setter,
    );
  }
  if (markPrice.premiumInterval !== PROTOCOL_MARK_PRICE.premiumInterval) {
    await call(
      "ClearingHouseConfig.setMarkPricePremiumInterval",
      clearingHouseConfig,
      clearingHouseConfigAbi,
      "setMarkPricePremiumInterval",
      [markPrice.premiumInterval],
      G.setter,
    );
  }

  // 22. virtual token supply to the ClearingHouse, which may then transfer it
  await call(
    "QuoteToken.mintMaximumTo(CH)",
    quoteToken,
    virtualTokenAbi,
    "mintMaximumTo",
    [clearingHouse],
    G.mintMaximumTo,
  );
  await call("QuoteToken.addWhitelist(CH)", quoteToken, virtualTokenAbi, "addWhitelist", [clearingHouse], G.setter);
  for (const [i, spec] of specs.entries()) {
    const baseToken = baseTokens[i] as Address;
    await call(
      `BaseToken ${spec.name}.mintMaximumTo(CH)`,
      baseToken,
      baseTokenAbi,
      "mintMaximumTo",
      [clearingHouse],
      G.mintMaximumTo,
    );
    await call(
      `BaseToken ${spec.name}.addWhitelist(CH)`,
      baseToken,
      baseTokenAbi,
      "addWhitelist",
      [clearingHouse],
      G.setter,
    );
  }

  // 23. every callee learns the ClearingHouse
  for (const [name, address, abi] of [
    ["MarketRegistry", marketRegistry, marketRegistryAbi],
    ["OrderBook", orderBook, orderBookAbi],
    ["Exchange", exchange, exchangeAbi],
    ["AccountBalance", accountBalance, accountBalanceAbi],
    ["Vault", vault, vaultAbi],
  ] as const) {
    await call(`${name}.setClearingHouse`, address, abi, "setClearingHouse", [clearingHouse], G.setter);
  }

  // 24-26. markets: pool price and observations, registry, fees, tick limit
  for (const [i, spec] of specs.entries()) {
    const baseToken = baseTokens[i] as Address;
    const pool = pools[i] as Address;
    await call(
      `pool ${spec.name}.initialize`,
      pool,
      uniswapV3PoolAbi,
      "initialize",
      [priceToSqrtPriceX96(spec.price)],
      G.poolInitialize,
    );
    // each new slot is a fresh storage write (~22.3k gas): grow in steps that fit a block
    const cardinality = spec.observationCardinality ?? 500;
    if (!Number.isInteger(cardinality) || cardinality < 1 || cardinality > 65_535)
      throw new Error(`deployPerpV2: ${spec.name}: observationCardinality must be 1..65535`);
    for (let slots = 1; slots < cardinality; ) {
      const next = Math.min(cardinality, slots + CARDINALITY_STEP);
      await call(
        `pool ${spec.name}.increaseObservationCardinalityNext(${next})`,
        pool,
        uniswapV3PoolAbi,
        "increaseObservationCardinalityNext",
        [next],
        cardinalityGas(next - slots),
      );
      slots = next;
    }
    await call(
      `MarketRegistry.addPool ${spec.name}`,
      marketRegistry,
      marketRegistryAbi,
      "addPool",
      [baseToken, UNISWAP_FEE_TIER],
      G.addPool,
    );
    await call(
      `MarketRegistry.setFeeRatio ${spec.name}`,
      marketRegistry,
      marketRegistryAbi,
      "setFeeRatio",
      [baseToken, spec.feeRatio ?? 1000],
      G.setter,
    );
    await call(
      `MarketRegistry.setInsuranceFundFeeRatio ${spec.name}`,
      marketRegistry,
      marketRegistryAbi,
      "setInsuranceFundFeeRatio",
      [baseToken, spec.insuranceFundFeeRatio ?? 100_000],
      G.setter,
    );
    await call(
      `Exchange.setMaxTickCrossedWithinBlock ${spec.name}`,
      exchange,
      exchangeAbi,
      "setMaxTickCrossedWithinBlock",
      [baseToken, spec.maxTickCrossedWithinBlock ?? 1000],
      G.setter,
    );
  }

  // the insurance fund's capacity for bad debt
  await call(
    "TestUSDC.mint(insuranceFund)",
    usdc,
    testUSDCAbi,
    "mint",
    [insuranceFund, parseUnits(options.insuranceFundUsdc ?? "1000000", USDC_DECIMALS)],
    G.mint,
  );

  const receipts = await tx.confirm(pending);
  const deployBlock = receipts[clearingHouseDeployStep]?.blockNumber;
  if (deployBlock === undefined) throw new Error("deployPerpV2: no receipt for the ClearingHouse deployment");

  // what was predicted is what was deployed
  for (const [i, spec] of specs.entries()) {
    const registered = await publicClient.readContract({
      address: marketRegistry,
      abi: marketRegistryAbi,
      functionName: "getPool",
      args: [baseTokens[i] as Address],
    });
    if (registered.toLowerCase() !== (pools[i] as Address).toLowerCase())
      throw new Error(`deployPerpV2: ${spec.name}'s pool is ${registered}, predicted ${pools[i]}`);
  }

  // TWAP reads need history: `observe` reverts OLD for an interval longer than the pool's age
  const longest = Math.max(markPrice.marketTwapInterval, markPrice.premiumInterval);
  const warmUp = options.warmUpSeconds ?? (longest < 10 ? 60 : 2 * longest);
  if (warmUp > 0) await advanceTime(publicClient, warmUp);

  return {
    chainId,
    deployBlock,
    deployer: from,
    clearingHouse,
    clearingHouseConfig,
    vault,
    accountBalance,
    exchange,
    orderBook,
    marketRegistry,
    insuranceFund,
    collateralManager,
    quoteToken,
    usdc,
    uniswapV3Factory,
    markPrice,
    markets: specs.map((spec, i) => ({
      name: spec.name,
      baseToken: baseTokens[i] as Address,
      pool: pools[i] as Address,
      aggregator: oracles[i]?.aggregator as Address,
      chainlinkPriceFeed: oracles[i]?.chainlinkPriceFeed as Address,
      priceFeed: oracles[i]?.priceFeed as Address,
      initialPrice: spec.price,
    })),
  };
}

/** Moves the chain's clock forward and mines a block at the new time. */
export async function advanceTime(client: PublicClient, seconds: number): Promise<void> {
  if (!Number.isInteger(seconds) || seconds < 0)
    throw new Error(`advanceTime: not a whole number of seconds: ${seconds}`);
  await client.request({ method: "evm_increaseTime", params: [`0x${seconds.toString(16)}`] } as never);
  await client.request({ method: "evm_mine", params: [] } as never);
}

/** The deployment as plain JSON (block number as a number). */
export function perpV2DeploymentJson(d: PerpV2Deployment): Record<string, unknown> {
  return { ...d, deployBlock: Number(d.deployBlock) };
}

/** The keeper config for a Perp v2 devnet (the `perp-v2` adapter reads the ClearingHouse and its callees from it). */
export function perpV2KeeperConfig(
  d: PerpV2Deployment,
  rpcUrl: string,
  keeper: Record<string, unknown> = { pollIntervalMs: 250 },
): Record<string, unknown> {
  return {
    network: { name: "devnet-perp-v2", chainId: d.chainId, rpcUrl },
    exchange: { adapter: "perp-v2", address: d.clearingHouse, deployBlock: Number(d.deployBlock) },
    keeper,
  };
}

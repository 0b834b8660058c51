/**
 * Perp v2 ("Curie") discovered from its ClearingHouse alone: the config names one address (and the block to index
 * from), everything else is read from the chain at one block, and checked before the keeper trusts it.
 *
 *   ClearingHouse  getVault, getExchange, getAccountBalance, getOrderBook, getClearingHouseConfig, getInsuranceFund,
 *                  getQuoteToken, getUniswapV3Factory
 *   Exchange       getMarketRegistry          Vault  getSettlementToken, getCollateralManager, decimals
 *   markets        MarketRegistry keeps them in a mapping with no enumeration (no list view anywhere in
 *                  curie-contract 2.8.4), and `addPool` is the only way in, with no removal: the markets are the
 *                  registry's `PoolAdded` logs from the deploy block, read with eth_getLogs in bounded ranges, each then
 *                  read back (getPool, getFeeRatio, BaseToken's symbol, feed and status)
 *
 * Every address must have code, and every cross-reference the contracts keep must agree (each callee's
 * ClearingHouse, the Vault's and AccountBalance's view of their peers, the InsuranceFund's token and Vault...). A
 * wrong setup is a ConfigError that names what is wrong; a failing RPC is thrown as it is (retryable).
 */
import {
  type Abi,
  type Address,
  BaseError,
  decodeFunctionResult,
  encodeFunctionData,
  erc20Abi,
  formatUnits,
  getAbiItem,
  getAddress,
  type Hex,
  isAddressEqual,
  type PublicClient,
  RpcRequestError,
  zeroAddress,
} from "viem";
import { ConfigError } from "../../config/load.ts";
import {
  baseTokenAbi,
  clearingHouseAbi,
  clearingHouseConfigAbi,
  exchangeAbi,
  marketRegistryAbi,
  vaultAbi,
} from "./abi.ts";
import type { PerpV2Contracts as PerpV2LogContracts } from "./events.ts";
import {
  opsAccountBalanceAbi,
  opsBaseTokenAbi,
  opsClearingHouseConfigAbi,
  opsCollateralManagerAbi,
  opsExchangeAbi,
  opsInsuranceFundAbi,
  opsMarketRegistryAbi,
  opsOrderBookAbi,
  opsVaultAbi,
} from "./opsAbi.ts";
import type { MarketStatus } from "./records.ts";

/** One market (a base token and its Uniswap v3 pool), as listed at the discovery block. */
export interface PerpV2MarketInfo {
  readonly baseToken: Address;
  readonly pool: Address;
  /** BaseToken.symbol, e.g. "vETH". */
  readonly name: string;
  /** BaseToken.getPriceFeed: the index price source (a PriceFeedDispatcher on current deployments). */
  readonly priceFeed: Address;
  /** Perp's exchange fee (MarketRegistry.getFeeRatio), 1e6 scale. */
  readonly feeRatio: number;
  /** The Uniswap pool's fee tier (PoolAdded's feeRatio), 1e6 scale. */
  readonly uniswapFeeRatio: number;
  /** The insurance fund's share of the exchange fee, 1e6 scale. */
  readonly insuranceFundFeeRatio: number;
  /** Exchange.getMaxTickCrossedWithinBlock: 0 pauses trading (EX_MIP), liquidations included. */
  readonly maxTickCrossedWithinBlock: number;
  /** BaseToken.isOpen / isPaused / isClosed. */
  readonly status: MarketStatus;
  /** The block of its PoolAdded. */
  readonly addedAtBlock: bigint;
}

/** ClearingHouseConfig's parameters (ratios 1e6 scale, intervals in seconds), as PerpV2Global keeps them. */
export interface PerpV2Parameters {
  readonly mmRatio: bigint;
  readonly imRatio: bigint;
  readonly liquidationPenaltyRatio: bigint;
  readonly maxFundingRate: bigint;
  readonly twapInterval: bigint;
  readonly maxMarketsPerAccount: number;
  /** Total settlement token the Vault accepts (0 refuses every deposit: V_GTSTBC). */
  readonly settlementTokenBalanceCap: bigint;
  /** The mark price's TWAP intervals (getMarkPriceConfig, from 2.x); undefined where the view does not exist. */
  readonly markPrice: { readonly marketTwapInterval: bigint; readonly premiumInterval: bigint } | undefined;
}

/** Every contract of one Perp v2 deployment, its settlement token, markets and parameters. */
export interface PerpV2Contracts extends PerpV2LogContracts {
  readonly clearingHouse: Address;
  readonly clearingHouseConfig: Address;
  readonly vault: Address;
  readonly accountBalance: Address;
  readonly exchange: Address;
  readonly orderBook: Address;
  readonly marketRegistry: Address;
  readonly insuranceFund: Address;
  /** zeroAddress when the Vault has none (no collateral but the settlement token). */
  readonly collateralManager: Address;
  readonly quoteToken: Address;
  readonly uniswapV3Factory: Address;
  /** The Vault's settlement token (USDC), its decimals and symbol. */
  readonly settlementToken: Address;
  readonly settlementDecimals: number;
  readonly settlementSymbol: string;
  /** The markets' base tokens, in the order they were added (what the event decoder follows). */
  readonly baseTokens: readonly Address[];
  readonly markets: readonly PerpV2MarketInfo[];
  readonly parameters: PerpV2Parameters;
  /** The block everything was read at, and the first block the markets were looked for from. */
  readonly block: { readonly number: bigint; readonly hash: Hex };
  readonly deployBlock: bigint;
}

export interface DiscoverOptions {
  /** Read at this block (EIP-1898: every read pinned to the same block, whatever the chain does meanwhile). */
  readonly blockHash?: Hex;
  readonly blockNumber?: bigint;
  /** Default "latest". */
  readonly blockTag?: "latest" | "safe" | "finalized";
  /**
   * First block searched for the MarketRegistry's PoolAdded: the config's deployBlock (default 0). Markets added
   * before it are not found: give the block of the first market's addPool or earlier.
   */
  readonly deployBlock?: bigint;
  /** Largest eth_getLogs range (default 2000 blocks). */
  readonly maxLogRange?: number;
  /** Ranges asked at once (default 4). */
  readonly logConcurrency?: number;
  /** What the configured address is called in messages (default "exchange.address"). */
  readonly addressName?: string;
}

const POOL_ADDED = getAbiItem({ abi: marketRegistryAbi, name: "PoolAdded" });

/** Whether an RPC failure is the call reverting (as opposed to the node failing to answer). */
function isRevert(error: unknown): boolean {
  if (!(error instanceof BaseError)) return false;
  const rpc = error.walk((e) => e instanceof RpcRequestError) as RpcRequestError | null;
  if (rpc?.code === 3) return true;
  const text = `${error.shortMessage} ${error.details ?? ""} ${rpc?.message ?? ""}`;
  return /revert|invalid opcode|stack underflow/i.test(text);
}

/** Reads at one block hash, each failure a ConfigError naming the contract, its role and the view. */
class PinnedReader {
  constructor(
    private readonly client: PublicClient,
    readonly blockHash: Hex,
    readonly blockNumber: bigint,
  ) {}

  /** `who` is how the contract is named in messages ("the ClearingHouse's Vault"), `as` what it should be. */
  async read<T>(
    who: string,
    as: string,
    address: Address,
    abi: Abi,
    functionName: string,
    args: readonly unknown[] = [],
  ): Promise<T> {
    const data = encodeFunctionData({ abi, functionName, args } as Parameters<typeof encodeFunctionData>[0]);
    let answer: unknown;
    try {
      answer = await this.client.request({
        method: "eth_call",
        params: [{ to: address, data }, { blockHash: this.blockHash }],
      } as never);
    } catch (error) {
      if (isRevert(error)) {
        throw new ConfigError(`${who} ${address} does not answer as a Perp v2 ${as} (${functionName} reverted)`);
      }
      throw error;
    }
    if (answer === "0x") {
      throw new ConfigError(`${who} ${address} does not answer as a Perp v2 ${as} (${functionName} returned nothing)`);
    }
    try {
      return decodeFunctionResult({ abi, functionName, data: answer as Hex } as Parameters<
        typeof decodeFunctionResult
      >[0]) as T;
    } catch {
      throw new ConfigError(
        `${who} ${address} does not answer as a Perp v2 ${as} (${functionName}'s answer does not decode)`,
      );
    }
  }

  /** The contract must have code at the block. */
  async code(who: string, address: Address): Promise<void> {
    if (isAddressEqual(address, zeroAddress)) throw new ConfigError(`${who} is the zero address (not set up?)`);
    const code = await this.client.request({
      method: "eth_getCode",
      params: [address, { blockHash: this.blockHash }],
    } as never);
    if (typeof code !== "string" || code === "0x" || code === "") {
      throw new ConfigError(`${who} ${address} has no code at block ${this.blockNumber}`);
    }
  }
}

/** `actual` must be `expected`: "the Vault's ClearingHouse is 0x.., not 0x.. (exchange.address)". */
function agree(what: string, actual: Address, expected: Address, expectedName: string): void {
  if (!isAddressEqual(actual, expected)) {
    throw new ConfigError(`${what} is ${getAddress(actual)}, not ${getAddress(expected)} (${expectedName})`);
  }
}

/** Runs `tasks` with at most `limit` at once, results in order. */
async function inBatches<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await (tasks[i] as () => Promise<T>)();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, tasks.length)) }, worker));
  return results;
}

/** The MarketRegistry's PoolAdded logs in [from, to], in ranges of at most `range` blocks, in chain order. */
async function poolsAdded(
  client: PublicClient,
  registry: Address,
  from: bigint,
  to: bigint,
  range: number,
  concurrency: number,
): Promise<{ baseToken: Address; pool: Address; uniswapFeeRatio: number; blockNumber: bigint }[]> {
  const step = BigInt(range);
  const ranges: [bigint, bigint][] = [];
  for (let start = from; start <= to; start += step)
    ranges.push([start, start + step - 1n < to ? start + step - 1n : to]);
  const tasks = ranges.map(
    ([fromBlock, toBlock]) =>
      () =>
        client.getLogs({ address: registry, event: POOL_ADDED, fromBlock, toBlock, strict: true }),
  );
  const chunks = await inBatches(tasks, concurrency);
  const found: { baseToken: Address; pool: Address; uniswapFeeRatio: number; blockNumber: bigint }[] = [];
  for (const log of chunks.flat()) {
    const { baseToken, pool, feeRatio } = log.args;
    if (log.removed || baseToken === undefined || pool === undefined || feeRatio === undefined) continue;
    if (found.some((f) => isAddressEqual(f.baseToken, baseToken))) continue;
    found.push({ baseToken, pool, uniswapFeeRatio: feeRatio, blockNumber: log.blockNumber ?? 0n });
  }
  return found;
}

/**
 * Discovers a Perp v2 deployment from its ClearingHouse, at one block, and checks it (every address has code, every
 * cross-reference agrees). A wrong address or a broken deployment is a ConfigError that names what is wrong.
 */
export async function discoverPerpV2(
  client: PublicClient,
  clearingHouse: Address,
  options: DiscoverOptions = {},
): Promise<PerpV2Contracts> {
  const name = options.addressName ?? "exchange.address";
  const block = options.blockHash
    ? await client.getBlock({ blockHash: options.blockHash })
    : options.blockNumber !== undefined
      ? await client.getBlock({ blockNumber: options.blockNumber })
      : await client.getBlock({ blockTag: options.blockTag ?? "latest" });
  if (block.hash === null || block.number === null) throw new ConfigError("discovery needs a mined block, not pending");
  const deployBlock = options.deployBlock ?? 0n;
  if (deployBlock > block.number) {
    throw new ConfigError(`the deployBlock ${deployBlock} is above block ${block.number}: wrong chain or config`);
  }
  const r = new PinnedReader(client, block.hash, block.number);
  const ch = getAddress(clearingHouse);

  // the ClearingHouse and what it names
  await r.code(name, ch);
  const read = <T>(who: string, as: string, address: Address, abi: Abi, fn: string, args: readonly unknown[] = []) =>
    r.read<T>(who, as, address, abi, fn, args);
  const chRead = (fn: string) => read<Address>(name, "ClearingHouse", ch, clearingHouseAbi, fn);
  const vault = await chRead("getVault");
  const [exchange, accountBalance, orderBook, clearingHouseConfig, insuranceFund, quoteToken, uniswapV3Factory] =
    await Promise.all([
      chRead("getExchange"),
      chRead("getAccountBalance"),
      chRead("getOrderBook"),
      chRead("getClearingHouseConfig"),
      chRead("getInsuranceFund"),
      chRead("getQuoteToken"),
      chRead("getUniswapV3Factory"),
    ]);
  const its = (role: string) => `the ClearingHouse's ${role}`;
  await Promise.all([
    r.code(its("Vault"), vault),
    r.code(its("Exchange"), exchange),
    r.code(its("AccountBalance"), accountBalance),
    r.code(its("OrderBook"), orderBook),
    r.code(its("ClearingHouseConfig"), clearingHouseConfig),
    r.code(its("InsuranceFund"), insuranceFund),
    r.code(its("QuoteToken"), quoteToken),
    r.code(its("UniswapV3Factory"), uniswapV3Factory),
  ]);

  // each callee's view of the others
  const v = (fn: string) => read<Address>(its("Vault"), "Vault", vault, opsVaultAbi, fn);
  const x = (fn: string) => read<Address>(its("Exchange"), "Exchange", exchange, opsExchangeAbi, fn);
  const ab = (fn: string) =>
    read<Address>(its("AccountBalance"), "AccountBalance", accountBalance, opsAccountBalanceAbi, fn);
  const ob = (fn: string) => read<Address>(its("OrderBook"), "OrderBook", orderBook, opsOrderBookAbi, fn);
  const ifund = (fn: string) =>
    read<Address>(its("InsuranceFund"), "InsuranceFund", insuranceFund, opsInsuranceFundAbi, fn);
  const cfg = <T>(abi: Abi, fn: string) =>
    read<T>(its("ClearingHouseConfig"), "ClearingHouseConfig", clearingHouseConfig, abi, fn);

  const vaultCh = await v("getClearingHouse");
  agree("the Vault's ClearingHouse", vaultCh, ch, name);
  const [
    vaultAb,
    vaultEx,
    vaultCfg,
    vaultIf,
    settlementToken,
    collateralManager,
    vaultDecimals,
    exCh,
    marketRegistry,
    exOb,
    exAb,
    exCfg,
    abCh,
    abVault,
    abOb,
    abCfg,
    obCh,
    obEx,
    obMr,
    ifVault,
    ifToken,
  ] = await Promise.all([
    v("getAccountBalance"),
    v("getExchange"),
    v("getClearingHouseConfig"),
    v("getInsuranceFund"),
    read<Address>(its("Vault"), "Vault", vault, vaultAbi, "getSettlementToken"),
    v("getCollateralManager"),
    read<number>(its("Vault"), "Vault", vault, vaultAbi, "decimals"),
    x("getClearingHouse"),
    read<Address>(its("Exchange"), "Exchange", exchange, exchangeAbi, "getMarketRegistry"),
    x("getOrderBook"),
    x("getAccountBalance"),
    x("getClearingHouseConfig"),
    ab("getClearingHouse"),
    ab("getVault"),
    ab("getOrderBook"),
    ab("getClearingHouseConfig"),
    ob("getClearingHouse"),
    ob("getExchange"),
    ob("getMarketRegistry"),
    ifund("getVault"),
    ifund("getToken"),
  ]);
  agree("the Vault's AccountBalance", vaultAb, accountBalance, its("AccountBalance"));
  agree("the Vault's Exchange", vaultEx, exchange, its("Exchange"));
  agree("the Vault's ClearingHouseConfig", vaultCfg, clearingHouseConfig, its("ClearingHouseConfig"));
  agree("the Vault's InsuranceFund", vaultIf, insuranceFund, its("InsuranceFund"));
  agree("the Exchange's ClearingHouse", exCh, ch, name);
  agree("the Exchange's OrderBook", exOb, orderBook, its("OrderBook"));
  agree("the Exchange's AccountBalance", exAb, accountBalance, its("AccountBalance"));
  agree("the Exchange's ClearingHouseConfig", exCfg, clearingHouseConfig, its("ClearingHouseConfig"));
  agree("the AccountBalance's ClearingHouse", abCh, ch, name);
  agree("the AccountBalance's Vault", abVault, vault, its("Vault"));
  agree("the AccountBalance's OrderBook", abOb, orderBook, its("OrderBook"));
  agree("the AccountBalance's ClearingHouseConfig", abCfg, clearingHouseConfig, its("ClearingHouseConfig"));
  agree("the OrderBook's ClearingHouse", obCh, ch, name);
  agree("the OrderBook's Exchange", obEx, exchange, its("Exchange"));
  agree("the OrderBook's MarketRegistry", obMr, marketRegistry, "the Exchange's MarketRegistry");
  agree("the InsuranceFund's Vault", ifVault, vault, its("Vault"));
  agree("the InsuranceFund's token", ifToken, settlementToken, "the Vault's settlement token");

  // the registry, the settlement token, the collateral manager
  await Promise.all([
    r.code("the Exchange's MarketRegistry", marketRegistry),
    r.code("the Vault's settlement token", settlementToken),
    isAddressEqual(collateralManager, zeroAddress)
      ? Promise.resolve()
      : r.code("the Vault's CollateralManager", collateralManager),
  ]);
  const mr = (fn: string, args: readonly unknown[] = []) =>
    read<unknown>("the Exchange's MarketRegistry", "MarketRegistry", marketRegistry, opsMarketRegistryAbi, fn, args);
  const [mrCh, mrQuote, mrFactory, tokenDecimals, settlementSymbol] = await Promise.all([
    mr("getClearingHouse") as Promise<Address>,
    mr("getQuoteToken") as Promise<Address>,
    mr("getUniswapV3Factory") as Promise<Address>,
    read<number>("the Vault's settlement token", "settlement token (ERC-20)", settlementToken, erc20Abi, "decimals"),
    read<string>(
      "the Vault's settlement token",
      "settlement token (ERC-20)",
      settlementToken,
      erc20Abi,
      "symbol",
    ).catch((error: unknown) => {
      if (error instanceof ConfigError) return "settlement token"; // a bytes32 symbol (old tokens): not a reason to stop
      throw error;
    }),
  ]);
  agree("the MarketRegistry's ClearingHouse", mrCh, ch, name);
  agree("the MarketRegistry's QuoteToken", mrQuote, quoteToken, its("QuoteToken"));
  agree("the MarketRegistry's UniswapV3Factory", mrFactory, uniswapV3Factory, its("UniswapV3Factory"));
  if (tokenDecimals !== vaultDecimals) {
    throw new ConfigError(
      `the Vault keeps ${vaultDecimals} decimals but its settlement token ${settlementToken} has ${tokenDecimals}`,
    );
  }
  if (!isAddressEqual(collateralManager, zeroAddress)) {
    const cm = (fn: string) =>
      read<Address>(
        "the Vault's CollateralManager",
        "CollateralManager",
        collateralManager,
        opsCollateralManagerAbi,
        fn,
      );
    const [cmVault, cmCfg] = await Promise.all([cm("getVault"), cm("getClearingHouseConfig")]);
    agree("the CollateralManager's Vault", cmVault, vault, its("Vault"));
    agree("the CollateralManager's ClearingHouseConfig", cmCfg, clearingHouseConfig, its("ClearingHouseConfig"));
  }

  // the parameters
  const [
    mmRatio,
    imRatio,
    liquidationPenaltyRatio,
    maxFundingRate,
    twapInterval,
    maxMarketsPerAccount,
    settlementTokenBalanceCap,
    markPrice,
  ] = await Promise.all([
    cfg<number>(clearingHouseConfigAbi, "getMmRatio"),
    cfg<number>(clearingHouseConfigAbi, "getImRatio"),
    cfg<number>(clearingHouseConfigAbi, "getLiquidationPenaltyRatio"),
    cfg<number>(clearingHouseConfigAbi, "getMaxFundingRate"),
    cfg<number>(clearingHouseConfigAbi, "getTwapInterval"),
    cfg<number>(opsClearingHouseConfigAbi, "getMaxMarketsPerAccount"),
    cfg<bigint>(opsClearingHouseConfigAbi, "getSettlementTokenBalanceCap"),
    cfg<readonly [number, number]>(clearingHouseConfigAbi, "getMarkPriceConfig").then(
      ([marketTwapInterval, premiumInterval]) => ({
        marketTwapInterval: BigInt(marketTwapInterval),
        premiumInterval: BigInt(premiumInterval),
      }),
      (error: unknown) => {
        if (error instanceof ConfigError) return undefined; // a version before the mark price config
        throw error;
      },
    ),
  ]);
  if (mmRatio <= 0 || imRatio < mmRatio) {
    throw new ConfigError(
      `the ClearingHouseConfig ${clearingHouseConfig} has mmRatio ${mmRatio} and imRatio ${imRatio}: not a usable Perp v2`,
    );
  }

  // the markets: every PoolAdded from the deploy block, read back at the block
  const added = await poolsAdded(
    client,
    marketRegistry,
    deployBlock,
    block.number,
    options.maxLogRange ?? 2000,
    options.logConcurrency ?? 4,
  );
  const markets = await inBatches(
    added.map((a) => async (): Promise<PerpV2MarketInfo> => {
      const who = `the market ${a.baseToken} (PoolAdded in block ${a.blockNumber})`;
      await Promise.all([r.code(`${who}: its base token`, a.baseToken), r.code(`${who}: its pool`, a.pool)]);
      const base = <T>(abi: Abi, fn: string) => read<T>(`${who}: its base token`, "BaseToken", a.baseToken, abi, fn);
      const [pool, feeRatio, insuranceFundFeeRatio, symbol, priceFeed, isOpen, isPaused, isClosed, maxTick] =
        await Promise.all([
          read<Address>(
            "the Exchange's MarketRegistry",
            "MarketRegistry",
            marketRegistry,
            marketRegistryAbi,
            "getPool",
            [a.baseToken],
          ),
          mr("getFeeRatio", [a.baseToken]) as Promise<number>,
          mr("getInsuranceFundFeeRatio", [a.baseToken]) as Promise<number>,
          base<string>(baseTokenAbi, "symbol"),
          base<Address>(opsBaseTokenAbi, "getPriceFeed"),
          base<boolean>(baseTokenAbi, "isOpen"),
          base<boolean>(opsBaseTokenAbi, "isPaused"),
          base<boolean>(opsBaseTokenAbi, "isClosed"),
          read<number>(its("Exchange"), "Exchange", exchange, opsExchangeAbi, "getMaxTickCrossedWithinBlock", [
            a.baseToken,
          ]),
        ]);
      agree(`${who}: the MarketRegistry's pool`, pool, a.pool, "its PoolAdded");
      const status: MarketStatus = isClosed ? "closed" : isPaused ? "paused" : "open";
      if (isOpen !== (status === "open")) {
        throw new ConfigError(
          `${who}: its base token says isOpen ${isOpen}, isPaused ${isPaused}, isClosed ${isClosed}`,
        );
      }
      return {
        baseToken: getAddress(a.baseToken),
        pool: getAddress(a.pool),
        name: symbol,
        priceFeed,
        feeRatio,
        uniswapFeeRatio: a.uniswapFeeRatio,
        insuranceFundFeeRatio,
        maxTickCrossedWithinBlock: maxTick,
        status,
        addedAtBlock: a.blockNumber,
      };
    }),
    options.logConcurrency ?? 4,
  );

  return {
    clearingHouse: ch,
    clearingHouseConfig,
    vault,
    accountBalance,
    exchange,
    orderBook,
    marketRegistry,
    insuranceFund,
    collateralManager,
    quoteToken,
    uniswapV3Factory,
    settlementToken,
    settlementDecimals: vaultDecimals,
    settlementSymbol,
    baseTokens: markets.map((m) => m.baseToken),
    markets,
    parameters: {
      mmRatio: BigInt(mmRatio),
      imRatio: BigInt(imRatio),
      liquidationPenaltyRatio: BigInt(liquidationPenaltyRatio),
      maxFundingRate: BigInt(maxFundingRate),
      twapInterval: BigInt(twapInterval),
      maxMarketsPerAccount,
      settlementTokenBalanceCap,
      markPrice,
    },
    block: { number: block.number, hash: block.hash },
    deployBlock,
  };
}

/** A 1e6-scale ratio as a percentage: 62500 -> "6.25%". */
export function ratioPercent(ratio: bigint | number): string {
  return `${formatUnits(BigInt(ratio), 4)}%`;
}

/**
 * The line check-config prints: "a Perp v2 ClearingHouse with 2 markets (vETH, vBTC), Vault 0x.., settlement USDC
 * (6 decimals), mmRatio 6.25%, imRatio 10%, penalty 2.5%"; a market that is not open says so ("vBTC paused").
 */
export function describePerpV2(c: PerpV2Contracts): string {
  const markets = c.markets.map((m) => (m.status === "open" ? m.name : `${m.name} ${m.status}`));
  const count = `${c.markets.length} market${c.markets.length === 1 ? "" : "s"}`;
  const p = c.parameters;
  return (
    `a Perp v2 ClearingHouse with ${count}${markets.length > 0 ? ` (${markets.join(", ")})` : ""}, ` +
    `Vault ${c.vault}, settlement ${c.settlementSymbol} (${c.settlementDecimals} decimals), ` +
    `mmRatio ${ratioPercent(p.mmRatio)}, imRatio ${ratioPercent(p.imRatio)}, penalty ${ratioPercent(p.liquidationPenaltyRatio)}`
  );
}

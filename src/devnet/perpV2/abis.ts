/**
 * Hand-written ABI fragments of the Perp v2 ("Curie") functions and events the devnet calls, for typed viem calls.
 * The deploy itself encodes constructors from the npm artifacts (./artifacts.ts); these only name what is called.
 * Signatures are from @perp/curie-contract 2.8.4, @perp/perp-oracle-contract 0.6.7 and @uniswap/v3-core 1.0.1.
 */
import { parseAbi } from "viem";

/** QuoteToken and BaseToken (both VirtualToken). */
export const virtualTokenAbi = parseAbi([
  "function initialize(string nameArg, string symbolArg)",
  "function mintMaximumTo(address recipient)",
  "function addWhitelist(address account)",
  "function isInWhitelist(address account) view returns (bool)",
  "function balanceOf(address account) view returns (uint256)",
]);

export const baseTokenAbi = parseAbi([
  "function initialize(string nameArg, string symbolArg, address priceFeedArg)",
  "function mintMaximumTo(address recipient)",
  "function addWhitelist(address account)",
  "function getIndexPrice(uint256 interval) view returns (uint256)",
  "function getPriceFeed() view returns (address)",
  "function isOpen() view returns (bool)",
]);

export const uniswapV3FactoryAbi = parseAbi([
  "function createPool(address tokenA, address tokenB, uint24 fee) returns (address pool)",
  "function getPool(address tokenA, address tokenB, uint24 fee) view returns (address pool)",
]);

export const uniswapV3PoolAbi = parseAbi([
  "function initialize(uint160 sqrtPriceX96)",
  "function increaseObservationCardinalityNext(uint16 observationCardinalityNext)",
  "function slot0() view returns (uint160 sqrtPriceX96, int24 tick, uint16 observationIndex, uint16 observationCardinality, uint16 observationCardinalityNext, uint8 feeProtocol, bool unlocked)",
  "function liquidity() view returns (uint128)",
  "event Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick)",
]);

export const clearingHouseConfigAbi = parseAbi([
  "function initialize()",
  "function setSettlementTokenBalanceCap(uint256 cap)",
  "function setMarkPriceMarketTwapInterval(uint32 twapIntervalArg)",
  "function setMarkPricePremiumInterval(uint32 premiumIntervalArg)",
  "function getMarkPriceConfig() view returns (uint32 marketTwapInterval, uint32 premiumInterval)",
  "function getImRatio() view returns (uint24)",
  "function getMmRatio() view returns (uint24)",
  "function getLiquidationPenaltyRatio() view returns (uint24)",
  "function getTwapInterval() view returns (uint32)",
  "function getSettlementTokenBalanceCap() view returns (uint256)",
]);

export const marketRegistryAbi = parseAbi([
  "function initialize(address uniswapV3FactoryArg, address quoteTokenArg)",
  "function addPool(address baseToken, uint24 feeRatio) returns (address)",
  "function setFeeRatio(address baseToken, uint24 feeRatio)",
  "function setInsuranceFundFeeRatio(address baseToken, uint24 insuranceFundFeeRatioArg)",
  "function setClearingHouse(address clearingHouseArg)",
  "function getPool(address baseToken) view returns (address)",
  "event PoolAdded(address indexed baseToken, uint24 indexed feeRatio, address indexed pool)",
]);

export const orderBookAbi = parseAbi([
  "function initialize(address marketRegistryArg)",
  "function setExchange(address exchangeArg)",
  "function setClearingHouse(address clearingHouseArg)",
]);

export const exchangeAbi = parseAbi([
  "function initialize(address marketRegistryArg, address orderBookArg, address clearingHouseConfigArg)",
  "function setAccountBalance(address accountBalanceArg)",
  "function setMaxTickCrossedWithinBlock(address baseToken, uint24 maxTickCrossedWithinBlock)",
  "function setClearingHouse(address clearingHouseArg)",
  "function getMaxTickCrossedWithinBlock(address baseToken) view returns (uint24)",
  "function getAllPendingFundingPayment(address trader) view returns (int256)",
  "event FundingUpdated(address indexed baseToken, uint256 markTwap, uint256 indexTwap)",
]);

export const accountBalanceAbi = parseAbi([
  "function initialize(address clearingHouseConfigArg, address orderBookArg)",
  "function setVault(address vaultArg)",
  "function setClearingHouse(address clearingHouseArg)",
  "function getMarkPrice(address baseToken) view returns (uint256)",
  "function getTotalAbsPositionValue(address trader) view returns (uint256)",
  "function getMarginRequirementForLiquidation(address trader) view returns (int256)",
  "function getTotalPositionSize(address trader, address baseToken) view returns (int256)",
  "function getTakerPositionSize(address trader, address baseToken) view returns (int256)",
  "function getTakerOpenNotional(address trader, address baseToken) view returns (int256)",
  "function getTotalPositionValue(address trader, address baseToken) view returns (int256)",
  "function getLiquidatablePositionSize(address trader, address baseToken, int256 accountValue) view returns (int256)",
  "function getBaseTokens(address trader) view returns (address[])",
  "function hasOrder(address trader) view returns (bool)",
  "function getPnlAndPendingFee(address trader) view returns (int256 owedRealizedPnl, int256 unrealizedPnl, uint256 pendingFee)",
  "event PnlRealized(address indexed trader, int256 amount)",
]);

export const insuranceFundAbi = parseAbi([
  "function initialize(address tokenArg)",
  "function setVault(address vaultArg)",
  "function getInsuranceFundCapacity() view returns (int256)",
]);

export const vaultAbi = parseAbi([
  "function initialize(address insuranceFundArg, address clearingHouseConfigArg, address accountBalanceArg, address exchangeArg)",
  "function setCollateralManager(address collateralManagerArg)",
  "function setClearingHouse(address clearingHouseArg)",
  "function deposit(address token, uint256 amount)",
  "function withdraw(address token, uint256 amount)",
  "function withdrawAll(address token) returns (uint256 amount)",
  "function getFreeCollateral(address trader) view returns (uint256)",
  "function getBalance(address trader) view returns (int256)",
  "function getAccountValue(address trader) view returns (int256)",
  "function getSettlementToken() view returns (address)",
  "event Deposited(address indexed collateralToken, address indexed trader, uint256 amount)",
  "event Withdrawn(address indexed collateralToken, address indexed trader, uint256 amount)",
  "event BadDebtSettled(address indexed trader, uint256 amount)",
]);

export const collateralManagerAbi = parseAbi([
  "function initialize(address clearingHouseConfigArg, address vaultArg, uint8 maxCollateralTokensPerAccountArg, uint24 debtNonSettlementTokenValueRatioArg, uint24 liquidationRatioArg, uint24 mmRatioBufferArg, uint24 clInsuranceFundFeeRatioArg, uint256 debtThresholdArg, uint256 collateralValueDustArg)",
]);

export const clearingHouseAbi = parseAbi([
  "struct AddLiquidityParams { address baseToken; uint256 base; uint256 quote; int24 lowerTick; int24 upperTick; uint256 minBase; uint256 minQuote; bool useTakerBalance; uint256 deadline; }",
  "struct AddLiquidityResponse { uint256 base; uint256 quote; uint256 fee; uint256 liquidity; }",
  "struct OpenPositionParams { address baseToken; bool isBaseToQuote; bool isExactInput; uint256 amount; uint256 oppositeAmountBound; uint256 deadline; uint160 sqrtPriceLimitX96; bytes32 referralCode; }",
  "struct ClosePositionParams { address baseToken; uint160 sqrtPriceLimitX96; uint256 oppositeAmountBound; uint256 deadline; bytes32 referralCode; }",
  "function initialize(address clearingHouseConfigArg, address vaultArg, address quoteTokenArg, address uniV3FactoryArg, address exchangeArg, address accountBalanceArg, address insuranceFundArg)",
  "function addLiquidity(AddLiquidityParams params) returns (AddLiquidityResponse response)",
  "function openPosition(OpenPositionParams params) returns (uint256 base, uint256 quote)",
  "function closePosition(ClosePositionParams params) returns (uint256 base, uint256 quote)",
  "function liquidate(address trader, address baseToken, int256 positionSize)",
  "function liquidate(address trader, address baseToken)",
  "function cancelAllExcessOrders(address maker, address baseToken)",
  "function getAccountValue(address trader) view returns (int256)",
  "function getVault() view returns (address)",
  "event PositionLiquidated(address indexed trader, address indexed baseToken, uint256 positionNotional, uint256 positionSize, uint256 liquidationFee, address liquidator)",
  "event PositionChanged(address indexed trader, address indexed baseToken, int256 exchangedPositionSize, int256 exchangedPositionNotional, uint256 fee, int256 openNotional, int256 realizedPnl, uint256 sqrtPriceAfterX96)",
  "event LiquidityChanged(address indexed maker, address indexed baseToken, address indexed quoteToken, int24 lowerTick, int24 upperTick, int256 base, int256 quote, int128 liquidity, uint256 quoteFee)",
]);

export const chainlinkPriceFeedV3Abi = parseAbi([
  "function getPrice(uint256 interval) view returns (uint256)",
  "function getLastValidPrice() view returns (uint256)",
  "function getLastValidTimestamp() view returns (uint256)",
  "function getAggregator() view returns (address)",
  "function decimals() view returns (uint8)",
]);

export const priceFeedDispatcherAbi = parseAbi([
  "function getPrice(uint256 interval) view returns (uint256)",
  "function getChainlinkPriceFeedV3() view returns (address)",
  "function decimals() view returns (uint8)",
]);

/** Every Perp v2 event the devnet's checks decode (ClearingHouse, AccountBalance, Vault, Exchange). */
export const perpV2EventsAbi = [
  ...clearingHouseAbi.filter((item) => item.type === "event"),
  ...accountBalanceAbi.filter((item) => item.type === "event"),
  ...vaultAbi.filter((item) => item.type === "event"),
  ...exchangeAbi.filter((item) => item.type === "event"),
];

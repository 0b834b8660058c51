/**
 * Perpetual Protocol v2 ("Curie", @perp/curie-contract 2.8.4): the ABI fragments the keeper uses, written by hand.
 * The npm package is a devDependency only; test/protocol/perp-v2/abi.test.ts checks that every fragment here exists
 * with the same signature (name, input and output types, indexed flags, mutability) in the package's artifacts.
 */
import { parseAbi } from "viem";

/** ClearingHouse: trades, liquidations, makers' liquidity, funding settlements; discovery and the calls we send. */
export const clearingHouseAbi = parseAbi([
  "event PositionChanged(address indexed trader, address indexed baseToken, int256 exchangedPositionSize, int256 exchangedPositionNotional, uint256 fee, int256 openNotional, int256 realizedPnl, uint256 sqrtPriceAfterX96)",
  "event PositionLiquidated(address indexed trader, address indexed baseToken, uint256 positionNotional, uint256 positionSize, uint256 liquidationFee, address liquidator)",
  "event PositionClosed(address indexed trader, address indexed baseToken, int256 closedPositionSize, int256 closedPositionNotional, int256 openNotional, int256 realizedPnl, uint256 closedPrice)",
  "event LiquidityChanged(address indexed maker, address indexed baseToken, address indexed quoteToken, int24 lowerTick, int24 upperTick, int256 base, int256 quote, int128 liquidity, uint256 quoteFee)",
  "event FundingPaymentSettled(address indexed trader, address indexed baseToken, int256 fundingPayment)",
  "function getAccountValue(address trader) view returns (int256)",
  "function getVault() view returns (address)",
  "function getExchange() view returns (address)",
  "function getAccountBalance() view returns (address)",
  "function getOrderBook() view returns (address)",
  "function getClearingHouseConfig() view returns (address)",
  "function getInsuranceFund() view returns (address)",
  "function getQuoteToken() view returns (address)",
  "function getUniswapV3Factory() view returns (address)",
  "function liquidate(address trader, address baseToken, int256 positionSize)",
  "function liquidate(address trader, address baseToken)",
  "function cancelAllExcessOrders(address maker, address baseToken)",
  "struct ClosePositionParams { address baseToken; uint160 sqrtPriceLimitX96; uint256 oppositeAmountBound; uint256 deadline; bytes32 referralCode; }",
  "function closePosition(ClosePositionParams params) returns (uint256 base, uint256 quote)",
]);

/** AccountBalance: every change of owed realized PnL, and the views of positions, marks and requirements. */
export const accountBalanceAbi = parseAbi([
  "event PnlRealized(address indexed trader, int256 amount)",
  "function getMarginRequirementForLiquidation(address trader) view returns (int256)",
  "function getLiquidatablePositionSize(address trader, address baseToken, int256 accountValue) view returns (int256)",
  "function getMarkPrice(address baseToken) view returns (uint256)",
  "function getTotalPositionSize(address trader, address baseToken) view returns (int256)",
  "function getTakerPositionSize(address trader, address baseToken) view returns (int256)",
  "function getTakerOpenNotional(address trader, address baseToken) view returns (int256)",
  "function getTotalOpenNotional(address trader, address baseToken) view returns (int256)",
  "struct AccountMarketInfo { int256 takerPositionSize; int256 takerOpenNotional; int256 lastTwPremiumGrowthGlobalX96; }",
  "function getAccountInfo(address trader, address baseToken) view returns (AccountMarketInfo)",
  "function getBaseTokens(address trader) view returns (address[])",
  "function getTotalAbsPositionValue(address trader) view returns (uint256)",
  "function getPnlAndPendingFee(address trader) view returns (int256, int256, uint256)",
  "function hasOrder(address trader) view returns (bool)",
]);

/** Vault: settlement-token and other collateral balances, bad debt. */
export const vaultAbi = parseAbi([
  "event Deposited(address indexed collateralToken, address indexed trader, uint256 amount)",
  "event Withdrawn(address indexed collateralToken, address indexed trader, uint256 amount)",
  "event BadDebtSettled(address indexed trader, uint256 amount)",
  "event CollateralLiquidated(address indexed trader, address indexed collateralToken, address indexed liquidator, uint256 collateral, uint256 repaidSettlementWithoutInsuranceFundFeeX10_S, uint256 insuranceFundFeeX10_S, uint24 discountRatio)",
  "function getBalance(address trader) view returns (int256)",
  "function getBalanceByToken(address trader, address token) view returns (int256)",
  "function getFreeCollateral(address trader) view returns (uint256)",
  "function getFreeCollateralByRatio(address trader, uint24 ratio) view returns (int256)",
  "function getSettlementToken() view returns (address)",
  "function getAccountValue(address trader) view returns (int256)",
  "function getCollateralTokens(address trader) view returns (address[])",
  "function decimals() view returns (uint8)",
]);

/** Exchange: the global funding growth's updates, pending funding, the market TWAP. */
export const exchangeAbi = parseAbi([
  "event FundingUpdated(address indexed baseToken, uint256 marketTwap, uint256 indexTwap)",
  "function getMarketRegistry() view returns (address)",
  "function getAllPendingFundingPayment(address trader) view returns (int256)",
  "function getPendingFundingPayment(address trader, address baseToken) view returns (int256)",
  "function getSqrtMarketTwapX96(address baseToken, uint32 twapInterval) view returns (uint160)",
]);

/** MarketRegistry: the markets (a base token and its Uniswap v3 pool). */
export const marketRegistryAbi = parseAbi([
  "event PoolAdded(address indexed baseToken, uint24 indexed feeRatio, address indexed pool)",
  "struct MarketInfo { address pool; uint24 exchangeFeeRatio; uint24 uniswapFeeRatio; uint24 insuranceFundFeeRatio; uint24 maxPriceSpreadRatio; }",
  "function getMarketInfo(address baseToken) view returns (MarketInfo)",
  "function hasPool(address baseToken) view returns (bool)",
  "function getPool(address baseToken) view returns (address)",
]);

/** ClearingHouseConfig: the ratios (1e6 scale). mmRatio and imRatio have no setter: fixed at initialize. */
export const clearingHouseConfigAbi = parseAbi([
  "event LiquidationPenaltyRatioChanged(uint24 liquidationPenaltyRatio)",
  "event MaxFundingRateChanged(uint24 rate)",
  "event TwapIntervalChanged(uint256 twapInterval)",
  "function getMmRatio() view returns (uint24)",
  "function getImRatio() view returns (uint24)",
  "function getLiquidationPenaltyRatio() view returns (uint24)",
  "function getMaxFundingRate() view returns (uint24)",
  "function getTwapInterval() view returns (uint32)",
  "function getMarkPriceConfig() view returns (uint32, uint32)",
]);

/** OrderBook: makers' open orders (a maker with orders cannot be liquidated: CH_CLWTISO). */
export const orderBookAbi = parseAbi([
  "function getOpenOrderIds(address trader, address baseToken) view returns (bytes32[])",
  "function hasOrder(address trader, address[] tokens) view returns (bool)",
]);

/** BaseToken: a market's status (open, paused, closed) and its index price. */
export const baseTokenAbi = parseAbi([
  "event StatusUpdated(uint8 indexed status)",
  "function getIndexPrice(uint256 interval) view returns (uint256)",
  "function isOpen() view returns (bool)",
  "function getPausedIndexPrice() view returns (uint256)",
  "function getPausedTimestamp() view returns (uint256)",
  "function symbol() view returns (string)",
]);

/** InsuranceFund: its capacity bounds the bad debt a liquidation may leave (CH_IIC). */
export const insuranceFundAbi = parseAbi(["function getInsuranceFundCapacity() view returns (int256)"]);

/** Every fragment, by the artifact it is checked against (contracts/<name>.sol/<name>.json). */
export const PERP_V2_ABIS = {
  ClearingHouse: clearingHouseAbi,
  AccountBalance: accountBalanceAbi,
  Vault: vaultAbi,
  Exchange: exchangeAbi,
  MarketRegistry: marketRegistryAbi,
  ClearingHouseConfig: clearingHouseConfigAbi,
  OrderBook: orderBookAbi,
  BaseToken: baseTokenAbi,
  InsuranceFund: insuranceFundAbi,
} as const;

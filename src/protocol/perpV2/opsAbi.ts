/**
 * Perp v2 ("Curie", @perp/curie-contract 2.8.4) fragments that discovery (./discover.ts) and the collateral command
 * (src/protocol/perpV2/collateral.ts) use beyond ./abi.ts: the cross-references each contract keeps (which ClearingHouse, which
 * Vault...), the markets' settings and status, and the Vault's deposit and withdrawal. Hand-written like abi.ts, and
 * checked against the npm artifacts by test/protocol/perp-v2/discover.test.ts.
 */
import { parseAbi } from "viem";

export const opsAccountBalanceAbi = parseAbi([
  "function getClearingHouse() view returns (address)",
  "function getClearingHouseConfig() view returns (address)",
  "function getOrderBook() view returns (address)",
  "function getVault() view returns (address)",
  "function getTotalPositionValue(address trader, address baseToken) view returns (int256)",
]);

export const opsExchangeAbi = parseAbi([
  "function getClearingHouse() view returns (address)",
  "function getOrderBook() view returns (address)",
  "function getAccountBalance() view returns (address)",
  "function getClearingHouseConfig() view returns (address)",
  "function getMaxTickCrossedWithinBlock(address baseToken) view returns (uint24)",
]);

export const opsOrderBookAbi = parseAbi([
  "function getClearingHouse() view returns (address)",
  "function getExchange() view returns (address)",
  "function getMarketRegistry() view returns (address)",
]);

export const opsMarketRegistryAbi = parseAbi([
  "function getClearingHouse() view returns (address)",
  "function getQuoteToken() view returns (address)",
  "function getUniswapV3Factory() view returns (address)",
  "function getFeeRatio(address baseToken) view returns (uint24)",
  "function getInsuranceFundFeeRatio(address baseToken) view returns (uint24)",
]);

export const opsVaultAbi = parseAbi([
  "function getClearingHouse() view returns (address)",
  "function getClearingHouseConfig() view returns (address)",
  "function getAccountBalance() view returns (address)",
  "function getInsuranceFund() view returns (address)",
  "function getExchange() view returns (address)",
  "function getCollateralManager() view returns (address)",
  "function getFreeCollateralByToken(address trader, address token) view returns (uint256)",
  "function paused() view returns (bool)",
  "function deposit(address token, uint256 amount)",
  "function withdraw(address token, uint256 amount)",
]);

export const opsInsuranceFundAbi = parseAbi([
  "function getToken() view returns (address)",
  "function getVault() view returns (address)",
]);

export const opsCollateralManagerAbi = parseAbi([
  "function getVault() view returns (address)",
  "function getClearingHouseConfig() view returns (address)",
]);

export const opsClearingHouseConfigAbi = parseAbi([
  "function getSettlementTokenBalanceCap() view returns (uint256)",
  "function getMaxMarketsPerAccount() view returns (uint8)",
]);

export const opsBaseTokenAbi = parseAbi([
  "function getPriceFeed() view returns (address)",
  "function isPaused() view returns (bool)",
  "function isClosed() view returns (bool)",
  "function decimals() view returns (uint8)",
]);

/** Every fragment here, by the artifact it is checked against (contracts/<name>.sol/<name>.json). */
export const PERP_V2_OPS_ABIS = {
  AccountBalance: opsAccountBalanceAbi,
  Exchange: opsExchangeAbi,
  OrderBook: opsOrderBookAbi,
  MarketRegistry: opsMarketRegistryAbi,
  Vault: opsVaultAbi,
  InsuranceFund: opsInsuranceFundAbi,
  CollateralManager: opsCollateralManagerAbi,
  ClearingHouseConfig: opsClearingHouseConfigAbi,
  BaseToken: opsBaseTokenAbi,
} as const;

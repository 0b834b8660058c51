// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title The reference cross-margin exchange priced by a Pyth pull oracle (docs/cross-margin-engine.md)
/// @notice A faithful subset of Synthetix v3 perps-market's published rules: uint128 account ids, cross margin over
///         several markets, maintenance that grows with size, a liquidation reward inside the requirement, liquidation
///         as flag then close within per-market window caps, and prices brought by the caller, either attached to the
///         liquidation (`liquidate(accountId, priceUpdateData)`, as D8X and SmarDex USDN do) or through ERC-7412
///         (`OracleDataRequired`, then `fulfillOracleQuery` and the call in one `multicall`, as Synthetix v3 does).
/// @dev All amounts are WAD (18 decimals): sizes in base units, prices and margins in quote (USD). Pyth prices are
///      scaled to WAD as `price × 10^(18 + expo)` (expo in [-18, 0]).
interface ICrossMarginEngine {
    /// @notice A market's risk configuration (Synthetix v3 PerpsMarketConfiguration, same names).
    struct MarketConfig {
        /// Pyth price feed id of the market's mark price.
        bytes32 feedId;
        /// Base units; margin ratios grow by |size| / skewScale.
        uint256 skewScale;
        uint256 makerFeeRatio;
        /// Charged on every order's notional (the engine has no skew-dependent maker/taker split).
        uint256 takerFeeRatio;
        uint256 initialMarginRatio;
        uint256 minimumInitialMarginRatio;
        uint256 maintenanceMarginScalar;
        /// Flag reward per notional, summed over the account's positions and clamped by the global reward bounds.
        uint256 flagRewardRatio;
        /// Quote added to the requirement per open position (initial and maintenance alike).
        uint256 minimumPositionMargin;
        uint256 maxLiquidationLimitAccumulationMultiplier;
        /// Seconds of the rolling liquidation window; 0: no cap.
        uint256 maxSecondsInLiquidationWindow;
    }

    // ---- configuration -------------------------------------------------------------------------------------------
    event GlobalConfigured(uint256 minKeeperRewardUsd, uint256 maxKeeperRewardUsd, uint256 stepRewardUsd, uint256 maxPriceAge);
    event MarketCreated(uint128 indexed marketId, string name);
    /// Emitted when a market is created and whenever its configuration changes.
    event MarketConfigured(uint128 indexed marketId, MarketConfig config);

    // ---- accounts and trading ------------------------------------------------------------------------------------
    event AccountCreated(uint128 indexed accountId, address indexed owner);
    /// collateralId is always 0 (the quote token).
    event CollateralModified(uint128 indexed accountId, uint128 indexed collateralId, int256 amountDelta, address indexed sender);
    /// An order filled at the oracle price: the position's pnl since its entry is realized into collateral (`pnl`),
    /// the fees are taken from collateral, and the entry price becomes `fillPrice`.
    event OrderSettled(
        uint128 indexed marketId,
        uint128 indexed accountId,
        uint256 fillPrice,
        int256 pnl,
        int128 sizeDelta,
        int128 newSize,
        uint256 totalFees,
        address settler
    );

    // ---- liquidation ---------------------------------------------------------------------------------------------
    /// The account's collateral was seized; `flagReward` is paid to the caller.
    event AccountFlaggedForLiquidation(
        uint128 indexed accountId,
        int256 availableMargin,
        uint256 requiredMaintenanceMargin,
        uint256 liquidationReward,
        uint256 flagReward
    );
    /// Part or all of a flagged account's position in a market closed, within the market's window capacity.
    event PositionLiquidated(uint128 indexed accountId, uint128 indexed marketId, uint256 amountLiquidated, int128 currentPositionSize);
    /// Every liquidation call on an account ends with this; `fullLiquidation`: no position left, the flag is cleared.
    event AccountLiquidationAttempt(uint128 indexed accountId, uint256 reward, bool fullLiquidation);
    /// `liquidateMany` passed over an account: 1 not liquidatable (healthy and not flagged), 2 unknown account or
    /// nothing left to close, 3 flagged but no capacity left in any of its markets' windows.
    event LiquidationSkipped(uint128 indexed accountId, uint8 reason);

    // ---- errors ---------------------------------------------------------------------------------------------------
    /// ERC-7412: the price of `oracleQuery` is missing or older than maxPriceAge.
    /// oracleQuery = abi.encode(uint8 updateType (1), uint64 stalenessTolerance, bytes32[] priceIds).
    error OracleDataRequired(address oracleContract, bytes oracleQuery);
    error NotEligibleForLiquidation(uint128 accountId);
    error AccountNotFound(uint128 accountId);
    error AccountExists(uint128 accountId);
    error PermissionDenied(uint128 accountId, address sender);
    error AccountFlagged(uint128 accountId);
    error MarketNotFound(uint128 marketId);
    error InvalidMarketConfig();
    error InvalidPrice(bytes32 feedId, int64 price, int32 expo);
    error InsufficientMargin(int256 availableMargin, uint256 requiredMargin);
    error ZeroAmount();

    // ---- configuration (owner) --------------------------------------------------------------------------------------
    function setGlobalConfig(uint256 minKeeperRewardUsd, uint256 maxKeeperRewardUsd, uint256 stepRewardUsd, uint256 maxPriceAge) external;
    function createMarket(uint128 marketId, string calldata name, MarketConfig calldata config) external;
    function setMarketConfig(uint128 marketId, MarketConfig calldata config) external;

    // ---- accounts and trading ----------------------------------------------------------------------------------------
    /// Creates `accountId` (any nonzero uint128 not taken) owned by the caller.
    function createAccount(uint128 accountId) external;
    /// Deposits (amountDelta > 0, pulled with transferFrom) or withdraws (< 0: needs fresh prices of every position,
    /// and the initial requirement still met after) quote collateral.
    function modifyCollateral(uint128 accountId, uint128 collateralId, int256 amountDelta) external;
    /// Fills `sizeDelta` at the oracle price after applying `priceUpdateData` (msg.value pays Pyth's fee). After the
    /// fill the account must meet its initial requirement: availableMargin ≥ Σ(initial + minimumPositionMargin) +
    /// liquidation reward.
    function modifyPosition(uint128 accountId, uint128 marketId, int128 sizeDelta, bytes[] calldata priceUpdateData) external payable;

    // ---- liquidation --------------------------------------------------------------------------------------------------
    /// Applies `priceUpdateData` (msg.value is forwarded to Pyth.updatePriceFeeds: less than its fee reverts
    /// InsufficientFee, more is kept by Pyth), then liquidates: flags the account if it is below maintenance (else
    /// reverts NotEligibleForLiquidation), and closes its positions up to each market's window capacity.
    function liquidate(uint128 accountId, bytes[] calldata priceUpdateData) external payable returns (uint256 liquidationReward);
    /// ERC-7412's form: the same without attached prices; flagging an account reverts OracleDataRequired when a price
    /// it needs is missing or stale. Continuing a flagged account needs no price. Payable only so that it composes in
    /// `multicall([fulfillOracleQuery, liquidate])`, whose msg.value pays Pyth (a delegate-call keeps msg.value, and a
    /// non-payable function refuses any); outside a multicall it refuses ether.
    function liquidate(uint128 accountId) external payable returns (uint256 liquidationReward);
    /// The reference's batch: one price update for all, then each account liquidated as `liquidate` would, skipping
    /// (LiquidationSkipped) what `liquidate` would refuse instead of reverting.
    function liquidateMany(uint128[] calldata accountIds, bytes[] calldata priceUpdateData) external payable returns (uint256 liquidationReward);
    /// Continues up to `maxNumberOfAccounts` flagged accounts, oldest flag first.
    function liquidateFlagged(uint256 maxNumberOfAccounts) external returns (uint256 liquidationReward);
    /// Continues these flagged accounts (others are passed over with LiquidationSkipped).
    function liquidateFlaggedAccounts(uint128[] calldata accountIds) external returns (uint256 liquidationReward);

    // ---- ERC-7412 -------------------------------------------------------------------------------------------------
    function oracleId() external pure returns (bytes32);
    /// signedOffchainData = abi.encode(uint8 updateType, uint64 stalenessTolerance, bytes32[] priceIds, bytes[] updateData);
    /// msg.value is forwarded to Pyth.updatePriceFeeds(updateData).
    function fulfillOracleQuery(bytes calldata signedOffchainData) external payable;
    /// Delegate-calls each entry on this contract in order; reverts with the first failure's data.
    function multicall(bytes[] calldata data) external payable returns (bytes[] memory results);

    // ---- views (revert OracleDataRequired where a price they need is stale) -------------------------------------------
    function pyth() external view returns (address);
    function collateralToken() external view returns (address);
    function globalConfig() external view returns (uint256 minKeeperRewardUsd, uint256 maxKeeperRewardUsd, uint256 stepRewardUsd, uint256 maxPriceAge);
    function marketIds() external view returns (uint128[] memory);
    function getMarketConfig(uint128 marketId) external view returns (MarketConfig memory);
    function indexPrice(uint128 marketId) external view returns (uint256);
    function accountOwner(uint128 accountId) external view returns (address);
    function getCollateral(uint128 accountId) external view returns (int256);
    function getOpenPosition(uint128 accountId, uint128 marketId) external view returns (int128 size, uint256 entryPrice);
    function getAvailableMargin(uint128 accountId) external view returns (int256);
    function getRequiredMargins(uint128 accountId)
        external
        view
        returns (uint256 requiredInitialMargin, uint256 requiredMaintenanceMargin, uint256 maxLiquidationReward);
    function canLiquidate(uint128 accountId) external view returns (bool);
    function isFlagged(uint128 accountId) external view returns (bool);
    function flaggedAccounts() external view returns (uint128[] memory);
    /// Capacity left in the market's rolling window, the window's cap, and the last liquidation's time.
    function liquidationCapacity(uint128 marketId)
        external
        view
        returns (uint256 capacity, uint256 maxLiquidationInWindow, uint256 latestLiquidationTimestamp);
}

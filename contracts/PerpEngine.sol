// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/// @title PerpEngine
/// @notice The reference isolated-margin perpetual exchange of perp-keeper.
///
/// Units (this contract is also the documentation of the margin rules the keeper mirrors):
/// - Collateral is one ERC-20 with 6 decimals. Inside the engine every amount of quote is an 18-decimal
///   fixed-point number ("WAD"): 1 USDC = 1e18. Deposits scale up exactly; payouts round down.
/// - Size is a signed 18-decimal amount of the base asset (long > 0, short < 0).
/// - Mark price is the market's Chainlink answer scaled to 18 decimals (exact: answer * 10^(18 - decimals)).
/// - Every rounding goes in the protocol's favour:
///     notional       long: floor(|size| * price / WAD)   short: ceil(|size| * price / WAD)
///     unrealized PnL long: notional - openNotional       short: openNotional - notional
///     funding owed   ceil(size * (fundingIndex - position.lastFundingIndex) / WAD)   (signed, rounded toward +inf)
///     maintenance    ceil(notional * maintenanceMarginRatio / WAD)
///     initial        ceil(notional * initialMarginRatio / WAD)
///     margin balance margin + unrealized PnL - funding owed
/// - A position is liquidatable when margin balance < maintenance requirement.
/// - Liquidation: liquidate(trader, marketId) closes one position and pays its keeper reward, and reverts
///   (NoPosition, NotLiquidatable) when there is nothing to liquidate. liquidateMany(traders, marketIds) runs the
///   same liquidation (_liquidate) for each pair, skips what liquidate would refuse with a LiquidationSkipped event
///   (reason 1 = NoPosition, 2 = NotLiquidatable) instead of reverting, and pays the keeper once: the sum of the
///   per-position floor(keeperReward / collateralScale), exactly what the single calls would pay. An unknown
///   market or an unusable oracle price still reverts the whole batch, as it reverts liquidate.
/// - Funding: each market has a cumulative funding index (quote per unit of base, WAD). It grows by
///   fundingRatePerSecond * elapsed * markPrice / WAD (truncated toward zero); longs pay when it rises.
///   It is settled lazily: on every trade, margin change and liquidation in the market.
contract PerpEngine is Ownable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    uint256 internal constant WAD = 1e18;

    /// LiquidationSkipped reasons.
    uint8 internal constant SKIP_NO_POSITION = 1;
    uint8 internal constant SKIP_NOT_LIQUIDATABLE = 2;
    /// What _liquidate returns when it liquidated: no skip reason.
    uint8 internal constant LIQUIDATED = 0;

    struct Market {
        AggregatorV3Interface oracle;
        uint256 priceScale; // 10 ** (18 - oracle decimals)
        uint64 initialMarginRatio; // WAD; 1 / max leverage
        uint64 maintenanceMarginRatio; // WAD
        uint64 liquidationFeeRatio; // WAD of notional, paid to the keeper
        uint64 tradingFeeRatio; // WAD of traded notional
        uint32 maxOracleAge; // seconds
        uint64 lastFundingTime;
        int256 fundingRatePerSecond; // WAD of mark price per second
        int256 cumulativeFundingIndex; // WAD quote per unit of base
        bytes32 name;
    }

    struct Position {
        int256 size; // WAD base, long > 0
        uint256 openNotional; // WAD quote, entry value (entry price = openNotional / |size|)
        int256 margin; // WAD quote, isolated margin after fees, realized PnL and settled funding
        int256 lastFundingIndex; // market funding index when funding was last settled
    }

    IERC20 public immutable collateral;
    uint256 public immutable collateralScale; // 10 ** (18 - collateral decimals)

    uint256 public marketCount;
    mapping(uint256 => Market) internal _markets;
    mapping(address => mapping(uint256 => Position)) internal _positions;

    /// @notice Bad debt absorbed by the exchange's pool, WAD.
    uint256 public totalBadDebt;

    event MarketListed(
        uint256 indexed marketId,
        bytes32 name,
        address oracle,
        uint256 priceScale,
        uint256 initialMarginRatio,
        uint256 maintenanceMarginRatio,
        uint256 liquidationFeeRatio,
        uint256 tradingFeeRatio,
        uint256 maxOracleAge
    );
    event FundingUpdated(
        uint256 indexed marketId, int256 cumulativeFundingIndex, int256 fundingRatePerSecond, uint256 timestamp
    );
    event PositionChanged(
        address indexed trader,
        uint256 indexed marketId,
        int256 sizeDelta,
        uint256 price,
        int256 size,
        uint256 openNotional,
        int256 margin,
        int256 fundingIndex,
        int256 realizedPnl,
        uint256 fee
    );
    event MarginChanged(
        address indexed trader,
        uint256 indexed marketId,
        int256 marginDelta,
        int256 size,
        uint256 openNotional,
        int256 margin,
        int256 fundingIndex
    );
    event PositionLiquidated(
        address indexed trader,
        uint256 indexed marketId,
        address indexed keeper,
        int256 size,
        uint256 openNotional,
        uint256 price,
        int256 marginBalance,
        uint256 keeperReward,
        uint256 badDebt
    );
    /// reason: 1 = NoPosition (nothing open: already liquidated or closed), 2 = NotLiquidatable (margin balance >= maintenance)
    event LiquidationSkipped(address indexed trader, uint256 indexed marketId, address indexed keeper, uint8 reason);

    error UnknownMarket(uint256 marketId);
    error InvalidMarketParams();
    error InvalidPrice(int256 answer);
    error StalePrice(uint256 updatedAt, uint256 maxAge);
    error NoPosition();
    error ZeroAmount();
    error InsufficientMargin(int256 marginBalance, uint256 required);
    error NotLiquidatable(int256 marginBalance, uint256 maintenanceRequirement);
    error LengthMismatch();

    constructor(IERC20 collateral_, uint8 collateralDecimals) Ownable(msg.sender) {
        if (collateralDecimals > 18) revert InvalidMarketParams();
        collateral = collateral_;
        collateralScale = 10 ** (18 - collateralDecimals);
    }

    // ------------------------------------------------------------------ governance

    function listMarket(
        bytes32 name,
        AggregatorV3Interface oracle,
        uint64 initialMarginRatio,
        uint64 maintenanceMarginRatio,
        uint64 liquidationFeeRatio,
        uint64 tradingFeeRatio,
        uint32 maxOracleAge
    ) external onlyOwner returns (uint256 marketId) {
        if (
            maintenanceMarginRatio == 0 || maintenanceMarginRatio >= initialMarginRatio || initialMarginRatio > WAD
                || liquidationFeeRatio > maintenanceMarginRatio || tradingFeeRatio >= maintenanceMarginRatio
                || maxOracleAge == 0
        ) revert InvalidMarketParams();
        uint8 decimals = oracle.decimals();
        if (decimals > 18) revert InvalidMarketParams();
        marketId = marketCount++;
        Market storage m = _markets[marketId];
        m.oracle = oracle;
        m.priceScale = 10 ** (18 - decimals);
        m.initialMarginRatio = initialMarginRatio;
        m.maintenanceMarginRatio = maintenanceMarginRatio;
        m.liquidationFeeRatio = liquidationFeeRatio;
        m.tradingFeeRatio = tradingFeeRatio;
        m.maxOracleAge = maxOracleAge;
        m.lastFundingTime = uint64(block.timestamp);
        m.name = name;
        emit MarketListed(
            marketId,
            name,
            address(oracle),
            m.priceScale,
            initialMarginRatio,
            maintenanceMarginRatio,
            liquidationFeeRatio,
            tradingFeeRatio,
            maxOracleAge
        );
        emit FundingUpdated(marketId, 0, 0, block.timestamp);
    }

    /// @notice Sets the funding rate (WAD of mark price per second; positive: longs pay shorts).
    function setFundingRate(uint256 marketId, int256 fundingRatePerSecond) external onlyOwner {
        Market storage m = _market(marketId);
        _settleFundingIndex(marketId, m, _markPrice(m));
        m.fundingRatePerSecond = fundingRatePerSecond;
        emit FundingUpdated(marketId, m.cumulativeFundingIndex, fundingRatePerSecond, block.timestamp);
    }

    // ------------------------------------------------------------------ trading

    /// @notice Deposits `marginDeposit` collateral (token units) into the position and trades `sizeDelta` at the
    /// mark price: opens, increases, reduces, closes or flips. A trade that adds risk must leave the position at or
    /// above initial margin; one that only reduces it must leave it above maintenance. A close pays out the margin
    /// balance.
    function trade(uint256 marketId, int256 sizeDelta, uint256 marginDeposit) external nonReentrant {
        Market storage m = _market(marketId);
        uint256 price = _markPrice(m);
        int256 index = _settleFundingIndex(marketId, m, price);
        Position storage p = _positions[msg.sender][marketId];
        _settleFunding(p, index);

        if (marginDeposit > 0) {
            collateral.safeTransferFrom(msg.sender, address(this), marginDeposit);
            p.margin += int256(marginDeposit * collateralScale);
        }
        if (sizeDelta == 0) revert ZeroAmount();

        int256 oldSize = p.size;
        uint256 fee = _ceilMul(_ceilMul(_abs(sizeDelta), price), m.tradingFeeRatio);
        int256 realizedPnl;

        if (oldSize == 0 || (oldSize > 0) == (sizeDelta > 0)) {
            // open or increase: the entry value grows by the traded value (long: rounded up, short: down)
            p.openNotional += _entryValue(sizeDelta, price);
            p.size = oldSize + sizeDelta;
        } else {
            uint256 oldAbs = _abs(oldSize);
            uint256 closedAbs = _abs(sizeDelta) < oldAbs ? _abs(sizeDelta) : oldAbs;
            // entry value of the closed part, rounded so that the realized PnL is rounded against the trader
            // (a long's cost up, a short's proceeds down)
            uint256 closedOpenNotional = oldSize > 0
                ? _ceilDiv(p.openNotional * closedAbs, oldAbs)
                : p.openNotional * closedAbs / oldAbs;
            uint256 closedValue = oldSize > 0 ? closedAbs * price / WAD : _ceilMul(closedAbs, price);
            realizedPnl = oldSize > 0
                ? int256(closedValue) - int256(closedOpenNotional)
                : int256(closedOpenNotional) - int256(closedValue);
            p.openNotional -= closedOpenNotional;
            p.size = oldSize + sizeDelta;
            if (_abs(sizeDelta) > oldAbs) {
                // flipped: the remainder opens a new position at the mark price
                p.openNotional = _entryValue(p.size, price);
            }
        }
        p.margin += realizedPnl - int256(fee);

        bool addsRisk = _abs(p.size) > _abs(oldSize) || (oldSize != 0 && p.size != 0 && (oldSize > 0) != (p.size > 0));
        emit PositionChanged(
            msg.sender, marketId, sizeDelta, price, p.size, p.openNotional, p.margin, p.lastFundingIndex, realizedPnl, fee
        );

        if (p.size == 0) {
            int256 payout = p.margin;
            if (payout < 0) totalBadDebt += uint256(-payout);
            delete _positions[msg.sender][marketId];
            if (payout > 0) collateral.safeTransfer(msg.sender, uint256(payout) / collateralScale);
            return;
        }
        (int256 balance, uint256 maintenance) = _health(p, m, price, index);
        if (addsRisk) {
            uint256 initial = _ceilMul(_notional(p.size, price), m.initialMarginRatio);
            if (balance < int256(initial)) revert InsufficientMargin(balance, initial);
        } else if (balance < int256(maintenance)) {
            revert InsufficientMargin(balance, maintenance);
        }
    }

    function addMargin(uint256 marketId, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Market storage m = _market(marketId);
        Position storage p = _positions[msg.sender][marketId];
        if (p.size == 0) revert NoPosition();
        int256 index = _settleFundingIndex(marketId, m, _markPrice(m));
        _settleFunding(p, index);
        collateral.safeTransferFrom(msg.sender, address(this), amount);
        int256 delta = int256(amount * collateralScale);
        p.margin += delta;
        emit MarginChanged(msg.sender, marketId, delta, p.size, p.openNotional, p.margin, p.lastFundingIndex);
    }

    /// @notice Withdraws collateral (token units) from the position; it must stay at or above initial margin.
    function removeMargin(uint256 marketId, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Market storage m = _market(marketId);
        Position storage p = _positions[msg.sender][marketId];
        if (p.size == 0) revert NoPosition();
        uint256 price = _markPrice(m);
        int256 index = _settleFundingIndex(marketId, m, price);
        _settleFunding(p, index);
        int256 delta = -int256(amount * collateralScale);
        p.margin += delta;
        (int256 balance,) = _health(p, m, price, index);
        uint256 initial = _ceilMul(_notional(p.size, price), m.initialMarginRatio);
        if (balance < int256(initial)) revert InsufficientMargin(balance, initial);
        emit MarginChanged(msg.sender, marketId, delta, p.size, p.openNotional, p.margin, p.lastFundingIndex);
        collateral.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ liquidation

    /// @notice Closes a position whose margin balance is below its maintenance requirement at the mark price.
    /// Anyone may call it; the caller receives liquidationFeeRatio of the position's notional. What margin is left
    /// after the reward stays with the pool; a shortfall is recorded as bad debt.
    function liquidate(address trader, uint256 marketId) external nonReentrant returns (uint256 keeperReward) {
        uint8 skipped;
        (skipped, keeperReward) = _liquidate(trader, marketId);
        if (skipped != LIQUIDATED) {
            if (skipped == SKIP_NO_POSITION) revert NoPosition();
            // only on the way to a revert: the same health _liquidate found (same price, same index)
            (int256 balance, uint256 maintenance) = _currentHealth(trader, marketId);
            revert NotLiquidatable(balance, maintenance);
        }
        collateral.safeTransfer(msg.sender, keeperReward / collateralScale);
    }

    /// @notice liquidate() for each (traders[i], marketIds[i]), in order, without reverting on what it would refuse:
    /// a pair with no open position (reason 1, also the second of a duplicate) or one at or above maintenance
    /// (reason 2) emits LiquidationSkipped and gets a reward of 0. rewards[i] is the WAD keeper reward of each
    /// liquidated pair (its PositionLiquidated.keeperReward). The caller is paid once, the sum over the liquidated
    /// pairs of floor(rewards[i] / collateralScale): to the collateral unit what the single calls would pay; nothing
    /// is transferred when that is 0. An unknown market or an unusable oracle price reverts the whole call.
    function liquidateMany(address[] calldata traders, uint256[] calldata marketIds)
        external
        nonReentrant
        returns (uint256[] memory rewards)
    {
        uint256 n = traders.length;
        if (marketIds.length != n) revert LengthMismatch();
        rewards = new uint256[](n);
        uint256 payout;
        for (uint256 i; i < n; ++i) {
            address trader = traders[i];
            uint256 marketId = marketIds[i];
            (uint8 skipped, uint256 keeperReward) = _liquidate(trader, marketId);
            if (skipped == LIQUIDATED) {
                rewards[i] = keeperReward;
                payout += keeperReward / collateralScale; // floor per position, as liquidate() pays it
            } else {
                emit LiquidationSkipped(
                    trader,
                    marketId,
                    msg.sender,
                    skipped
                );
            }
        }
        if (payout != 0) collateral.safeTransfer(msg.sender, payout);
    }

    /// The liquidation itself, shared by liquidate() and liquidateMany(); the caller pays the reward out. Returns
    /// (LIQUIDATED, the WAD keeper reward), or, having changed nothing, the skip reason (SKIP_NO_POSITION,
    /// SKIP_NOT_LIQUIDATABLE) where liquidate() reverts with NoPosition / NotLiquidatable. The checks come in liquidate()'s order: UnknownMarket, NoPosition (one storage
    /// read, no oracle call), the oracle (InvalidPrice, StalePrice revert), then the margin check. The market's funding
    /// index is settled only when the position is liquidated, so a skip leaves no trace in storage; the index it
    /// settles is the one the margin check used.
    function _liquidate(address trader, uint256 marketId) internal returns (uint8 skipped, uint256 keeperReward) {
        Market storage m = _market(marketId);
        Position storage stored = _positions[trader][marketId];
        int256 size = stored.size;
        if (size == 0) return (SKIP_NO_POSITION, 0);
        uint256 price = _markPrice(m);
        int256 index = _fundingIndexAt(m, price);
        Position memory p = Position(size, stored.openNotional, stored.margin, stored.lastFundingIndex);
        (int256 balance, uint256 maintenance) = _health(p, m, price, index);
        if (balance >= int256(maintenance)) return (SKIP_NOT_LIQUIDATABLE, 0);
        _storeFundingIndex(marketId, m, index);

        keeperReward = _notional(size, price) * m.liquidationFeeRatio / WAD;
        int256 remaining = balance - int256(keeperReward);
        uint256 badDebt = remaining < 0 ? uint256(-remaining) : 0;
        if (badDebt != 0) totalBadDebt += badDebt;

        emit PositionLiquidated(
            trader, marketId, msg.sender, size, p.openNotional, price, balance, keeperReward, badDebt
        );
        delete _positions[trader][marketId];
    }

    // ------------------------------------------------------------------ views

    function market(uint256 marketId) external view returns (Market memory) {
        return _market(marketId);
    }

    function getPosition(address trader, uint256 marketId) external view returns (Position memory) {
        return _positions[trader][marketId];
    }

    /// @notice Mark price of a market, WAD. Reverts on a non-positive or stale oracle answer.
    function markPrice(uint256 marketId) external view returns (uint256) {
        return _markPrice(_market(marketId));
    }

    /// @notice The market's funding index as if settled now, at the mark price.
    function currentFundingIndex(uint256 marketId) public view returns (int256) {
        Market storage m = _market(marketId);
        return _fundingIndexAt(m, _markPrice(m));
    }

    function marginBalance(address trader, uint256 marketId) external view returns (int256 balance) {
        (balance,) = _currentHealth(trader, marketId);
    }

    function maintenanceRequirement(address trader, uint256 marketId) external view returns (uint256 requirement) {
        (, requirement) = _currentHealth(trader, marketId);
    }

    function isLiquidatable(address trader, uint256 marketId) external view returns (bool) {
        if (_positions[trader][marketId].size == 0) return false;
        (int256 balance, uint256 requirement) = _currentHealth(trader, marketId);
        return balance < int256(requirement);
    }

    /// @notice Liquidation price in the oracle's units, at the current funding index: for a long the highest
    /// price at which it is liquidatable (0: at no positive price), for a short the lowest (0: at every price).
    function liquidationPrice(address trader, uint256 marketId) external view returns (uint256) {
        Market storage m = _market(marketId);
        Position memory p = _positions[trader][marketId];
        if (p.size == 0) revert NoPosition();
        return _liquidationPrice(p, m, _fundingIndexAt(m, _markPrice(m)));
    }

    /// @notice The margin rules applied to any position state, price (WAD) and funding index: what the keeper's
    /// risk model mirrors. liquidate() and the views above use the same internal functions.
    function previewHealth(uint256 marketId, Position calldata p, uint256 price, int256 fundingIndex)
        external
        view
        returns (int256 balance, uint256 requirement, bool liquidatable, uint256 liquidationPriceUnits)
    {
        Market storage m = _market(marketId);
        (balance, requirement) = _health(p, m, price, fundingIndex);
        liquidatable = p.size != 0 && balance < int256(requirement); // a flat account has nothing to liquidate
        liquidationPriceUnits = p.size == 0 ? 0 : _liquidationPrice(p, m, fundingIndex);
    }

    // ------------------------------------------------------------------ internals

    function _market(uint256 marketId) internal view returns (Market storage m) {
        m = _markets[marketId];
        if (address(m.oracle) == address(0)) revert UnknownMarket(marketId);
    }

    function _markPrice(Market storage m) internal view returns (uint256) {
        (, int256 answer,, uint256 updatedAt,) = m.oracle.latestRoundData();
        if (answer <= 0) revert InvalidPrice(answer);
        if (updatedAt == 0 || updatedAt > block.timestamp || block.timestamp - updatedAt > m.maxOracleAge) {
            revert StalePrice(updatedAt, m.maxOracleAge);
        }
        return uint256(answer) * m.priceScale;
    }

    function _fundingIndexAt(Market storage m, uint256 price) internal view returns (int256) {
        int256 elapsed = int256(block.timestamp) - int256(uint256(m.lastFundingTime));
        return m.cumulativeFundingIndex + m.fundingRatePerSecond * elapsed * int256(price) / int256(WAD);
    }

    function _settleFundingIndex(uint256 marketId, Market storage m, uint256 price) internal returns (int256 index) {
        index = _fundingIndexAt(m, price);
        _storeFundingIndex(marketId, m, index);
    }

    /// Stores the index _fundingIndexAt gave for this block (once per block and market).
    function _storeFundingIndex(uint256 marketId, Market storage m, int256 index) internal {
        if (m.lastFundingTime != block.timestamp) {
            m.cumulativeFundingIndex = index;
            m.lastFundingTime = uint64(block.timestamp);
            emit FundingUpdated(marketId, index, m.fundingRatePerSecond, block.timestamp);
        }
    }

    function _settleFunding(Position storage p, int256 index) internal {
        if (p.size != 0) p.margin -= _fundingOwed(p.size, p.lastFundingIndex, index);
        p.lastFundingIndex = index;
    }

    function _health(Position memory p, Market storage m, uint256 price, int256 fundingIndex)
        internal
        view
        returns (int256 balance, uint256 requirement)
    {
        if (p.size == 0) return (p.margin, 0);
        uint256 notional = _notional(p.size, price);
        int256 pnl = p.size > 0 ? int256(notional) - int256(p.openNotional) : int256(p.openNotional) - int256(notional);
        balance = p.margin + pnl - _fundingOwed(p.size, p.lastFundingIndex, fundingIndex);
        requirement = _ceilMul(notional, m.maintenanceMarginRatio);
    }

    function _currentHealth(address trader, uint256 marketId) internal view returns (int256, uint256) {
        Market storage m = _market(marketId);
        uint256 price = _markPrice(m);
        return _health(_positions[trader][marketId], m, price, _fundingIndexAt(m, price));
    }

    /// Exact boundary in oracle units. With N the notional, a long is liquidatable iff
    /// N - ceil(N * mmr / WAD) < D where D = openNotional + fundingOwed - margin, and a short iff
    /// N + ceil(N * mmr / WAD) > E where E = openNotional - fundingOwed + margin. Both left sides move by 0 or 1
    /// (long) or by 1 or 2 (short) per unit of N, so the estimate below is corrected in a few steps; N maps back to
    /// the price through the rounding of _notional.
    function _liquidationPrice(Position memory p, Market storage m, int256 fundingIndex)
        internal
        view
        returns (uint256)
    {
        uint256 mmr = m.maintenanceMarginRatio;
        int256 owed = _fundingOwed(p.size, p.lastFundingIndex, fundingIndex);
        if (p.size > 0) {
            int256 d = int256(p.openNotional) + owed - p.margin;
            if (d <= 0) return 0;
            // largest N with N - ceil(N * mmr / WAD) < d
            uint256 n = uint256(d) * WAD / (WAD - mmr);
            while (_longSide(n, mmr) >= d) n--;
            while (_longSide(n + 1, mmr) < d) n++;
            // largest price with floor(size * price / WAD) <= n
            return ((n + 1) * WAD - 1) / (uint256(p.size) * m.priceScale);
        }
        int256 e = int256(p.openNotional) - owed + p.margin;
        if (e < 0) return 0;
        // smallest N with N + ceil(N * mmr / WAD) > e
        uint256 k = uint256(e) * WAD / (WAD + mmr);
        while (k > 0 && _shortSide(k - 1, mmr) > e) k--;
        while (_shortSide(k, mmr) <= e) k++;
        if (k == 0) return 0;
        // smallest price with ceil(|size| * price / WAD) >= k
        return (k - 1) * WAD / (uint256(-p.size) * m.priceScale) + 1;
    }

    function _longSide(uint256 n, uint256 mmr) private pure returns (int256) {
        return int256(n) - int256(_ceilMul(n, mmr));
    }

    function _shortSide(uint256 n, uint256 mmr) private pure returns (int256) {
        return int256(n) + int256(_ceilMul(n, mmr));
    }

    /// Entry value of a new exposure, rounded against the trader: a long's up, a short's down.
    function _entryValue(int256 size, uint256 price) internal pure returns (uint256) {
        return size > 0 ? _ceilMul(uint256(size), price) : uint256(-size) * price / WAD;
    }

    function _notional(int256 size, uint256 price) internal pure returns (uint256) {
        return size > 0 ? uint256(size) * price / WAD : _ceilMul(uint256(-size), price);
    }

    /// ceil(size * (index - lastIndex) / WAD), signed, rounded toward +infinity (against the trader).
    function _fundingOwed(int256 size, int256 lastIndex, int256 index) internal pure returns (int256) {
        int256 x = size * (index - lastIndex);
        if (x <= 0) return x / int256(WAD); // truncation toward zero is the ceiling for negatives
        return (x + int256(WAD) - 1) / int256(WAD);
    }

    function _ceilMul(uint256 a, uint256 b) internal pure returns (uint256) {
        return _ceilDiv(a * b, WAD);
    }

    function _ceilDiv(uint256 a, uint256 b) internal pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }

    function _abs(int256 x) internal pure returns (uint256) {
        return x >= 0 ? uint256(x) : uint256(-x);
    }
}

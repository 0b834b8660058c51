// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IPyth} from "@pythnetwork/pyth-sdk-solidity/IPyth.sol";
import {PythStructs} from "@pythnetwork/pyth-sdk-solidity/PythStructs.sol";
import {ICrossMarginEngine} from "./ICrossMarginEngine.sol";

/// @title CrossMarginEngine
/// @notice The reference cross-margin exchange priced by Pyth: the rules are in docs/cross-margin-engine.md, which
///         the keeper's mirror (src/protocol/crossMargin/math.ts) follows to the wei.
/// @dev Synthetix v3 perps-market names where the concept is the same: PerpsMarketConfiguration.calculateRequiredMargins
///      (per-position margins), PerpsAccount.isEligibleForLiquidation (the account rule), LiquidationModule (flag, then
///      close within PerpsMarket.maxLiquidatableAmount / currentLiquidationCapacity), GlobalPerpsMarketConfiguration's
///      keeper reward bounds. No async orders, no funding, no skew premium, one collateral.
contract CrossMarginEngine is ICrossMarginEngine, Ownable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint256 internal constant WAD = 1e18;
    /// LiquidationSkipped reasons (ICrossMarginEngine).
    uint8 internal constant SKIP_NOT_LIQUIDATABLE = 1;
    uint8 internal constant SKIP_NOT_FOUND = 2;
    uint8 internal constant SKIP_NO_CAPACITY = 3;
    /// What _liquidateAccount returns when it did not skip.
    uint8 internal constant DONE = 0;
    /// Every account operation walks the markets: their number is bounded.
    uint256 internal constant MAX_MARKETS = 32;
    /// The window walk reads at most one entry per second of the window: bounded too.
    uint256 internal constant MAX_WINDOW_SECONDS = 3600;

    /// How a liquidation entry point treats an account it cannot act on.
    enum Mode {
        Revert, // liquidate: reverts AccountNotFound / NotEligibleForLiquidation
        Skip, // liquidateMany: LiquidationSkipped instead
        FlaggedOnly // liquidateFlagged*: only flagged accounts, never a price
    }

    struct GlobalConfig {
        uint256 minKeeperRewardUsd;
        uint256 maxKeeperRewardUsd;
        uint256 stepRewardUsd;
        uint256 maxPriceAge;
    }

    /// One second of a market's rolling liquidation window (same-second liquidations add up).
    struct WindowEntry {
        uint128 timestamp;
        uint128 amount;
    }

    struct Market {
        bool exists;
        /// window entries live in [windowHead, windowTail); older ones are pruned
        uint64 windowHead;
        uint64 windowTail;
        uint64 latestLiquidationTimestamp;
        MarketConfig config;
        mapping(uint256 => WindowEntry) window;
    }

    struct Position {
        int128 size;
        uint128 entryPrice;
    }

    struct Account {
        address owner;
        uint32 openPositions;
        bool flagged;
        int256 collateral;
    }

    /// The flagged list, oldest first: a doubly linked list on account ids (0 ends it).
    struct FlagLink {
        uint128 prev;
        uint128 next;
    }

    /// A position with the price it is valued at (memory only).
    struct PositionAt {
        uint128 marketId;
        int128 size;
        uint256 entryPrice;
        uint256 price;
    }

    struct Health {
        int256 availableMargin;
        uint256 requiredInitial;
        uint256 requiredMaintenance;
        uint256 liquidationReward;
        bool liquidatable;
    }

    IPyth internal immutable _pyth;
    IERC20 internal immutable _collateralToken;

    GlobalConfig internal _global;
    uint128[] internal _marketIds;
    mapping(uint128 => Market) internal _markets;
    mapping(uint128 => Account) internal _accounts;
    mapping(uint128 => mapping(uint128 => Position)) internal _positions;
    mapping(uint128 => FlagLink) internal _flagLinks;
    uint128 internal _flagHead;
    uint128 internal _flagTail;

    /// Set while multicall runs: liquidate(uint128) accepts the multicall's msg.value only then.
    bool transient _inMulticall;

    constructor(
        address pyth_,
        address collateralToken_,
        uint256 minKeeperRewardUsd,
        uint256 maxKeeperRewardUsd,
        uint256 stepRewardUsd,
        uint256 maxPriceAge
    ) Ownable(msg.sender) {
        _pyth = IPyth(pyth_);
        _collateralToken = IERC20(collateralToken_);
        _setGlobalConfig(minKeeperRewardUsd, maxKeeperRewardUsd, stepRewardUsd, maxPriceAge);
    }

    // ------------------------------------------------------------------ configuration (owner)

    function setGlobalConfig(
        uint256 minKeeperRewardUsd,
        uint256 maxKeeperRewardUsd,
        uint256 stepRewardUsd,
        uint256 maxPriceAge
    ) external onlyOwner {
        _setGlobalConfig(minKeeperRewardUsd, maxKeeperRewardUsd, stepRewardUsd, maxPriceAge);
    }

    function createMarket(uint128 marketId, string calldata name, MarketConfig calldata config) external onlyOwner {
        if (marketId == 0 || _markets[marketId].exists || _marketIds.length >= MAX_MARKETS) {
            revert InvalidMarketConfig();
        }
        _validate(config);
        Market storage m = _markets[marketId];
        m.exists = true;
        m.config = config;
        _marketIds.push(marketId);
        emit MarketCreated(marketId, name);
        emit MarketConfigured(marketId, config);
    }

    /// @dev A market's window may be resized but not switched on or off: a market without one records no liquidation,
    ///      and a window switched on would start from entries nobody kept.
    function setMarketConfig(uint128 marketId, MarketConfig calldata config) external onlyOwner {
        Market storage m = _market(marketId);
        _validate(config);
        if ((m.config.maxSecondsInLiquidationWindow == 0) != (config.maxSecondsInLiquidationWindow == 0)) {
            revert InvalidMarketConfig();
        }
        m.config = config;
        emit MarketConfigured(marketId, config);
    }

    function _setGlobalConfig(uint256 minReward, uint256 maxReward, uint256 stepReward, uint256 maxPriceAge) internal {
        if (minReward > maxReward || maxPriceAge > type(uint64).max) revert InvalidMarketConfig();
        _global = GlobalConfig(minReward, maxReward, stepReward, maxPriceAge);
        emit GlobalConfigured(minReward, maxReward, stepReward, maxPriceAge);
    }

    function _validate(MarketConfig calldata c) internal pure {
        if (
            c.feedId == bytes32(0) || c.skewScale == 0 || c.makerFeeRatio >= WAD || c.takerFeeRatio >= WAD
                || c.minimumInitialMarginRatio > WAD || c.maintenanceMarginScalar > WAD || c.flagRewardRatio >= WAD
                || c.maxSecondsInLiquidationWindow > MAX_WINDOW_SECONDS
                || (c.maxSecondsInLiquidationWindow != 0 && _maxLiquidationInWindow(c) == 0)
        ) revert InvalidMarketConfig();
    }

    // ------------------------------------------------------------------ accounts and trading

    function createAccount(uint128 accountId) external {
        // 0 is reserved: it counts as taken
        if (accountId == 0 || _accounts[accountId].owner != address(0)) revert AccountExists(accountId);
        _accounts[accountId].owner = msg.sender;
        emit AccountCreated(accountId, msg.sender);
    }

    function modifyCollateral(uint128 accountId, uint128 collateralId, int256 amountDelta) external nonReentrant {
        Account storage a = _ownedAccount(accountId);
        // collateral ids are (synth) market ids as in Synthetix; only 0, the quote token, exists
        if (collateralId != 0) revert MarketNotFound(collateralId);
        if (amountDelta == 0) revert ZeroAmount();
        if (amountDelta > 0) {
            _collateralToken.safeTransferFrom(msg.sender, address(this), uint256(amountDelta));
            a.collateral += amountDelta;
            emit CollateralModified(accountId, 0, amountDelta, msg.sender);
        } else {
            a.collateral += amountDelta;
            _requireInitial(_health(a.collateral, _positionsAt(accountId, a, 0)));
            emit CollateralModified(accountId, 0, amountDelta, msg.sender);
            _collateralToken.safeTransfer(msg.sender, uint256(-amountDelta));
        }
    }

    function modifyPosition(uint128 accountId, uint128 marketId, int128 sizeDelta, bytes[] calldata priceUpdateData)
        external
        payable
        nonReentrant
    {
        Account storage a = _ownedAccount(accountId);
        if (sizeDelta == 0) revert ZeroAmount();
        _market(marketId);
        _updatePrices(priceUpdateData);

        PositionAt[] memory ps = _positionsAt(accountId, a, marketId);
        uint256 k;
        while (ps[k].marketId != marketId) k++;
        uint256 fillPrice = ps[k].price;
        Position storage p = _positions[accountId][marketId];
        int128 oldSize = p.size;
        int256 pnl = _pnl(oldSize, p.entryPrice, fillPrice);
        uint256 fee = _mulDecimal(_mulDecimal(_abs(sizeDelta), fillPrice), _markets[marketId].config.takerFeeRatio);
        int128 newSize = SafeCast.toInt128(int256(oldSize) + int256(sizeDelta));

        a.collateral += pnl - int256(fee);
        if (oldSize == 0) a.openPositions++;
        else if (newSize == 0) a.openPositions--;
        if (newSize == 0) {
            delete _positions[accountId][marketId];
        } else {
            p.size = newSize;
            p.entryPrice = uint128(fillPrice);
        }
        ps[k].size = newSize;
        ps[k].entryPrice = fillPrice;
        _requireInitial(_health(a.collateral, ps));
        emit OrderSettled(marketId, accountId, fillPrice, pnl, sizeDelta, newSize, fee, msg.sender);
    }

    // ------------------------------------------------------------------ liquidation

    function liquidate(uint128 accountId, bytes[] calldata priceUpdateData)
        external
        payable
        nonReentrant
        returns (uint256 liquidationReward)
    {
        _updatePrices(priceUpdateData);
        return _liquidateOne(accountId);
    }

    /// @dev Payable only so that it composes in a multicall whose msg.value pays fulfillOracleQuery: outside a
    ///      multicall it refuses ether as a non-payable function would (empty revert).
    function liquidate(uint128 accountId) external payable nonReentrant returns (uint256 liquidationReward) {
        if (msg.value != 0 && !_inMulticall) revert();
        return _liquidateOne(accountId);
    }

    function liquidateMany(uint128[] calldata accountIds, bytes[] calldata priceUpdateData)
        external
        payable
        nonReentrant
        returns (uint256 liquidationReward)
    {
        _updatePrices(priceUpdateData);
        uint256 budget = _collateralToken.balanceOf(address(this));
        for (uint256 i = 0; i < accountIds.length; i++) {
            (uint256 paid,) = _liquidateAccount(accountIds[i], Mode.Skip, budget - liquidationReward);
            liquidationReward += paid;
        }
        _pay(liquidationReward);
    }

    function liquidateFlagged(uint256 maxNumberOfAccounts) external nonReentrant returns (uint256 liquidationReward) {
        uint256 budget = _collateralToken.balanceOf(address(this));
        uint128 id = _flagHead;
        for (uint256 i = 0; i < maxNumberOfAccounts && id != 0; i++) {
            uint128 next = _flagLinks[id].next; // read before the account may leave the list
            (uint256 paid,) = _liquidateAccount(id, Mode.FlaggedOnly, budget - liquidationReward);
            liquidationReward += paid;
            id = next;
        }
        _pay(liquidationReward);
    }

    function liquidateFlaggedAccounts(uint128[] calldata accountIds)
        external
        nonReentrant
        returns (uint256 liquidationReward)
    {
        uint256 budget = _collateralToken.balanceOf(address(this));
        for (uint256 i = 0; i < accountIds.length; i++) {
            (uint256 paid,) = _liquidateAccount(accountIds[i], Mode.FlaggedOnly, budget - liquidationReward);
            liquidationReward += paid;
        }
        _pay(liquidationReward);
    }

    function _liquidateOne(uint128 accountId) internal returns (uint256 paid) {
        (paid,) = _liquidateAccount(accountId, Mode.Revert, _collateralToken.balanceOf(address(this)));
        _pay(paid);
    }

    /// @dev The liquidation of one account shared by every entry point (docs/cross-margin-engine.md, "Liquidation").
    ///      Returns the reward owed to the caller (paid by the entry point) or the reason it skipped the account.
    function _liquidateAccount(uint128 accountId, Mode mode, uint256 budget) internal returns (uint256 paid, uint8 skip) {
        Account storage a = _accounts[accountId];
        if (a.owner == address(0)) {
            if (mode == Mode.Revert) revert AccountNotFound(accountId);
            return _skip(accountId, SKIP_NOT_FOUND);
        }
        bool wasFlagged = a.flagged;
        uint256 reward;
        if (!wasFlagged) {
            if (a.openPositions == 0) {
                if (mode == Mode.Revert) revert NotEligibleForLiquidation(accountId);
                return _skip(accountId, SKIP_NOT_FOUND);
            }
            if (mode == Mode.FlaggedOnly) return _skip(accountId, SKIP_NOT_LIQUIDATABLE);
            Health memory h = _health(a.collateral, _positionsAt(accountId, a, 0));
            if (!h.liquidatable) {
                if (mode == Mode.Revert) revert NotEligibleForLiquidation(accountId);
                return _skip(accountId, SKIP_NOT_LIQUIDATABLE);
            }
            a.collateral = 0; // seized: it stays in the engine
            reward = h.liquidationReward;
            emit AccountFlaggedForLiquidation(
                accountId, h.availableMargin, h.requiredMaintenance, h.liquidationReward, h.liquidationReward
            );
        }

        bool closedAny = _closePositions(accountId, a);
        if (wasFlagged) {
            if (!closedAny) {
                if (mode != Mode.Revert) return _skip(accountId, SKIP_NO_CAPACITY);
                emit AccountLiquidationAttempt(accountId, 0, false);
                return (0, DONE);
            }
            reward += _global.stepRewardUsd;
        }
        if (reward > _global.maxKeeperRewardUsd) reward = _global.maxKeeperRewardUsd;
        // the flag is written only when it outlives this call: an account closed in full at once never joins the list
        bool full = a.openPositions == 0;
        if (full && wasFlagged) {
            a.flagged = false;
            _removeFlag(accountId);
        } else if (!full && !wasFlagged) {
            a.flagged = true;
            _pushFlag(accountId);
        }
        paid = reward < budget ? reward : budget;
        emit AccountLiquidationAttempt(accountId, paid, full);
        return (paid, DONE);
    }

    /// @dev Closes each open position of the account, markets in creation order, up to its market's window capacity.
    function _closePositions(uint128 accountId, Account storage a) internal returns (bool closedAny) {
        uint256 left = a.openPositions;
        for (uint256 i = 0; i < _marketIds.length && left > 0; i++) {
            uint128 marketId = _marketIds[i];
            Position storage p = _positions[accountId][marketId];
            int128 size = p.size;
            if (size == 0) continue;
            left--;
            Market storage m = _markets[marketId];
            uint256 amount = _abs(size);
            if (m.config.maxSecondsInLiquidationWindow != 0) {
                (uint256 capacity,) = _capacity(m);
                if (capacity < amount) amount = capacity;
            }
            if (amount == 0) continue;
            // amount <= |size| <= 2^127
            int128 newSize = size > 0 ? size - int128(int256(amount)) : size + int128(int256(amount));
            if (newSize == 0) {
                delete _positions[accountId][marketId];
                a.openPositions--;
            } else {
                p.size = newSize;
            }
            _recordLiquidation(m, amount);
            emit PositionLiquidated(accountId, marketId, amount, newSize);
            closedAny = true;
        }
    }

    function _skip(uint128 accountId, uint8 reason) internal returns (uint256, uint8) {
        emit LiquidationSkipped(accountId, reason);
        return (0, reason);
    }

    function _pay(uint256 amount) internal {
        if (amount > 0) _collateralToken.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ liquidation window

    /// Synthetix PerpsMarketConfiguration.maxLiquidationAmountInWindow.
    function _maxLiquidationInWindow(MarketConfig calldata c) internal pure returns (uint256) {
        return _maxInWindow(
            c.makerFeeRatio, c.takerFeeRatio, c.skewScale, c.maxLiquidationLimitAccumulationMultiplier, c.maxSecondsInLiquidationWindow
        );
    }

    function _maxInWindow(uint256 makerFee, uint256 takerFee, uint256 skewScale, uint256 multiplier, uint256 seconds_)
        internal
        pure
        returns (uint256)
    {
        return _mulDecimal(_mulDecimal(makerFee + takerFee, skewScale), multiplier) * seconds_;
    }

    /// Capacity left and the cap, for a market with a window (maxSecondsInLiquidationWindow > 0).
    function _capacity(Market storage m) internal view returns (uint256 capacity, uint256 maxInWindow) {
        MarketConfig storage c = m.config;
        uint256 window = c.maxSecondsInLiquidationWindow;
        maxInWindow = _maxInWindow(
            c.makerFeeRatio, c.takerFeeRatio, c.skewScale, c.maxLiquidationLimitAccumulationMultiplier, window
        );
        uint256 used;
        // newest first, until the first entry out of the window (timestamps never decrease)
        for (uint256 j = m.windowTail; j > m.windowHead; j--) {
            WindowEntry storage e = m.window[j - 1];
            if (e.timestamp + window <= block.timestamp) break;
            used += e.amount;
        }
        capacity = used >= maxInWindow ? 0 : maxInWindow - used;
    }

    function _recordLiquidation(Market storage m, uint256 amount) internal {
        m.latestLiquidationTimestamp = uint64(block.timestamp);
        uint256 window = m.config.maxSecondsInLiquidationWindow;
        if (window == 0) return;
        uint64 head = m.windowHead;
        uint64 tail = m.windowTail;
        // prune what no longer counts (gas-bounded: each entry is written once and deleted once)
        while (head < tail && m.window[head].timestamp + window <= block.timestamp) {
            delete m.window[head];
            head++;
        }
        if (tail > head && m.window[tail - 1].timestamp == block.timestamp) {
            m.window[tail - 1].amount += uint128(amount);
        } else {
            m.window[tail] = WindowEntry(uint128(block.timestamp), uint128(amount));
            tail++;
        }
        m.windowHead = head;
        m.windowTail = tail;
    }

    // ------------------------------------------------------------------ flagged list

    function _pushFlag(uint128 accountId) internal {
        uint128 tail = _flagTail;
        _flagLinks[accountId] = FlagLink(tail, 0);
        if (tail == 0) _flagHead = accountId;
        else _flagLinks[tail].next = accountId;
        _flagTail = accountId;
    }

    function _removeFlag(uint128 accountId) internal {
        FlagLink memory link = _flagLinks[accountId];
        if (link.prev == 0) _flagHead = link.next;
        else _flagLinks[link.prev].next = link.next;
        if (link.next == 0) _flagTail = link.prev;
        else _flagLinks[link.next].prev = link.prev;
        delete _flagLinks[accountId];
    }

    // ------------------------------------------------------------------ ERC-7412

    function oracleId() external pure returns (bytes32) {
        return bytes32("PYTH");
    }

    function fulfillOracleQuery(bytes calldata signedOffchainData) external payable {
        (,,, bytes[] memory updateData) = abi.decode(signedOffchainData, (uint8, uint64, bytes32[], bytes[]));
        _pyth.updatePriceFeeds{value: msg.value}(updateData);
    }

    function multicall(bytes[] calldata data) external payable returns (bytes[] memory results) {
        bool outer = !_inMulticall;
        _inMulticall = true;
        results = new bytes[](data.length);
        for (uint256 i = 0; i < data.length; i++) {
            (bool ok, bytes memory result) = address(this).delegatecall(data[i]);
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(result, 32), mload(result))
                }
            }
            results[i] = result;
        }
        if (outer) _inMulticall = false;
    }

    // ------------------------------------------------------------------ views

    function pyth() external view returns (address) {
        return address(_pyth);
    }

    function collateralToken() external view returns (address) {
        return address(_collateralToken);
    }

    function globalConfig()
        external
        view
        returns (uint256 minKeeperRewardUsd, uint256 maxKeeperRewardUsd, uint256 stepRewardUsd, uint256 maxPriceAge)
    {
        GlobalConfig memory g = _global;
        return (g.minKeeperRewardUsd, g.maxKeeperRewardUsd, g.stepRewardUsd, g.maxPriceAge);
    }

    function marketIds() external view returns (uint128[] memory) {
        return _marketIds;
    }

    function getMarketConfig(uint128 marketId) external view returns (MarketConfig memory) {
        return _market(marketId).config;
    }

    function indexPrice(uint128 marketId) external view returns (uint256) {
        Market storage m = _market(marketId);
        (uint256 price, bool fresh) = _readPrice(m.config.feedId);
        if (!fresh) {
            bytes32[] memory ids = new bytes32[](1);
            ids[0] = m.config.feedId;
            _requireOracleData(ids);
        }
        return price;
    }

    function accountOwner(uint128 accountId) external view returns (address) {
        return _accounts[accountId].owner;
    }

    function getCollateral(uint128 accountId) external view returns (int256) {
        return _accounts[accountId].collateral;
    }

    function getOpenPosition(uint128 accountId, uint128 marketId) external view returns (int128 size, uint256 entryPrice) {
        Position storage p = _positions[accountId][marketId];
        return (p.size, p.entryPrice);
    }

    function getAvailableMargin(uint128 accountId) external view returns (int256) {
        return _accountHealth(accountId).availableMargin;
    }

    function getRequiredMargins(uint128 accountId)
        external
        view
        returns (uint256 requiredInitialMargin, uint256 requiredMaintenanceMargin, uint256 maxLiquidationReward)
    {
        Health memory h = _accountHealth(accountId);
        return (h.requiredInitial, h.requiredMaintenance, h.liquidationReward);
    }

    function canLiquidate(uint128 accountId) external view returns (bool) {
        return _accountHealth(accountId).liquidatable;
    }

    function isFlagged(uint128 accountId) external view returns (bool) {
        return _accounts[accountId].flagged;
    }

    function flaggedAccounts() external view returns (uint128[] memory ids) {
        uint256 count;
        for (uint128 id = _flagHead; id != 0; id = _flagLinks[id].next) count++;
        ids = new uint128[](count);
        uint256 i;
        for (uint128 id = _flagHead; id != 0; id = _flagLinks[id].next) ids[i++] = id;
    }

    function liquidationCapacity(uint128 marketId)
        external
        view
        returns (uint256 capacity, uint256 maxLiquidationInWindow, uint256 latestLiquidationTimestamp)
    {
        Market storage m = _market(marketId);
        latestLiquidationTimestamp = m.latestLiquidationTimestamp;
        if (m.config.maxSecondsInLiquidationWindow == 0) {
            return (type(uint256).max, type(uint256).max, latestLiquidationTimestamp);
        }
        (capacity, maxLiquidationInWindow) = _capacity(m);
    }

    // ------------------------------------------------------------------ internals: accounts, prices, margins

    function _market(uint128 marketId) internal view returns (Market storage m) {
        m = _markets[marketId];
        if (!m.exists) revert MarketNotFound(marketId);
    }

    function _ownedAccount(uint128 accountId) internal view returns (Account storage a) {
        a = _accounts[accountId];
        if (a.owner == address(0)) revert AccountNotFound(accountId);
        if (a.owner != msg.sender) revert PermissionDenied(accountId, msg.sender);
        if (a.flagged) revert AccountFlagged(accountId);
    }

    function _accountHealth(uint128 accountId) internal view returns (Health memory) {
        Account storage a = _accounts[accountId];
        return _health(a.collateral, _positionsAt(accountId, a, 0));
    }

    function _updatePrices(bytes[] calldata data) internal {
        if (data.length > 0 || msg.value > 0) _pyth.updatePriceFeeds{value: msg.value}(data);
    }

    /// @dev The account's open positions (and `extraMarketId`'s, even when flat), in market creation order, each with
    ///      its fresh price; reverts OracleDataRequired naming every feed that is missing or stale.
    function _positionsAt(uint128 accountId, Account storage a, uint128 extraMarketId)
        internal
        view
        returns (PositionAt[] memory ps)
    {
        uint256 count = a.openPositions;
        if (extraMarketId != 0 && _positions[accountId][extraMarketId].size == 0) count++;
        ps = new PositionAt[](count);
        if (count == 0) return ps;
        bytes32[] memory stale = new bytes32[](count);
        uint256 staleCount;
        uint256 n;
        for (uint256 i = 0; i < _marketIds.length && n < count; i++) {
            uint128 marketId = _marketIds[i];
            Position storage p = _positions[accountId][marketId];
            if (p.size == 0 && marketId != extraMarketId) continue;
            bytes32 feedId = _markets[marketId].config.feedId;
            (uint256 price, bool fresh) = _readPrice(feedId);
            if (!fresh && !_contains(stale, staleCount, feedId)) stale[staleCount++] = feedId;
            ps[n++] = PositionAt(marketId, p.size, p.entryPrice, price);
        }
        if (staleCount > 0) {
            assembly ("memory-safe") {
                mstore(stale, staleCount)
            }
            _requireOracleData(stale);
        }
    }

    function _contains(bytes32[] memory list, uint256 length, bytes32 value) internal pure returns (bool) {
        for (uint256 i = 0; i < length; i++) {
            if (list[i] == value) return true;
        }
        return false;
    }

    function _requireOracleData(bytes32[] memory feedIds) internal view {
        revert OracleDataRequired(address(this), abi.encode(uint8(1), uint64(_global.maxPriceAge), feedIds));
    }

    /// @dev Pyth's price as WAD when fresh (|block.timestamp - publishTime| <= maxPriceAge, getPriceNoOlderThan's
    ///      rule); (0, false) when stale or never published. A fresh price that is not positive, or whose exponent is
    ///      outside [-18, 0], reverts InvalidPrice.
    function _readPrice(bytes32 feedId) internal view returns (uint256 wad, bool fresh) {
        try _pyth.getPriceUnsafe(feedId) returns (PythStructs.Price memory p) {
            uint256 age = block.timestamp > p.publishTime ? block.timestamp - p.publishTime : p.publishTime - block.timestamp;
            if (age > _global.maxPriceAge) return (0, false);
            if (p.price <= 0 || p.expo > 0 || p.expo < -18) revert InvalidPrice(feedId, p.price, p.expo);
            return (uint256(int256(p.price)) * 10 ** uint256(int256(18 + p.expo)), true);
        } catch (bytes memory reason) {
            // PriceFeedNotFound (never published); no data at all is a failure of the call itself (out of gas)
            if (reason.length == 0) revert();
            return (0, false);
        }
    }

    /// @dev The account rule (Synthetix PerpsAccount.isEligibleForLiquidation with calculateRequiredMargins per position).
    function _health(int256 collateral, PositionAt[] memory ps) internal view returns (Health memory h) {
        h.availableMargin = collateral;
        uint256 flagRewards;
        uint256 open;
        for (uint256 i = 0; i < ps.length; i++) {
            PositionAt memory p = ps[i];
            if (p.size == 0) continue;
            open++;
            MarketConfig storage c = _markets[p.marketId].config;
            (uint256 initialMargin, uint256 maintenanceMargin, uint256 flagReward) = _positionMargins(c, p.size, p.price);
            h.requiredInitial += initialMargin + c.minimumPositionMargin;
            h.requiredMaintenance += maintenanceMargin + c.minimumPositionMargin;
            flagRewards += flagReward;
            h.availableMargin += _pnl(p.size, p.entryPrice, p.price);
        }
        if (open == 0) return h;
        GlobalConfig storage g = _global;
        h.liquidationReward = flagRewards < g.minKeeperRewardUsd
            ? g.minKeeperRewardUsd
            : (flagRewards > g.maxKeeperRewardUsd ? g.maxKeeperRewardUsd : flagRewards);
        h.liquidatable = h.availableMargin < int256(h.requiredMaintenance + h.liquidationReward);
    }

    function _requireInitial(Health memory h) internal pure {
        uint256 required = h.requiredInitial + h.liquidationReward;
        if (h.availableMargin < int256(required)) revert InsufficientMargin(h.availableMargin, required);
    }

    /// Synthetix PerpsMarketConfiguration.calculateRequiredMargins.
    function _positionMargins(MarketConfig storage c, int128 size, uint256 price)
        internal
        view
        returns (uint256 initialMargin, uint256 maintenanceMargin, uint256 flagReward)
    {
        uint256 sizeAbs = _abs(size);
        uint256 impact = _divDecimal(sizeAbs, c.skewScale);
        uint256 imr = _mulDecimal(impact, c.initialMarginRatio) + c.minimumInitialMarginRatio;
        uint256 mmr = _mulDecimal(imr, c.maintenanceMarginScalar);
        uint256 notional = _mulDecimal(sizeAbs, price);
        initialMargin = _mulDecimal(notional, imr);
        maintenanceMargin = _mulDecimal(notional, mmr);
        flagReward = _mulDecimal(notional, c.flagRewardRatio);
    }

    /// size × (price − entryPrice) / 1e18, truncated toward zero.
    function _pnl(int128 size, uint256 entryPrice, uint256 price) internal pure returns (int256) {
        return int256(size) * (int256(price) - int256(entryPrice)) / int256(WAD);
    }

    function _mulDecimal(uint256 x, uint256 y) internal pure returns (uint256) {
        return x * y / WAD;
    }

    function _divDecimal(uint256 x, uint256 y) internal pure returns (uint256) {
        return x * WAD / y;
    }

    function _abs(int128 x) internal pure returns (uint256) {
        return x >= 0 ? uint256(int256(x)) : uint256(-int256(x));
    }
}

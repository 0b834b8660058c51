// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @notice The few Perp v2 ("Curie") ClearingHouse functions the liquidator calls.
interface IPerpV2ClearingHouse {
    struct ClosePositionParams {
        address baseToken;
        uint160 sqrtPriceLimitX96;
        uint256 oppositeAmountBound;
        uint256 deadline;
        bytes32 referralCode;
    }

    function liquidate(address trader, address baseToken, int256 positionSize) external;

    function cancelAllExcessOrders(address maker, address baseToken) external;

    function closePosition(ClosePositionParams calldata params) external returns (uint256 base, uint256 quote);

    function getVault() external view returns (address);

    function getAccountBalance() external view returns (address);
}

interface IPerpV2AccountBalance {
    function getTakerPositionSize(address trader, address baseToken) external view returns (int256);
}

/// @notice The few Perp v2 Vault functions the liquidator calls.
interface IPerpV2Vault {
    function deposit(address token, uint256 amount) external;

    function withdraw(address token, uint256 amount) external;
}

/// @title PerpV2Liquidator
/// @notice The keeper's own liquidator account on Perp v2. ClearingHouse has no batch call and makes msg.sender the
/// liquidator (it takes over the liquidated position and must hold the collateral for it), so batching needs a
/// contract that is itself the account: it holds the Vault deposit, liquidates many traders in one transaction
/// (skipping those that no longer qualify), and closes the positions it inherits.
/// The owner (the deployer) and the operators it authorises (several keeper keys) may call every function except
/// setOperator and transferOwnership. Collateral only ever comes from and goes back to the owner.
contract PerpV2Liquidator {
    using SafeERC20 for IERC20;

    struct Item {
        address trader;
        address baseToken;
        /// Same sign as the trader's position; 0 takes the most the protocol allows.
        int256 positionSize;
    }

    /// A maker whose excess orders in one market are cancelled before the items are liquidated.
    struct Order {
        address maker;
        address baseToken;
    }

    /// @notice A market whose position this contract holds (taken over) is closed through the pool, at a price at
    /// most `maxSlippageBps` from `refPriceX18` (quote per base, 18 decimals: the keeper's mark price).
    struct Close {
        address baseToken;
        uint256 refPriceX18;
    }

    /// Gas kept back from every inner call: a batch always has what it needs to report an item and go on, so it never
    /// runs out of gas itself, whatever gas limit it was sent with.
    uint256 private constant RESERVE = 60_000;
    /// An item (or a close) is not tried with less gas than this left: it is reported failed with an empty reason.
    uint256 private constant MIN_CALL_GAS = 400_000;

    IPerpV2ClearingHouse public immutable clearingHouse;
    IPerpV2Vault public immutable vault;
    IPerpV2AccountBalance public immutable accountBalance;
    address public owner;
    mapping(address => bool) public isOperator;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event OperatorSet(address indexed operator, bool allowed);
    /// A batch item that ClearingHouse.liquidate reverted, with the revert data (e.g. Error("CH_EAV")).
    event LiquidationFailed(address indexed trader, address indexed baseToken, bytes reason);
    event CancelExcessOrdersFailed(address indexed maker, address indexed baseToken, bytes reason);
    event InventoryClosed(address indexed baseToken, int256 positionSize, uint256 quote);
    event InventoryCloseFailed(address indexed baseToken, int256 positionSize, bytes reason);

    error NotOwner();
    error NotOperator();
    error ZeroAddress();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    /// The owner or an operator.
    modifier onlyOperator() {
        if (msg.sender != owner && !isOperator[msg.sender]) revert NotOperator();
        _;
    }

    constructor(IPerpV2ClearingHouse clearingHouse_) {
        if (address(clearingHouse_) == address(0)) revert ZeroAddress();
        clearingHouse = clearingHouse_;
        vault = IPerpV2Vault(clearingHouse_.getVault());
        accountBalance = IPerpV2AccountBalance(clearingHouse_.getAccountBalance());
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    function setOperator(address operator, bool allowed) external onlyOwner {
        isOperator[operator] = allowed;
        emit OperatorSet(operator, allowed);
    }

    /// @notice Pulls `amount` of `token` from the owner (who approved this contract) into the Vault, in this
    /// contract's name.
    function deposit(address token, uint256 amount) external onlyOperator {
        IERC20(token).safeTransferFrom(owner, address(this), amount);
        IERC20(token).forceApprove(address(vault), amount);
        vault.deposit(token, amount);
    }

    /// @notice Withdraws `amount` of `token` from the Vault to the owner.
    function withdraw(address token, uint256 amount) external onlyOperator {
        vault.withdraw(token, amount);
        IERC20(token).safeTransfer(owner, amount);
    }

    /// @notice Liquidates each item through ClearingHouse.liquidate(trader, baseToken, positionSize). An item that
    /// reverts (healthy again, already liquidated, maker orders left...) emits LiquidationFailed and the batch goes
    /// on; an empty reason means the item ran out of gas, or was not tried for lack of it.
    /// @return liquidated How many items succeeded.
    /// @return gasUsed The gas the call used from its first statement: what a simulation (eth_call) measures the
    /// transaction's gas limit by, in one execution.
    /// @return done Bit i set when item i (i < 256) was liquidated: the items a simulation skipped, whose gas the
    /// measure does not hold.
    function liquidateBatch(Item[] calldata items)
        external
        onlyOperator
        returns (uint256 liquidated, uint256 gasUsed, uint256 done)
    {
        uint256 start = gasleft();
        (liquidated, done) = _liquidateItems(items);
        gasUsed = start - gasleft();
    }

    /// @notice A maker's open orders block its liquidation (CH_CLWTISO): their excess orders are cancelled first,
    /// each on its own (a failed cancel is an event, not a revert), then the items are liquidated, in one transaction.
    function cancelAndLiquidate(Order[] calldata orders, Item[] calldata items)
        external
        onlyOperator
        returns (uint256 liquidated, uint256 gasUsed, uint256 done)
    {
        uint256 start = gasleft();
        (liquidated, done) = _cancelAndLiquidate(orders, items);
        gasUsed = start - gasleft();
    }

    function _cancelAndLiquidate(Order[] calldata orders, Item[] calldata items)
        internal
        returns (uint256 liquidated, uint256 done)
    {
        for (uint256 i = 0; i < orders.length; i++) {
            Order calldata o = orders[i];
            uint256 left = gasleft();
            if (left < MIN_CALL_GAS + RESERVE) {
                emit CancelExcessOrdersFailed(o.maker, o.baseToken, "");
                continue;
            }
            try clearingHouse.cancelAllExcessOrders{gas: left - RESERVE}(o.maker, o.baseToken) {}
            catch (bytes memory reason) {
                emit CancelExcessOrdersFailed(o.maker, o.baseToken, reason);
            }
        }
        return _liquidateItems(items);
    }

    /// @dev Each item liquidated in turn; one that fails is an event, not a revert. `done`: bit i set when item i
    /// (i < 256) was liquidated.
    function _liquidateItems(Item[] calldata items) internal returns (uint256 liquidated, uint256 done) {
        uint256 n = items.length;
        for (uint256 i = 0; i < n; i++) {
            Item calldata item = items[i];
            uint256 left = gasleft();
            if (left < MIN_CALL_GAS + RESERVE) {
                emit LiquidationFailed(item.trader, item.baseToken, "");
                continue;
            }
            try clearingHouse.liquidate{gas: left - RESERVE}(item.trader, item.baseToken, item.positionSize) {
                liquidated++;
                if (i < 256) done |= 1 << i;
            } catch (bytes memory reason) {
                emit LiquidationFailed(item.trader, item.baseToken, reason);
            }
        }
    }


    /// @notice cancelAndLiquidate, then the positions this contract holds in `closes` closed through the pool, each
    /// within `maxSlippageBps` of its reference price. A close that fails (slippage, the pool's tick limit, a paused
    /// market) emits InventoryCloseFailed and does not revert: the liquidations stand, the position is kept.
    function liquidateAndClose(
        Order[] calldata orders,
        Item[] calldata items,
        Close[] calldata closes,
        uint256 maxSlippageBps
    ) external onlyOperator returns (uint256 liquidated, uint256 gasUsed, uint256 done) {
        uint256 start = gasleft();
        (liquidated, done) = _cancelAndLiquidate(orders, items);
        _closeAll(closes, maxSlippageBps);
        gasUsed = start - gasleft();
    }

    /// @notice Closes the positions this contract holds in `closes` (see liquidateAndClose); returns how many closed.
    function closeInventory(Close[] calldata closes, uint256 maxSlippageBps)
        external
        onlyOperator
        returns (uint256 closed, uint256 gasUsed, uint256 done)
    {
        uint256 start = gasleft();
        closed = _closeAll(closes, maxSlippageBps);
        gasUsed = start - gasleft();
        done = 0; // no liquidation items
    }

    function _closeAll(Close[] calldata closes, uint256 maxSlippageBps) internal returns (uint256 closed) {
        require(maxSlippageBps < 10_000, "slippage");
        for (uint256 i = 0; i < closes.length; i++) {
            Close calldata c = closes[i];
            int256 size = accountBalance.getTakerPositionSize(address(this), c.baseToken);
            if (size == 0) continue;
            uint256 bound;
            if (size > 0) {
                // a long is sold (base to quote, exact input): at least this much quote back
                bound = (uint256(size) * c.refPriceX18 * (10_000 - maxSlippageBps)) / 10_000 / 1e18;
                if (bound == 0) bound = 1;
            } else {
                // a short is bought back (quote to base, exact output): at most this much quote paid
                bound = _ceilDiv(uint256(-size) * c.refPriceX18 * (10_000 + maxSlippageBps), 10_000 * 1e18);
            }
            uint256 left = gasleft();
            if (left < MIN_CALL_GAS + RESERVE) {
                emit InventoryCloseFailed(c.baseToken, size, "");
                continue;
            }
            try clearingHouse.closePosition{gas: left - RESERVE}(
                IPerpV2ClearingHouse.ClosePositionParams({
                    baseToken: c.baseToken,
                    sqrtPriceLimitX96: 0,
                    oppositeAmountBound: bound,
                    deadline: block.timestamp,
                    referralCode: bytes32(0)
                })
            ) returns (uint256, uint256 quote) {
                closed++;
                emit InventoryClosed(c.baseToken, size, quote);
            } catch (bytes memory reason) {
                emit InventoryCloseFailed(c.baseToken, size, reason);
            }
        }
    }

    function _ceilDiv(uint256 a, uint256 b) private pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }

    /// @notice Cancels a liquidatable maker's orders in one market (liquidate reverts CH_CLWTISO while they remain).
    /// @return ok Whether it succeeded; a failure emits CancelExcessOrdersFailed and does not revert.
    function cancelExcessOrders(address maker, address baseToken) external onlyOperator returns (bool ok) {
        try clearingHouse.cancelAllExcessOrders(maker, baseToken) {
            return true;
        } catch (bytes memory reason) {
            emit CancelExcessOrdersFailed(maker, baseToken, reason);
            return false;
        }
    }

    /// @notice Closes this contract's position in `baseToken` through the pool (no price limit, no referral code).
    /// It can close only part of the position when the pool's per-block tick limit stops it.
    function closePosition(address baseToken, uint256 oppositeAmountBound, uint256 deadline)
        external
        onlyOperator
        returns (uint256 base, uint256 quote)
    {
        return clearingHouse.closePosition(
            IPerpV2ClearingHouse.ClosePositionParams({
                baseToken: baseToken,
                sqrtPriceLimitX96: 0,
                oppositeAmountBound: oppositeAmountBound,
                deadline: deadline,
                referralCode: bytes32(0)
            })
        );
    }
}

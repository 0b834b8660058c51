// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title TestUSD
/// @notice The cross-margin devnet's quote token, like Synthetix's snxUSD: an OpenZeppelin ERC-20 with 18 decimals
///         (so that 1 token is 1e18 wei of it, the WAD every amount of CrossMarginEngine is in), minted by its owner.
contract TestUSD is ERC20, Ownable {
    constructor() ERC20("Test USD", "tUSD") Ownable(msg.sender) {}

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

// Chainlink's own test aggregator (decimals, latestRoundData, updateAnswer), compiled into abi/ for the devnet.
import {MockV3Aggregator} from "@chainlink/contracts/src/v0.8/tests/MockV3Aggregator.sol";

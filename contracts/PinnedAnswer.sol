// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @notice Code the keeper puts in place of an oracle aggregator for one eth_call (a state override), to simulate
/// liquidations at an answer that is still pending in the mempool (issue 9, the fallback where a node has no
/// eth_simulateV1). It answers AggregatorV3Interface's reads with the round held in its first four storage slots,
/// which the same override sets. Never deployed.
contract PinnedAnswer {
    uint256 private pinnedRound; // slot 0
    int256 private pinnedAnswer; // slot 1
    uint256 private pinnedUpdatedAt; // slot 2
    uint256 private pinnedDecimals; // slot 3

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        roundId = uint80(pinnedRound);
        return (roundId, pinnedAnswer, pinnedUpdatedAt, pinnedUpdatedAt, roundId);
    }

    function latestAnswer() external view returns (int256) {
        return pinnedAnswer;
    }

    function latestTimestamp() external view returns (uint256) {
        return pinnedUpdatedAt;
    }

    function latestRound() external view returns (uint256) {
        return pinnedRound;
    }

    function decimals() external view returns (uint8) {
        return uint8(pinnedDecimals);
    }
}

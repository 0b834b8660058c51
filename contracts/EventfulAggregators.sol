// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AggregatorV2V3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV2V3Interface.sol";

/// @notice Chainlink's MockV3Aggregator, emitting what production aggregators (OCR2Aggregator, FluxAggregator) emit
/// on every new round: AnswerUpdated(current, roundId, updatedAt) and NewRound(roundId, startedBy, startedAt). For
/// tests of a keeper that follows answers from logs.
contract EventfulAggregator is AggregatorV2V3Interface {
    uint256 public constant override version = 0;

    uint8 public override decimals;
    int256 public override latestAnswer;
    uint256 public override latestTimestamp;
    uint256 public override latestRound;

    mapping(uint256 => int256) public override getAnswer;
    mapping(uint256 => uint256) public override getTimestamp;
    mapping(uint256 => uint256) private getStartedAt;

    constructor(uint8 _decimals, int256 _initialAnswer) {
        decimals = _decimals;
        updateAnswer(_initialAnswer);
    }

    function updateAnswer(int256 _answer) public {
        latestAnswer = _answer;
        latestTimestamp = block.timestamp;
        latestRound++;
        getAnswer[latestRound] = _answer;
        getTimestamp[latestRound] = block.timestamp;
        getStartedAt[latestRound] = block.timestamp;
        emit NewRound(latestRound, msg.sender, block.timestamp);
        emit AnswerUpdated(_answer, latestRound, block.timestamp);
    }

    function getRoundData(uint80 _roundId)
        external
        view
        override
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return (_roundId, getAnswer[_roundId], getStartedAt[_roundId], getTimestamp[_roundId], _roundId);
    }

    function latestRoundData()
        external
        view
        override
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return (
            uint80(latestRound),
            getAnswer[latestRound],
            getStartedAt[latestRound],
            getTimestamp[latestRound],
            uint80(latestRound)
        );
    }

    function description() external pure override returns (string memory) {
        return "EventfulAggregator";
    }
}

/// @notice The shape of Chainlink's EACAggregatorProxy as far as readers see it: latestRoundData forwarded to the
/// current aggregator, which `aggregator()` names (its events come from there, not from the proxy), and which the
/// owner may replace (AggregatorConfirmed, as the real proxy emits). Round ids are the aggregator's (the real proxy
/// adds a phase id in the high bits).
contract SimpleAggregatorProxy {
    AggregatorV2V3Interface public aggregator;
    address public immutable owner;

    event AggregatorConfirmed(address indexed previous, address indexed latest);

    constructor(AggregatorV2V3Interface _aggregator) {
        aggregator = _aggregator;
        owner = msg.sender;
    }

    function setAggregator(AggregatorV2V3Interface _aggregator) external {
        require(msg.sender == owner, "only owner");
        emit AggregatorConfirmed(address(aggregator), address(_aggregator));
        aggregator = _aggregator;
    }

    function decimals() external view returns (uint8) {
        return aggregator.decimals();
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return aggregator.latestRoundData();
    }
}

import { type Address, decodeFunctionResult, encodeFunctionData, type Hex, type PublicClient } from "viem";
import { mockV3AggregatorAbi } from "../../../abi/MockV3Aggregator.ts";
import { classifyRpcError } from "../../chain/errors.ts";

/** A market priced by a Chainlink-style push oracle, as the price kit and the precomputer need it. */
export interface ChainlinkMarket {
  readonly id: number;
  readonly name: string;
  /** The aggregator (or proxy) its answers come from. */
  readonly oracle: Address;
  /** 10^(18 - the oracle's decimals): an answer times this is a WAD price. */
  readonly priceScale: bigint;
  /** The oldest answer the exchange accepts, seconds. */
  readonly maxOracleAge: bigint;
}

import { readPinned } from "../../chain/pinnedReads.ts";

/** One answer of a Chainlink aggregator (AggregatorV3Interface.latestRoundData). */
export interface OracleReading {
  readonly roundId: bigint;
  readonly answer: bigint;
  readonly updatedAt: bigint;
}

export type MarkPriceResult =
  | { readonly ok: true; readonly markPrice: bigint; readonly reading: OracleReading }
  | {
      readonly ok: false;
      readonly reason: "non_positive_answer" | "stale" | "future_timestamp";
      readonly reading: OracleReading;
    };

/** Multicall3's address on nearly every EVM chain (the same deployer and nonce everywhere). */
export const MULTICALL3_ADDRESS: Address = "0xcA11bde05977b3631167028862bE2a173976CA11";

/** An oracle's latestRoundData could not be read at the block (the call reverted, or its answer did not decode). */
export class OracleReadError extends Error {
  override name = "OracleReadError";
}

const LATEST_ROUND_DATA = encodeFunctionData({ abi: mockV3AggregatorAbi, functionName: "latestRoundData" });

function decodeReading(data: Hex): OracleReading {
  const [roundId, answer, , updatedAt] = decodeFunctionResult({
    abi: mockV3AggregatorAbi,
    functionName: "latestRoundData",
    data,
  });
  return { roundId, answer, updatedAt };
}

/**
 * Reads every oracle's latest round at one block, pinned by its hash (EIP-1898), so that the answers belong to the
 * block whose logs they go with, whatever the chain did since. With Multicall3 it is one eth_call (aggregate3, each
 * oracle allowed to fail alone); without, one eth_call per oracle, which the batching transport sends in one HTTP
 * request. One oracle that cannot be read never hides the others: each result settles on its own.
 */
export async function readOracles(
  client: PublicClient,
  oracles: readonly Address[],
  blockHash: Hex,
  multicall3?: Address,
): Promise<PromiseSettledResult<OracleReading>[]> {
  const answers = await readPinned(
    client,
    oracles.map((to) => ({ to, data: LATEST_ROUND_DATA })),
    blockHash,
    multicall3,
  );
  return answers.map((r, i): PromiseSettledResult<OracleReading> => {
    if (r.status === "rejected") {
      if (!multicall3) return r; // the node's own error (a transport failure is no verdict on the oracle)
      return { status: "rejected", reason: new OracleReadError(`latestRoundData of ${oracles[i]} reverted`) };
    }
    try {
      return { status: "fulfilled", value: decodeReading(r.value) };
    } catch (error) {
      return {
        status: "rejected",
        reason: new OracleReadError(`latestRoundData of ${oracles[i]} did not decode: ${(error as Error).message}`),
      };
    }
  });
}

/**
 * The mark price a reading gives, by the contract's own rules (PerpEngine._markPrice): a positive answer no older
 * than the market's maxOracleAge at `timestamp`. A refused reading never becomes a price.
 */
export function markPriceOf(reading: OracleReading, market: ChainlinkMarket, timestamp: bigint): MarkPriceResult {
  if (reading.answer <= 0n) return { ok: false, reason: "non_positive_answer", reading };
  if (reading.updatedAt === 0n) return { ok: false, reason: "stale", reading };
  if (reading.updatedAt > timestamp) return { ok: false, reason: "future_timestamp", reading };
  if (timestamp - reading.updatedAt > market.maxOracleAge) return { ok: false, reason: "stale", reading };
  return { ok: true, markPrice: reading.answer * market.priceScale, reading };
}

/** `aggregator()`: what a Chainlink proxy (EACAggregatorProxy) forwards to. */
const AGGREGATOR_SELECTOR = "0x245a7bfc";

/**
 * Where an oracle's answers are emitted from: the aggregator behind it when it is a proxy (its `aggregator()`),
 * otherwise the oracle itself (the call reverts or answers no address). Read at the block's hash.
 */
export async function resolveSource(client: PublicClient, oracle: Address, blockHash: Hex): Promise<Address> {
  let answer: unknown;
  try {
    answer = await client.request({
      method: "eth_call",
      params: [{ to: oracle, data: AGGREGATOR_SELECTOR }, { blockHash }],
    });
  } catch (error) {
    if (classifyRpcError(error) === "rejected") return oracle; // no such function: not a proxy
    throw error;
  }
  if (typeof answer !== "string" || answer.length !== 66 || !/^0x0{24}[0-9a-fA-F]{40}$/.test(answer)) return oracle;
  const address = `0x${answer.slice(26)}` as Address;
  return /^0x0{40}$/.test(address) ? oracle : address;
}

/**
 * Shared fixtures for the Perp v2 unit tests: logs built with viem's encoders, a deployment's addresses, a book with
 * markets, and shorthand for events.
 */
import { type AbiEvent, type Address, encodeAbiParameters, encodeEventTopics, type Hex, pad, toHex } from "viem";
import { PerpV2Book, type PerpV2Global } from "../../../src/protocol/perpV2/book.ts";
import type {
  PerpV2Contracts,
  PerpV2Event,
  PerpV2EventBody,
  TimedChainLog,
} from "../../../src/protocol/perpV2/events.ts";
import type { LogRef } from "../../../src/state/events.ts";

const addr = (n: number): Address => pad(toHex(n), { size: 20 }) as Address;

export const CONTRACTS: PerpV2Contracts = {
  clearingHouse: addr(0xc1),
  accountBalance: addr(0xab),
  vault: addr(0x7a),
  exchange: addr(0xe0),
  marketRegistry: addr(0x3e),
  clearingHouseConfig: addr(0xcc),
  baseTokens: [addr(0xb1), addr(0xb2)],
};

export const USDC = addr(0x05dc);
export const IF = addr(0x1f);
export const ETH = addr(0xb1);
export const BTC = addr(0xb2);
export const QUOTE = addr(0x9a);
export const trader = (i: number): Address => addr(0x1000 + i);

export const WAD = 10n ** 18n;

/** A log of `event` with `args`, at block/index, as an RPC answer (hex positions, blockTimestamp). */
export function logOf(
  address: Address,
  abi: readonly unknown[],
  eventName: string,
  args: Record<string, unknown>,
  at: { block?: bigint; index?: number; timestamp?: bigint | null; tx?: Hex } = {},
): TimedChainLog {
  const event = (abi as AbiEvent[]).find((e) => e.type === "event" && e.name === eventName);
  if (!event) throw new Error(`no event ${eventName}`);
  const topics = encodeEventTopics({ abi: [event], eventName, args } as never) as Hex[];
  const data = encodeAbiParameters(
    event.inputs.filter((p) => !p.indexed),
    event.inputs.filter((p) => !p.indexed).map((p) => args[p.name ?? ""]),
  );
  const block = at.block ?? 10n;
  return {
    address,
    topics: topics as [Hex, ...Hex[]],
    data,
    blockNumber: toHex(block),
    logIndex: toHex(at.index ?? 0),
    blockHash: pad(toHex(block), { size: 32 }),
    transactionHash: at.tx ?? pad(toHex(block * 1000n + BigInt(at.index ?? 0)), { size: 32 }),
    ...(at.timestamp === null ? {} : { blockTimestamp: toHex(at.timestamp ?? 1_000_000n + block) }),
  } as TimedChainLog;
}

export const GLOBAL: PerpV2Global = {
  mmRatio: 62_500n,
  imRatio: 100_000n,
  liquidationPenaltyRatio: 25_000n,
  maxFundingRate: 100_000n,
  twapInterval: 900n,
  settlementToken: USDC,
  settlementDecimals: 6,
  insuranceFund: IF,
  marketsByBase: new Map(),
};

let logIndex = 0;
/** An event with an envelope (block, time). */
export function ev(body: PerpV2EventBody, block = 10n, timestamp = 1_000n): PerpV2Event {
  const ref: LogRef = {
    blockNumber: block,
    logIndex: logIndex++,
    blockHash: pad(toHex(block), { size: 32 }),
    transactionHash: pad(toHex(block), { size: 32 }),
  };
  return { ...body, ref, timestamp };
}

/** A book with ETH (ids 0, 1, 2) and BTC (ids 3, 4, 5) listed and funding settled once at t = 1000. */
export function bookWithMarkets(global: PerpV2Global = GLOBAL): PerpV2Book {
  const book = new PerpV2Book(global);
  book.apply(ev({ kind: "poolAdded", baseToken: ETH, feeRatio: 3000, pool: addr(0xf1) }, 1n, 900n));
  book.apply(ev({ kind: "poolAdded", baseToken: BTC, feeRatio: 3000, pool: addr(0xf2) }, 1n, 900n));
  book.apply(
    ev({ kind: "fundingUpdated", baseToken: ETH, marketTwap: 2000n * WAD, indexTwap: 2000n * WAD }, 2n, 1000n),
  );
  book.apply(
    ev({ kind: "fundingUpdated", baseToken: BTC, marketTwap: 30000n * WAD, indexTwap: 30000n * WAD }, 2n, 1000n),
  );
  return book;
}

/** A taker's trade as the book sees it: the size exchanged, and the open notional after it (the quote mirrors it). */
export function takerTrade(
  book: PerpV2Book,
  who: Address,
  base: Address,
  size: bigint,
  openNotional: bigint,
  block = 10n,
  time = 1_000n,
): void {
  book.apply(
    ev(
      {
        kind: "positionChanged",
        trader: who,
        baseToken: base,
        exchangedPositionSize: size,
        exchangedPositionNotional: -openNotional,
        fee: 0n,
        openNotional,
        realizedPnl: 0n,
        sqrtPriceAfterX96: 0n,
      },
      block,
      time,
    ),
  );
}

/** A settlement-token (USDC, 6 decimals) deposit into the Vault. */
export function depositUsdc(book: PerpV2Book, who: Address, usdcUnits: bigint): void {
  book.apply(ev({ kind: "deposited", collateralToken: USDC.toLowerCase() as Address, trader: who, amount: usdcUnits }));
}

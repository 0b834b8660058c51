/**
 * Evidence for a book built from PerpEngine's logs: the exchange's own state, read at the very block the book stands
 * at (pinned by hash, EIP-1898), compared field by field. What is compared:
 * - `marketCount` against the markets listed in the book (an empty or short log answer loses listings);
 * - every market's funding accumulator (`cumulativeFundingIndex`, `lastFundingTime`, `fundingRatePerSecond`);
 * - `getPosition` of up to CHECKED_POSITIONS positions of the book, drawn at random (a position the book holds that
 *   the chain closed, or whose margin moved, shows a missing event).
 * A position opened in a range an endpoint answered empty and never touched since is the one thing this cannot see
 * (the exchange keeps no count of positions); a followed head's logs are checked against the block's bloom instead.
 */
import { type Address, decodeFunctionResult, encodeFunctionData, type Hex, type PublicClient } from "viem";
import { perpEngineAbi } from "../../../abi/PerpEngine.ts";
import type { Book } from "./book.ts";

/** Positions read back at each check (at random): bounded work on a book of any size. */
const CHECKED_POSITIONS = 200;

type Call = { readonly data: Hex; readonly compare: (answer: Hex) => string | undefined };

export function perpEngineBookCheck(engine: Address) {
  return async (client: PublicClient, blockHash: Hex, book: Book): Promise<string | undefined> => {
    const calls: Call[] = [
      {
        data: encodeFunctionData({ abi: perpEngineAbi, functionName: "marketCount" }),
        compare: (answer) => {
          const count = decodeFunctionResult({ abi: perpEngineAbi, functionName: "marketCount", data: answer });
          return count === BigInt(book.markets.size)
            ? undefined
            : `the exchange lists ${count} markets, the book ${book.markets.size}`;
        },
      },
    ];
    for (const m of book.markets.values()) {
      calls.push({
        data: encodeFunctionData({ abi: perpEngineAbi, functionName: "market", args: [BigInt(m.id)] }),
        compare: (answer) => {
          const chain = decodeFunctionResult({ abi: perpEngineAbi, functionName: "market", data: answer });
          const f = m.funding;
          return chain.cumulativeFundingIndex === f.cumulativeFundingIndex &&
            chain.lastFundingTime === f.lastFundingTime &&
            chain.fundingRatePerSecond === f.fundingRatePerSecond
            ? undefined
            : `market ${m.id}'s funding on chain (index ${chain.cumulativeFundingIndex}, at ${chain.lastFundingTime}) ` +
                `differs from the book's (index ${f.cumulativeFundingIndex}, at ${f.lastFundingTime})`;
        },
      });
    }
    for (const p of sample([...book.positions.values()], CHECKED_POSITIONS)) {
      calls.push({
        data: encodeFunctionData({
          abi: perpEngineAbi,
          functionName: "getPosition",
          args: [p.trader, BigInt(p.marketId)],
        }),
        compare: (answer) => {
          const chain = decodeFunctionResult({ abi: perpEngineAbi, functionName: "getPosition", data: answer });
          return chain.size === p.size &&
            chain.openNotional === p.openNotional &&
            chain.margin === p.margin &&
            chain.lastFundingIndex === p.lastFundingIndex
            ? undefined
            : `position ${p.key} on chain (size ${chain.size}, margin ${chain.margin}) differs from the book's ` +
                `(size ${p.size}, margin ${p.margin})`;
        },
      });
    }
    // one JSON-RPC batch (the client batches the calls of one turn of the event loop)
    const answers = await Promise.all(
      calls.map(
        (c) =>
          client.request({ method: "eth_call", params: [{ to: engine, data: c.data }, { blockHash }] }) as Promise<Hex>,
      ),
    );
    for (const [i, c] of calls.entries()) {
      const disagreement = c.compare(answers[i] as Hex);
      if (disagreement) return disagreement;
    }
    return undefined;
  };
}

/** Up to `n` items drawn at random without replacement (all of them when there are no more). */
function sample<T>(items: T[], n: number): T[] {
  if (items.length <= n) return items;
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(Math.random() * (items.length - i));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items.slice(0, n);
}

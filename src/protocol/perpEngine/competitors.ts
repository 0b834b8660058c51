/**
 * Other senders' PerpEngine liquidations, read from their calldata (a pending or mined transaction to the engine):
 * the position keys they liquidate, `${marketId}:${trader}` as book.ts's positionKey makes them, decoded as
 * protocol.ts encodes the keeper's own calls (`liquidate(trader, marketId)`, `liquidateMany(traders, marketIds)`).
 */
import { type Address, decodeFunctionData, type Hex, toFunctionSelector } from "viem";
import { perpEngineAbi } from "../../../abi/PerpEngine.ts";
import { positionKey } from "./book.ts";

type Item = (typeof perpEngineAbi)[number];
type Liquidation = Extract<Item, { readonly type: "function"; readonly name: "liquidate" | "liquidateMany" }>;

/** The engine's liquidation entry points, from its generated ABI. */
const LIQUIDATIONS = perpEngineAbi.filter(
  (i): i is Liquidation => i.type === "function" && (i.name === "liquidate" || i.name === "liquidateMany"),
);
const SELECTORS = new Set(LIQUIDATIONS.map((f) => toFunctionSelector(f)));

function keyOf(trader: Address, marketId: bigint): string {
  // a market id beyond a JavaScript number is no market of the book's: its key, written the same way, matches none
  return marketId <= BigInt(Number.MAX_SAFE_INTEGER)
    ? positionKey(Number(marketId), trader)
    : `${marketId}:${trader.toLowerCase()}`;
}

/**
 * LiquidationProtocol.competitorTargets for the engine at `engine`: the keys a call liquidates, each once, in calldata
 * order; undefined for a call to another address, another function, or calldata that does not decode (truncated,
 * `liquidateMany` with arrays of different lengths: the contract reverts LengthMismatch).
 */
export function perpEngineCompetitors(engine: Address): (input: Hex, to: Address) => readonly string[] | undefined {
  const address = engine.toLowerCase();
  return (input, to) => {
    if (typeof to !== "string" || to.toLowerCase() !== address) return undefined;
    if (typeof input !== "string" || !SELECTORS.has(input.slice(0, 10).toLowerCase() as Hex)) return undefined;
    try {
      const call = decodeFunctionData({ abi: LIQUIDATIONS, data: input.toLowerCase() as Hex });
      if (call.functionName === "liquidate") {
        const [trader, marketId] = call.args;
        return [keyOf(trader, marketId)];
      }
      const [traders, marketIds] = call.args;
      if (traders.length !== marketIds.length) return undefined;
      const keys = new Set<string>();
      traders.forEach((trader, i) => {
        keys.add(keyOf(trader, marketIds[i] as bigint));
      });
      return [...keys];
    } catch {
      return undefined;
    }
  };
}

/**
 * Other senders' Perp v2 liquidations, read from their calldata (a pending or mined transaction): the target keys
 * they liquidate, `${trader}/${marketId}` as records.ts's targetKey makes them (the trader lower case, the market the
 * book's id of the base token), decoded as adapter.ts encodes the keeper's own calls:
 * - to the ClearingHouse: `liquidate(trader, baseToken, positionSize)` and `liquidate(trader, baseToken)`;
 * - to a PerpV2Liquidator, the keeper's or another keeper's own deployment (any address: the contract is known by its
 *   entry points' selectors, which name its item tuples): `liquidateBatch(items)`, `cancelAndLiquidate(orders,
 *   items)` and `liquidateAndClose(orders, items, closes, maxSlippageBps)`, one key per item.
 */
import { type Address, decodeFunctionData, type Hex, toFunctionSelector } from "viem";
import { perpV2LiquidatorAbi } from "../../../abi/PerpV2Liquidator.ts";
import { clearingHouseAbi } from "./abi.ts";
import { type PerpV2BookView, targetKey } from "./records.ts";

type ClearingHouseItem = (typeof clearingHouseAbi)[number];
type ClearingHouseLiquidation = Extract<ClearingHouseItem, { readonly type: "function"; readonly name: "liquidate" }>;
type LiquidatorItem = (typeof perpV2LiquidatorAbi)[number];
type LiquidatorBatch = Extract<
  LiquidatorItem,
  { readonly type: "function"; readonly name: "liquidateBatch" | "cancelAndLiquidate" | "liquidateAndClose" }
>;

/** Both overloads of ClearingHouse.liquidate. */
const CLEARING_HOUSE = clearingHouseAbi.filter(
  (i): i is ClearingHouseLiquidation => i.type === "function" && i.name === "liquidate",
);
/** The liquidator contract's batch entry points (closeInventory liquidates nothing). */
const LIQUIDATOR = perpV2LiquidatorAbi.filter(
  (i): i is LiquidatorBatch =>
    i.type === "function" &&
    (i.name === "liquidateBatch" || i.name === "cancelAndLiquidate" || i.name === "liquidateAndClose"),
);
const CLEARING_HOUSE_SELECTORS = new Set(CLEARING_HOUSE.map((f) => toFunctionSelector(f)));
const LIQUIDATOR_SELECTORS = new Set(LIQUIDATOR.map((f) => toFunctionSelector(f)));

/**
 * LiquidationProtocol.competitorTargets for Perp v2: the keys a call liquidates, each once, in calldata order (the
 * keeper's own batch names a target's follow-up items too: the same key again, or the trader's other markets). An
 * item in a base token the book does not list is left out (no finding of the keeper's has its key): a liquidation
 * call in such markets only is an empty array. Undefined:
 * a ClearingHouse selector sent elsewhere than `clearingHouse`, another function, or calldata that does not decode.
 * The book is read at each call (`book.global.marketsByBase`: markets listed since count).
 */
export function perpV2Competitors(o: {
  readonly clearingHouse: Address;
  readonly book: PerpV2BookView;
}): (input: Hex, to: Address) => readonly string[] | undefined {
  const clearingHouse = o.clearingHouse.toLowerCase();
  const keysOf = (items: readonly { readonly trader: Address; readonly baseToken: Address }[]): string[] => {
    const markets = o.book.global.marketsByBase;
    const keys = new Set<string>();
    for (const { trader, baseToken } of items) {
      const market = markets.get(baseToken.toLowerCase() as Address);
      if (market !== undefined) keys.add(targetKey(trader, market));
    }
    return [...keys];
  };
  return (input, to) => {
    if (typeof input !== "string" || typeof to !== "string") return undefined;
    const selector = input.slice(0, 10).toLowerCase() as Hex;
    try {
      if (CLEARING_HOUSE_SELECTORS.has(selector)) {
        if (to.toLowerCase() !== clearingHouse) return undefined;
        const call = decodeFunctionData({ abi: CLEARING_HOUSE, data: input.toLowerCase() as Hex });
        const [trader, baseToken] = call.args;
        return keysOf([{ trader, baseToken }]);
      }
      if (LIQUIDATOR_SELECTORS.has(selector)) {
        // the ClearingHouse has no such function: a call to it would revert
        if (to.toLowerCase() === clearingHouse) return undefined;
        const call = decodeFunctionData({ abi: LIQUIDATOR, data: input.toLowerCase() as Hex });
        const items = call.functionName === "liquidateBatch" ? call.args[0] : call.args[1];
        return keysOf(items);
      }
    } catch {
      // a known selector with calldata that does not decode: the contract would revert
    }
    return undefined;
  };
}

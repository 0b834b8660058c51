/**
 * Other senders' cross-margin liquidations, read from their calldata (a pending or mined transaction to the engine):
 * the accounts they liquidate, keyed as the book keys them (records.ts accountKey: the id in decimal), decoded as
 * adapter.ts encodes the keeper's own calls, in either price mode:
 * - `liquidate(accountId, priceUpdateData)`, `liquidate(accountId)`, `liquidateMany(accountIds, priceUpdateData)` and
 *   `liquidateFlaggedAccounts(accountIds)`: the accounts named;
 * - `multicall(data)` (ERC-7412's `[fulfillOracleQuery, liquidate]`, or any nesting of multicalls): the union of its
 *   liquidation calls' accounts; one without a liquidation call is not a liquidation;
 * - `liquidateFlagged(maxNumberOfAccounts)`: the contract picks the oldest flagged accounts, which the calldata does
 *   not name: an empty array (a liquidation call, its targets unknown), and in a multicall it adds no key.
 */
import { type Address, decodeFunctionData, type Hex, toFunctionSelector } from "viem";
import { iCrossMarginEngineAbi } from "../../../abi/ICrossMarginEngine.ts";
import { accountKey } from "./records.ts";

type Item = (typeof iCrossMarginEngineAbi)[number];
type Name = "liquidate" | "liquidateMany" | "liquidateFlagged" | "liquidateFlaggedAccounts" | "multicall";
type Call = Extract<Item, { readonly type: "function"; readonly name: Name }>;

const NAMES: ReadonlySet<string> = new Set<Name>([
  "liquidate",
  "liquidateMany",
  "liquidateFlagged",
  "liquidateFlaggedAccounts",
  "multicall",
]);
/** The engine's liquidation entry points and its multicall, from its generated ABI. */
const CALLS = iCrossMarginEngineAbi.filter((i): i is Call => i.type === "function" && NAMES.has(i.name));
const SELECTORS = new Set(CALLS.map((f) => toFunctionSelector(f)));
/** Multicalls nested deeper than this are refused (calldata would have to be built to reach it). */
const MAX_DEPTH = 8;
const UINT128_LIMIT = 1n << 128n;

/** A known selector whose calldata the engine would refuse. */
class Malformed extends Error {}

function keyOf(id: bigint): string {
  if (id >= UINT128_LIMIT) throw new Malformed("account id beyond uint128");
  return accountKey(id);
}

/** The keys one call names; null: not a liquidation call (nor a multicall holding one). Throws Malformed. */
function targetsOf(data: Hex, depth: number): string[] | null {
  if (!SELECTORS.has(data.slice(0, 10).toLowerCase() as Hex)) return null;
  if (depth > MAX_DEPTH) throw new Malformed("multicalls nested too deep");
  let call: ReturnType<typeof decodeFunctionData<readonly Call[]>>;
  try {
    call = decodeFunctionData({ abi: CALLS, data: data.toLowerCase() as Hex });
  } catch {
    throw new Malformed("calldata does not decode");
  }
  switch (call.functionName) {
    case "liquidate":
      return [keyOf(call.args[0])];
    case "liquidateMany":
    case "liquidateFlaggedAccounts":
      return call.args[0].map(keyOf);
    case "liquidateFlagged":
      return [];
    case "multicall": {
      let keys: string[] | null = null;
      for (const inner of call.args[0]) {
        const found = targetsOf(inner, depth + 1);
        if (found) keys = [...(keys ?? []), ...found];
      }
      return keys;
    }
  }
}

/**
 * LiquidationProtocol.competitorTargets for the engine at `engine`: the accounts a call liquidates, each once, in
 * calldata order. Undefined: a call to another address, no liquidation call, or a known call whose calldata does not
 * decode (anywhere in a multicall: the engine's multicall reverts whole).
 */
export function crossMarginCompetitors(engine: Address): (input: Hex, to: Address) => readonly string[] | undefined {
  const address = engine.toLowerCase();
  return (input, to) => {
    if (typeof input !== "string" || typeof to !== "string" || to.toLowerCase() !== address) return undefined;
    try {
      const keys = targetsOf(input, 0);
      return keys ? [...new Set(keys)] : undefined;
    } catch {
      return undefined;
    }
  };
}

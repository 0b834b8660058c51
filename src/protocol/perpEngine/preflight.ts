/** What check-config says of a PerpEngine (src/ops/preflight.ts's checkChain). */
import { perpEngineAbi } from "../../../abi/PerpEngine.ts";
import type { Connection } from "../../chain/connect.ts";

/** The exchange at connection.engine, described: its market count ("a PerpEngine with 2 markets"). */
export async function describePerpEngine(connection: Connection): Promise<string> {
  const markets = await connection.publicClient.readContract({
    address: connection.engine,
    abi: perpEngineAbi,
    functionName: "marketCount",
  });
  return `a PerpEngine with ${markets} markets`;
}

/**
 * The cross-margin exchange's check-config description and status view (`perp-keeper status`), read from the chain
 * at the head: its oracle, rules and markets with the oracle's price and its age, and the accounts being liquidated
 * (flagged) with the room left in their markets' windows.
 */
import { type Address, formatUnits } from "viem";
import { iCrossMarginEngineAbi } from "../../../abi/ICrossMarginEngine.ts";
import type { Connection } from "../../chain/connect.ts";
import { ConfigError } from "../../config/errors.ts";
import type { KeeperConfig } from "../../config/schema.ts";
import type { StatusView } from "../../ops/statusCommand.ts";
import { renderTable } from "../../ops/table.ts";

const abi = iCrossMarginEngineAbi;

/** The exchange as its views describe it; a ConfigError when the address does not answer as one. */
export async function describeCrossMargin(connection: Connection, _config: KeeperConfig): Promise<string> {
  const client = connection.publicClient;
  const address = connection.engine;
  try {
    const [pyth, global, markets] = await Promise.all([
      client.readContract({ address, abi, functionName: "pyth" }),
      client.readContract({ address, abi, functionName: "globalConfig" }),
      client.readContract({ address, abi, functionName: "marketIds" }),
    ]);
    return (
      `a cross-margin exchange priced by Pyth ${pyth}, ${markets.length} market(s) (${markets.join(", ")}), ` +
      `prices accepted up to ${global[3]} s old, keeper reward ${formatUnits(global[0], 18)} to ${formatUnits(global[1], 18)}`
    );
  } catch (error) {
    throw new ConfigError(
      `exchange.address ${address} does not answer as a cross-margin exchange (pyth, globalConfig, marketIds): ${(error as Error).message.split("\n")[0]}`,
    );
  }
}

export const crossMarginStatus: StatusView = async ({ connection, top }) => {
  const client = connection.publicClient;
  const address = connection.engine as Address;
  const head = await client.getBlock({ blockTag: "latest" });
  const blockNumber = head.number ?? undefined;
  const read = <T>(p: Promise<T>) => p;
  const ids = await read(client.readContract({ address, abi, functionName: "marketIds", blockNumber }));
  const marketRows: string[][] = [];
  for (const id of ids) {
    const [config, capacity] = await Promise.all([
      client.readContract({ address, abi, functionName: "getMarketConfig", args: [id], blockNumber }),
      client.readContract({ address, abi, functionName: "liquidationCapacity", args: [id], blockNumber }),
    ]);
    const price = await client
      .readContract({ address, abi, functionName: "indexPrice", args: [id], blockNumber })
      .then((p) => formatUnits(p, 18))
      .catch(() => "stale on chain");
    marketRows.push([
      id.toString(),
      config.feedId.slice(0, 10),
      price,
      formatUnits(capacity[0], 18),
      formatUnits(capacity[1], 18),
    ]);
  }
  const flagged = await client.readContract({ address, abi, functionName: "flaggedAccounts", blockNumber });
  const flaggedRows: string[][] = [];
  for (const id of flagged.slice(0, top)) {
    const sizes: string[] = [];
    for (const m of ids) {
      const [size] = await client.readContract({
        address,
        abi,
        functionName: "getOpenPosition",
        args: [id, m],
        blockNumber,
      });
      if (size !== 0n) sizes.push(`${m}: ${formatUnits(size, 18)}`);
    }
    flaggedRows.push([id.toString(), sizes.join(", ") || "none"]);
  }
  return [
    `cross-margin exchange ${address} at block ${head.number}`,
    "",
    renderTable(["market", "feed", "on-chain price", "window room", "window cap"], marketRows),
    "",
    `${flagged.length} account(s) flagged for liquidation${flagged.length > top ? ` (first ${top})` : ""}`,
    flaggedRows.length > 0 ? renderTable(["account", "positions left"], flaggedRows) : "",
  ].join("\n");
};

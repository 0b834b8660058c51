/** What check-config says of a Perp v2 deployment (src/ops/preflight.ts's checkChain). */
import type { Connection } from "../../chain/connect.ts";
import type { KeeperConfig } from "../../config/schema.ts";
import { describePerpV2, discoverPerpV2 } from "./discover.ts";

/**
 * The deployment discovered from its ClearingHouse (connection.engine), described with the liquidator: every contract
 * found and cross-checked, a ConfigError naming what is wrong.
 */
export async function describePerpV2Exchange(connection: Connection, config: KeeperConfig): Promise<string> {
  const contracts = await discoverPerpV2(connection.publicClient, connection.engine, {
    deployBlock: BigInt(config.exchange.deployBlock),
    maxLogRange: config.keeper.maxLogRange,
    logConcurrency: config.keeper.logConcurrency,
  });
  const liquidator = config.exchange.adapter === "perp-v2" ? config.exchange.liquidator : undefined;
  return `${describePerpV2(contracts)}${liquidator ? `; liquidator ${liquidator}` : "; each signer liquidates from its own Vault account"}`;
}

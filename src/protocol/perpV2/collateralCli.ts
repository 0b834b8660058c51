/**
 * `perp-keeper collateral status|deposit <amount>|withdraw <amount>` for a Perp v2 keeper: the liquidator account's
 * collateral in the Vault (the configured PerpV2Liquidator, else the first signer's own account). The command line
 * and config side; what it reads, checks and sends is src/protocol/perpV2/collateral.ts.
 */
import { privateKeyToAccount } from "viem/accounts";
import { connect } from "../../chain/connect.ts";
import { ConfigError } from "../../config/load.ts";
import type { Logger } from "../../ops/logger.ts";
import type { RunSettings } from "../../ops/preflight.ts";
import { type CollateralAction, collateralCommand } from "./collateral.ts";
import { discoverPerpV2 } from "./discover.ts";

const ACTIONS: readonly CollateralAction[] = ["status", "deposit", "withdraw"];

export async function collateral(settings: RunSettings, args: readonly string[], log: Logger): Promise<string> {
  const { config } = settings;
  const exchange = config.exchange;
  if (exchange.adapter !== "perp-v2") {
    throw new ConfigError(`collateral is for the perp-v2 adapter; this config's exchange is ${exchange.adapter}`);
  }
  const [action, amount] = args;
  if (!ACTIONS.includes(action as CollateralAction)) {
    throw new ConfigError(`collateral takes ${ACTIONS.join(", ")}, got "${action ?? ""}"`);
  }
  if (action !== "status" && amount === undefined) throw new ConfigError(`collateral ${action} needs an amount`);
  const key = settings.privateKeys[0];
  const signer = key === undefined ? undefined : privateKeyToAccount(key);
  const account = exchange.liquidator ?? signer?.address;
  if (!account) throw new ConfigError("collateral needs exchange.liquidator or a signer key (KEEPER_PRIVATE_KEY)");
  const connection = await connect(config, settings.rpcUrl);
  try {
    const contracts = await discoverPerpV2(connection.publicClient, exchange.address as `0x${string}`, {
      deployBlock: BigInt(exchange.deployBlock),
      maxLogRange: config.keeper.maxLogRange,
      logConcurrency: config.keeper.logConcurrency,
    });
    return await collateralCommand({
      action: action as CollateralAction,
      ...(amount === undefined ? {} : { amount }),
      contracts,
      account: account as `0x${string}`,
      ...(signer ? { signer } : {}),
      client: connection.publicClient,
      log,
    });
  } finally {
    connection.close();
  }
}

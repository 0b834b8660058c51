/**
 * What the commands need of each exchange beyond the run itself (src/app.ts, src/protocol/perpV2/run.ts), chosen by
 * exchange.adapter: check-config's description of the exchange, the status view of `perp-keeper status`, and what
 * `perp-keeper rehearse` shocks and counts. The commands' drivers in src/ops/ take these as arguments and name no
 * exchange.
 */
import type { KeeperConfig } from "../config/schema.ts";
import type { DescribeExchange } from "../ops/preflight.ts";
import type { RehearsalExchange } from "../ops/rehearse.ts";
import type { StatusView } from "../ops/statusCommand.ts";
import { describeCrossMargin } from "./crossMargin/status.ts";
import { describePerpEngine } from "./perpEngine/preflight.ts";
import { describePerpV2Exchange } from "./perpV2/preflight.ts";

export type AdapterName = KeeperConfig["exchange"]["adapter"];

export interface ExchangeCommands {
  /** check-config (and run's start-up checks): the exchange, checked and described. */
  readonly describe: DescribeExchange;
  /** `perp-keeper status`: the exchange's view, loaded on demand (it brings decimal.js and its own reads). */
  statusView(): Promise<StatusView>;
  /** `perp-keeper rehearse`, loaded on demand (the keeper itself); absent: the exchange cannot be rehearsed. */
  readonly rehearsal?: () => Promise<RehearsalExchange>;
}

const COMMANDS: { readonly [A in AdapterName]: ExchangeCommands } = {
  "perp-engine": {
    describe: describePerpEngine,
    statusView: async () => (await import("./perpEngine/status.ts")).perpEngineStatus,
    rehearsal: async () => (await import("./perpEngine/rehearsal.ts")).perpEngineRehearsal,
  },
  "perp-v2": {
    describe: describePerpV2Exchange,
    statusView: async () => (await import("./perpV2/status.ts")).perpV2Status,
  },
  "cross-margin": {
    describe: describeCrossMargin,
    statusView: async () => (await import("./crossMargin/status.ts")).crossMarginStatus,
  },
};

/** The configured exchange's commands. */
export function exchangeCommands(config: Pick<KeeperConfig, "exchange">): ExchangeCommands {
  return COMMANDS[config.exchange.adapter];
}

/**
 * `perp-keeper status`: what an operator reads about the configured exchange at the head, and exits. Read-only: needs
 * no key. What is shown is the exchange's own (its adapter's status view, chosen by exchange.adapter in
 * src/protocol/exchanges.ts): this driver connects, hands the connection to the view, and closes it.
 */
import { type Connection, connect } from "../chain/connect.ts";
import type { KeeperConfig } from "../config/schema.ts";
import type { Logger } from "./logger.ts";

export interface StatusRequest {
  readonly config: KeeperConfig;
  /** Checked by connect: the configured chain, the exchange's code at its address. */
  readonly connection: Connection;
  readonly log: Logger;
  /** Rows to show (--top). */
  readonly top: number;
}

/** One exchange's status view: indexes it up to the head on the connection and renders the report. */
export type StatusView = (request: StatusRequest) => Promise<string>;

/** The report of `view` for the configured exchange at the head. */
export async function statusReport(
  config: KeeperConfig,
  rpcUrl: string,
  log: Logger,
  top: number,
  view: StatusView,
): Promise<string> {
  const connection = await connect(config, rpcUrl);
  try {
    return await view({ config, connection, log, top });
  } finally {
    connection.close();
  }
}

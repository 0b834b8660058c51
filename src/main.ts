/**
 * perp-keeper's entry point.
 *   npm start                          the embedded demo: local Anvil, reference exchange, a crash, liquidations
 *   npm start -- --config config/x.json   the keeper against the chain the config names (RPC_URL and
 *                                          KEEPER_PRIVATE_KEY from the environment or .env)
 */
import { parseArgs } from "node:util";
import { config as loadDotenv } from "dotenv";
import { StartupError, startKeeper } from "./app.ts";
import { describeError } from "./chain/errors.ts";
import { ConfigError, loadConfigFile, parseSeconds, readEnv } from "./config/load.ts";
import { runDemo } from "./demo/demo.ts";
import { SignerError } from "./executor/executor.ts";
import { JournalError } from "./executor/journal.ts";
import { createLogger, type Logger } from "./ops/logger.ts";
import { statusReport } from "./ops/statusCommand.ts";
import { LogDecodeError } from "./protocol/perpEngine.ts";
import { BookError } from "./state/book.ts";
import { StartBlockError } from "./watcher/watcher.ts";

/** A signal repeated sooner than this is the same request delivered twice by the process tree, not a second one. */
const SIGNAL_REPEAT_MS = 1_000;

const USAGE = `Usage: npm start -- [options]

Without --config (or KEEPER_CONFIG) runs the embedded demo on a local Anvil devnet.

Options:
  --config <file>      keeper config (config/*.json); env KEEPER_CONFIG
  --rpc-url <url>      RPC endpoint, overrides the config's; env RPC_URL
  --dry-run            simulate liquidations, never send; env KEEPER_DRY_RUN=true
  --duration <sec>     stop cleanly after this many seconds; env KEEPER_RUN_SECONDS
  --status             print the open positions nearest to liquidation and exit (needs --config; no key)
  --top <n>            rows of --status (default 20)
  --keep-running       demo: keep following after the scenario until Ctrl-C
  --log-format <fmt>   json | pretty (default: pretty for the demo on a terminal, json otherwise); env LOG_FORMAT
  -h, --help           this text

Signer keys come only from the environment: KEEPER_PRIVATE_KEY, or KEEPER_PRIVATE_KEYS (comma-separated, one
nonce lane each; see .env.example).
SIGINT and SIGTERM stop the keeper cleanly: no new work, broadcasts under way get keeper.shutdownGraceMs;
pending transactions stay in the journal (keeper.stateDir) and are picked up at the next start.`;

async function main(): Promise<number> {
  loadDotenv({ quiet: true });
  const { values } = parseArgs({
    options: {
      config: { type: "string" },
      "rpc-url": { type: "string" },
      "dry-run": { type: "boolean" },
      duration: { type: "string" },
      "keep-running": { type: "boolean" },
      status: { type: "boolean" },
      top: { type: "string" },
      "log-format": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const env = readEnv({
    ...process.env,
    ...(values["rpc-url"] ? { RPC_URL: values["rpc-url"] } : {}),
    ...(values["log-format"] ? { LOG_FORMAT: values["log-format"] } : {}),
  });
  const configPath = values.config ?? env.configPath;
  const runSeconds = parseSeconds("--duration", values.duration) ?? env.runSeconds;
  const demo = configPath === undefined;
  const log = createLogger({
    level: env.logLevel,
    format: env.logFormat ?? (demo && process.stdout.isTTY ? "pretty" : "json"),
  });

  const controller = new AbortController();
  const stopOn = (reason: string) => () => {
    if (!controller.signal.aborted) {
      log.info({ event: "shutdown_requested", reason }, `${reason}: shutting down`);
      controller.abort(reason);
    }
  };
  // A terminal's Ctrl-C reaches every process of the group, and npm forwards it to its child as well: the keeper
  // gets the same signal twice within milliseconds. That is one request. Only a signal that comes after
  // SIGNAL_REPEAT_MS (a second Ctrl-C by a person) makes it exit at once.
  let firstSignalAt = 0;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      if (!controller.signal.aborted) {
        firstSignalAt = Date.now();
        return stopOn(signal)();
      }
      if (Date.now() - firstSignalAt < SIGNAL_REPEAT_MS) return;
      log.warn({ event: "shutdown_requested", reason: `${signal} again` }, "second signal: exiting now");
      log.flush();
      process.exit(130);
    });
  }
  const timer = runSeconds ? setTimeout(stopOn("duration elapsed"), runSeconds * 1000) : undefined;
  timer?.unref();

  try {
    if (values.status) {
      if (configPath === undefined) throw new ConfigError("--status needs --config (or KEEPER_CONFIG)");
      const top = Number(values.top ?? "20");
      if (!Number.isInteger(top) || top <= 0)
        throw new ConfigError(`--top must be a positive integer, got "${values.top}"`);
      const config = loadConfigFile(configPath);
      const rpcUrl = env.rpcUrl ?? config.network.rpcUrls?.join(",") ?? config.network.rpcUrl;
      if (!rpcUrl) throw new ConfigError(`no RPC endpoint: set RPC_URL or network.rpcUrl in ${configPath}`);
      console.log(await statusReport(config, rpcUrl, createLogger({ level: "warn", format: "json" }), top));
      return 0;
    }
    if (demo) {
      const result = await runDemo({ log, keepRunning: values["keep-running"] ?? false, signal: controller.signal });
      return result.stillLiquidatable === 0 || controller.signal.aborted ? 0 : 1;
    }
    return await runConfigured(configPath, env, values["dry-run"], controller.signal, log);
  } finally {
    clearTimeout(timer);
    log.flush();
  }
}

async function runConfigured(
  configPath: string,
  env: ReturnType<typeof readEnv>,
  dryRunFlag: boolean | undefined,
  signal: AbortSignal,
  log: Logger,
): Promise<number> {
  const config = loadConfigFile(configPath);
  const rpcUrl = env.rpcUrl ?? config.network.rpcUrls?.join(",") ?? config.network.rpcUrl;
  if (!rpcUrl) throw new ConfigError(`no RPC endpoint: set RPC_URL or network.rpcUrl in ${configPath}`);
  if (env.privateKeys.length === 0) {
    throw new ConfigError("KEEPER_PRIVATE_KEY is not set, nor KEEPER_PRIVATE_KEYS (see .env.example)");
  }
  const dryRun = dryRunFlag ?? env.dryRun ?? config.keeper.dryRun;
  const wsUrl = env.wsUrl ?? config.network.wsUrl;
  const running = await startKeeper({
    config: { ...config, network: { ...config.network, wsUrl }, keeper: { ...config.keeper, dryRun } },
    rpcUrl,
    privateKeys: env.privateKeys,
    log,
    signal,
  }).catch((error: unknown) => {
    if (signal.aborted && error instanceof StartupError) return undefined; // asked to stop while still connecting
    throw error;
  });
  if (!running) return 0;
  await running.done;
  await running.stop();
  return 0;
}

// Exit explicitly once stopped: a request still retrying against a node that is gone must not hold the process.
main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    // viem's short message only: its details can carry the RPC URL, and with it a provider's API key
    const message = describeError(error);
    const setup =
      error instanceof ConfigError ||
      error instanceof StartBlockError ||
      error instanceof BookError ||
      error instanceof SignerError ||
      error instanceof JournalError;
    console.error(setup ? `configuration error: ${message}` : `perp-keeper failed: ${message}`);
    process.exit(setup || error instanceof LogDecodeError ? 2 : 1);
  },
);

import pino, { type Logger } from "pino";

export type { Logger };

export interface LoggerOptions {
  readonly level?: string;
  /** "json" (default): one JSON object a line; "pretty": human-readable, for a terminal. */
  readonly format?: "json" | "pretty";
  /** Where JSON lines go (default stdout); tests pass a stream to read them back. */
  readonly destination?: pino.DestinationStream;
}

/**
 * Paths that must never reach a log line, however an object carrying them got there. The keeper never logs
 * its keys on purpose; this is the second line of defence.
 */
const REDACT = [
  "privateKey",
  "*.privateKey",
  "secret",
  "*.secret",
  "mnemonic",
  "*.mnemonic",
  "account.privateKey",
  "signer.privateKey",
];

/** The keeper's logger. Every line an operator may act on carries a stable `event` (docs/log-events.md). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const base: pino.LoggerOptions = {
    level: options.level ?? "info",
    base: { service: "perp-keeper" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT, censor: "[redacted]" },
    formatters: { level: (label) => ({ level: label }) },
  };
  if (options.format === "pretty") {
    return pino({
      ...base,
      transport: {
        target: "pino-pretty",
        options: {
          colorize: true,
          singleLine: true,
          translateTime: "HH:MM:ss.l",
          ignore: "pid,hostname,service",
          messageFormat: "{event}: {msg}",
        },
      },
    });
  }
  // synchronous stdout: the lines written just before process.exit (keeper_stopped) are never lost in a buffer
  return pino(base, options.destination ?? pino.destination({ dest: 1, sync: true }));
}

/** Bigints as decimal strings, for log fields (JSON has no bigint). */
export function big(x: bigint): string {
  return x.toString();
}

import pino, { type Logger } from "pino";

export type { Logger };

export interface LoggerOptions {
  readonly level?: string;
  /** "json" (default): one JSON object a line; "pretty": one readable line an event, for a terminal. */
  readonly format?: "json" | "pretty";
  /** Where JSON lines go (default stdout); tests pass a stream to read them back. */
  readonly destination?: pino.DestinationStream;
  /** Write to stderr instead of stdout (a command whose stdout is its report). */
  readonly stderr?: boolean;
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
    // pino's numeric level (10 trace .. 60 fatal: alert on level >= 40), its name beside it for people
    formatters: { level: (label, number) => ({ level: number, levelName: label }) },
  };
  const fd = options.stderr ? 2 : 1;
  if (options.format === "pretty") {
    // colours only on a terminal (the transport's worker thread cannot tell: decided here)
    const tty = Boolean((options.stderr ? process.stderr : process.stdout).isTTY);
    return pino({
      ...base,
      transport: {
        target: "pino-pretty",
        options: {
          destination: fd,
          sync: true,
          colorize: tty,
          // one readable line an event: time, level, event and message; the fields stay in the JSON format
          hideObject: true,
          translateTime: "HH:MM:ss.l",
          ignore: "pid,hostname,service,levelName",
          messageFormat: "{if event}{event}: {end}{msg}",
        },
      },
    });
  }
  // synchronous output: the lines written just before process.exit (keeper_stopped) are never lost in a buffer
  return pino(base, options.destination ?? pino.destination({ dest: fd, sync: true }));
}

/** Bigints as decimal strings, for log fields (JSON has no bigint). */
export function big(x: bigint): string {
  return x.toString();
}

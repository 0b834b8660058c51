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

/** A listener of a logger's events: pino's numeric level, the line's own fields, performance.now() when logged. */
export type LogListener = (level: number, fields: Readonly<Record<string, unknown>>, at: number) => void;

/**
 * The events a logger writes, handed to listeners as they are logged (the operations figures and the notifier
 * follow the keeper through them, so that nothing on the liquidation path calls them). A listener runs
 * synchronously inside the log call: it must only record or enqueue. A listener that throws is dropped from that
 * line, never the log call's failure. Only lines at an enabled level, with an `event`, are handed on. A child's
 * lines are handed on too (a child shares its root's tap); the fields are the log call's own, without the child's
 * bindings (its `component`).
 */
export class LogTap {
  private readonly listeners = new Set<LogListener>();
  get size(): number {
    return this.listeners.size;
  }
  /** Adds a listener; returns its removal. */
  on(listener: LogListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit(level: number, fields: Readonly<Record<string, unknown>>): void {
    const at = performance.now();
    for (const listener of this.listeners) {
      try {
        listener(level, fields, at);
      } catch {
        // a figure or a notification is never worth a log call's failure
      }
    }
  }
}

const TAP = Symbol.for("perp-keeper.logTap");

/** The tap of a logger made by createLogger (its children share it); undefined for any other logger. */
export function tapOf(log: Logger): LogTap | undefined {
  return (log as unknown as Record<symbol, LogTap | undefined>)[TAP];
}

/** The keeper's logger. Every line an operator may act on carries a stable `event` (docs/log-events.md). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const tap = new LogTap();
  const base: pino.LoggerOptions = {
    hooks: {
      logMethod(args, method, level) {
        const first = args[0] as unknown;
        if (tap.size > 0 && typeof first === "object" && first !== null && "event" in first) {
          tap.emit(level, first as Record<string, unknown>);
        }
        return method.apply(this, args);
      },
    },
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
    return withTap(
      pino({
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
      }),
      tap,
    );
  }
  // synchronous output: the lines written just before process.exit (keeper_stopped) are never lost in a buffer
  return withTap(pino(base, options.destination ?? pino.destination({ dest: fd, sync: true })), tap);
}

/** Children are made with Object.create(parent): the tap set on the root is theirs too. */
function withTap(log: Logger, tap: LogTap): Logger {
  Object.defineProperty(log, TAP, { value: tap });
  return log;
}

/** Bigints as decimal strings, for log fields (JSON has no bigint). */
export function big(x: bigint): string {
  return x.toString();
}

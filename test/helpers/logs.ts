import { createLogger, type Logger } from "../../src/ops/logger.ts";

export interface CapturedLog {
  readonly log: Logger;
  readonly lines: Record<string, unknown>[];
  readonly raw: string[];
  /** Lines whose `event` is `name`. */
  events(name: string): Record<string, unknown>[];
}

/** A real pino logger whose JSON lines are kept in memory for assertions. */
export function captureLogs(level = "info"): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const log = createLogger({
    level,
    destination: {
      write(line: string) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  });
  return { log, lines, raw, events: (name) => lines.filter((l) => l.event === name) };
}

/** The keeper's own errors carry whether to retry and their exit code; isRetryable asks them, not their message. */
import { HttpRequestError } from "viem";
import { describe, expect, it } from "vitest";
import { StartupError } from "../../src/app.ts";
import { InconsistentAnswerError, isRetryable } from "../../src/chain/errors.ts";
import { ConfigError } from "../../src/config/load.ts";
import { KeeperError, SetupError } from "../../src/errors.ts";
import { JournalError } from "../../src/executor/journal.ts";
import { SignerError } from "../../src/executor/signers.ts";
import { NotifyConfigError } from "../../src/ops/notify.ts";
import { BookError } from "../../src/protocol/perpEngine/book.ts";
import { LogDecodeError } from "../../src/protocol/perpEngine/protocol.ts";
import { RefutedAnswerError, StartBlockError } from "../../src/watcher/errors.ts";

describe("KeeperError", () => {
  it("gives each of the keeper's errors its exit code and retry class", () => {
    const cases: [KeeperError, 1 | 2, boolean][] = [
      [new ConfigError("x"), 2, false],
      [new StartBlockError("x"), 2, false],
      [new BookError("x"), 2, false],
      [new SignerError("x"), 2, false],
      [new JournalError("x"), 2, false],
      [new NotifyConfigError("x"), 2, false],
      [new LogDecodeError("x"), 2, false],
      [new StartupError("x"), 1, false],
      [new InconsistentAnswerError("x"), 1, true],
      [new RefutedAnswerError("x"), 1, true],
    ];
    for (const [error, exitCode, retryable] of cases) {
      expect(error, error.name).toBeInstanceOf(KeeperError);
      expect([error.name, error.exitCode, error.retryable, isRetryable(error)]).toEqual([
        error.name,
        exitCode,
        retryable,
        retryable,
      ]);
    }
  });

  it("reports only setup errors as configuration errors (a log that does not decode exits 2 too, but is none)", () => {
    expect(new ConfigError("x")).toBeInstanceOf(SetupError);
    expect(new BookError("x")).toBeInstanceOf(SetupError);
    expect(new LogDecodeError("x")).not.toBeInstanceOf(SetupError);
    expect(new StartupError("x")).not.toBeInstanceOf(SetupError);
  });

  it("takes a keeper error's word over its message, and keeps the rule for everything else", () => {
    expect(isRetryable(new ConfigError("keeper.startupTimeoutSeconds: network timeout"))).toBe(false);
    expect(isRetryable(new HttpRequestError({ url: "http://127.0.0.1:1" }))).toBe(true);
    expect(isRetryable(new Error("fetch failed"))).toBe(true);
    expect(isRetryable(new TypeError("x is not a function"))).toBe(false);
  });
});

import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { componentLogs } from "../../src/app.ts";
import { tapOf } from "../../src/ops/logger.ts";
import { captureLogs } from "../helpers/logs.ts";

describe("logger", () => {
  it("writes one JSON object a line with the stable event field", () => {
    const { log, lines } = captureLogs();
    log.info({ event: "price_updated", market: "BTC-USD" }, "BTC-USD mark price 60000");
    expect(lines[0]).toMatchObject({
      event: "price_updated",
      market: "BTC-USD",
      level: 30,
      levelName: "info",
      service: "perp-keeper",
    });
  });

  it("levels are pino's numbers, so that a pipeline can alert on level >= 40 (warn and worse)", () => {
    const { log, lines } = captureLogs("debug");
    log.debug({ event: "a" }, "a");
    log.info({ event: "b" }, "b");
    log.warn({ event: "c" }, "c");
    log.error({ event: "d" }, "d");
    expect(lines.map((l) => [l.level, l.levelName])).toEqual([
      [20, "debug"],
      [30, "info"],
      [40, "warn"],
      [50, "error"],
    ]);
    expect(lines.filter((l) => (l.level as number) >= 40).map((l) => l.event)).toEqual(["c", "d"]);
  });

  it("pretty: one readable line an event, no JSON appended, no colours when not on a terminal", () => {
    const script = [
      'import { createLogger } from "./src/ops/logger.ts";',
      'const log = createLogger({ format: "pretty" });',
      'log.info({ event: "price_updated", market: "BTC-USD", nested: { a: 1 } }, "BTC-USD mark price 60000");',
      'log.warn({ event: "signer_excluded", signer: "0xabc" }, "signer 0xabc cannot pay");',
      "log.flush();",
    ].join("\n");
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: resolve(import.meta.dirname, "../.."),
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = r.stdout.trimEnd().split("\n");
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: price_updated: BTC-USD mark price 60000$/);
    expect(out[1]).toMatch(/ WARN: signer_excluded: signer 0xabc cannot pay$/);
    expect(r.stdout).not.toContain("\u001b["); // no ANSI colour codes into a pipe
    expect(r.stdout).not.toContain("{");
  });

  it("redacts keys that reach a log line by accident", () => {
    const { log, raw } = captureLogs();
    const secret = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    log.info({ event: "oops", privateKey: secret, signer: { privateKey: secret }, mnemonic: "test junk" }, "x");
    expect(raw.join("")).not.toContain(secret.slice(2));
    expect(raw.join("")).not.toContain("test junk");
  });

  it("each part's child carries its component, writes where the root writes and reaches the root's tap", () => {
    const { log, lines, raw } = captureLogs();
    const tapped: Record<string, unknown>[] = [];
    tapOf(log)?.on((_level, fields) => tapped.push({ ...fields }));
    const logs = componentLogs(log);
    logs.watcher.info({ event: "price_updated", market: "BTC-USD" }, "x");
    logs.executor.child({ signer: "0xabc" }).warn({ event: "tx_replaced" }, "y");
    expect(lines.map((l) => [l.component, l.event])).toEqual([
      ["watcher", "price_updated"],
      ["executor", "tx_replaced"],
    ]);
    expect(lines[1]?.signer).toBe("0xabc");
    // one component a line, never repeated by a grandchild
    expect(raw[1]?.match(/"component"/g)).toHaveLength(1);
    expect(tapped).toEqual([{ event: "price_updated", market: "BTC-USD" }, { event: "tx_replaced" }]);
    expect(tapOf(logs.ops)).toBe(tapOf(log));
  });
});

import { describe, expect, it } from "vitest";
import { captureLogs } from "../helpers/logs.ts";

describe("logger", () => {
  it("writes one JSON object a line with the stable event field", () => {
    const { log, lines } = captureLogs();
    log.info({ event: "price_updated", market: "BTC-USD" }, "BTC-USD mark price 60000");
    expect(lines[0]).toMatchObject({
      event: "price_updated",
      market: "BTC-USD",
      level: "info",
      service: "perp-keeper",
    });
  });

  it("redacts keys that reach a log line by accident", () => {
    const { log, raw } = captureLogs();
    const secret = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    log.info({ event: "oops", privateKey: secret, signer: { privateKey: secret }, mnemonic: "test junk" }, "x");
    expect(raw.join("")).not.toContain(secret.slice(2));
    expect(raw.join("")).not.toContain("test junk");
  });
});

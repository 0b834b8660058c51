import pino from "pino";
import { describe, expect, it } from "vitest";
import { EndpointLag, EndpointLaggingError } from "../../src/chain/endpointLag.ts";
import type { Logger } from "../../src/ops/logger.ts";

function tracker(maxLag = 3n, windowMs = 1_000) {
  const events: string[] = [];
  const log = pino({ level: "silent" }) as unknown as Logger;
  const spy = {
    ...log,
    warn: (o: { event: string }) => events.push(o.event),
    info: (o: { event: string }) => events.push(o.event),
  } as unknown as Logger;
  return { lag: new EndpointLag(maxLag, windowMs, spy), events };
}

describe("endpoint lag", () => {
  it("fails the ping of an endpoint more than maxLag behind the best recent head, said once", () => {
    const { lag, events } = tracker();
    lag.check("http://a", 100n, 0);
    lag.check("http://b", 103n, 10); // 3 behind b: within the limit
    expect(() => lag.check("http://a", 100n, 20)).not.toThrow();
    lag.check("http://b", 104n, 30);
    expect(() => lag.check("http://a", 100n, 40)).toThrow(EndpointLaggingError);
    expect(() => lag.check("http://a", 100n, 50)).toThrow(/4 blocks behind/);
    expect(lag.isLagging("http://a")).toBe(true);
    expect(events).toEqual(["rpc_endpoint_lagging"]);
    lag.check("http://a", 104n, 60);
    expect(lag.isLagging("http://a")).toBe(false);
    expect(events).toEqual(["rpc_endpoint_lagging", "rpc_endpoint_caught_up"]);
  });

  it("compares only with heads reported within the window (a dead endpoint's old answer does not count)", () => {
    const { lag } = tracker(3n, 1_000);
    lag.check("http://b", 500n, 0); // b then goes silent
    lag.check("http://a", 400n, 5_000); // b's head is 5 s old: not a reference any more
    expect(lag.isLagging("http://a")).toBe(false);
    expect(() => lag.check("http://a", 400n, 400)).toThrow(); // within the window of b's report
  });
});

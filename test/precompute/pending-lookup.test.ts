/**
 * Behind a load balancer (or with several endpoints) one backend's "unknown" is only its own pool's view: a pending
 * update is unknown only when no endpoint that answered knows it. Two such checks in a row unwind the update's
 * backruns, so one lagging backend must never count as one.
 */
import pino from "pino";
import type { PublicClient } from "viem";
import { describe, expect, it } from "vitest";
import { PendingSource } from "../../src/precompute/pendingSource.ts";

const HASH = `0x${"ab".repeat(32)}` as const;

function client(answer: unknown): PublicClient {
  return {
    request: async () => {
      if (answer instanceof Error) throw answer;
      return answer;
    },
  } as unknown as PublicClient;
}

function source(...answers: unknown[]): PendingSource {
  const clients = answers.map(client);
  return new PendingSource({
    client: clients[0] as PublicClient,
    lookupClients: clients,
    wsUrl: undefined,
    log: pino({ level: "silent" }),
    aggregators: () => new Map(),
    onUpdate: () => {},
    pollMs: 1_000,
  });
}

describe("a pending update's lookup across endpoints", () => {
  it("is pending when one endpoint knows it, whatever the others say", async () => {
    expect(await source(null, { blockNumber: null }).lookup(HASH)).toEqual({ status: "pending" });
    expect(await source(new Error("down"), { blockNumber: null }).lookup(HASH)).toEqual({ status: "pending" });
  });

  it("is mined when one endpoint has it in a block", async () => {
    expect(await source(null, { blockNumber: "0x10" }).lookup(HASH)).toEqual({ status: "mined", blockNumber: 16n });
  });

  it("is unknown only when every endpoint that answered says so, and fails when none answered", async () => {
    expect(await source(null, null, new Error("down")).lookup(HASH)).toEqual({ status: "unknown" });
    await expect(source(new Error("down"), new Error("down too")).lookup(HASH)).rejects.toThrow("down");
  });
});

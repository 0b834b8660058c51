import type { PublicClient } from "viem";
import { describe, expect, it } from "vitest";
import { broadcastAll } from "../../src/executor/broadcast.ts";

const HASH = `0x${"11".repeat(32)}` as const;

/** A node that answers eth_sendRawTransaction after `ms` with our hash, or fails with `error`; knows no hash. */
function node(ms: number, error?: string): PublicClient & { sent: number } {
  const n = {
    sent: 0,
    async request({ method }: { method: string }) {
      await new Promise((r) => setTimeout(r, ms));
      if (method === "eth_sendRawTransaction") {
        n.sent++;
        if (error) throw new Error(error);
        return HASH;
      }
      return null; // eth_getTransactionByHash: unknown
    },
  };
  return n as unknown as PublicClient & { sent: number };
}

describe("broadcast to every endpoint", () => {
  it("sends to all; the first that takes it settles it without waiting for a slow one", async () => {
    const slow = node(2_000);
    const fast = node(5);
    const started = Date.now();
    expect(await broadcastAll([slow, fast], "0x01", HASH)).toEqual({ kind: "accepted" });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(fast.sent).toBe(1);
  });

  it("one endpoint down and the other takes it: accepted", async () => {
    expect((await broadcastAll([node(1, "fetch failed"), node(5)], "0x01", HASH)).kind).toBe("accepted");
  });

  it("none takes it: the most telling refusal wins over a node that did not answer", async () => {
    const result = await broadcastAll([node(1, "fetch failed"), node(2, "nonce too low")], "0x01", HASH);
    expect(result.kind).toBe("nonce_too_low");
  });
});

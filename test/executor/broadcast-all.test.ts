import { InvalidInputRpcError, type PublicClient, RpcRequestError } from "viem";
import { describe, expect, it } from "vitest";
import { classifyRpcError } from "../../src/chain/errors.ts";
import { broadcastAll, classifySendError } from "../../src/executor/broadcast.ts";

const HASH = `0x${"11".repeat(32)}` as const;

/** An error the node answered with (a JSON-RPC error object), as viem throws it. */
function rpcError(message: string): RpcRequestError {
  return new RpcRequestError({ body: {}, error: { code: -32000, message }, url: "http://node" });
}

/** A node that answers eth_sendRawTransaction after `ms` with our hash, or fails with `error`; knows no hash. */
function node(ms: number, error?: string): PublicClient & { sent: number } {
  const n = {
    sent: 0,
    async request({ method }: { method: string }) {
      await new Promise((r) => setTimeout(r, ms));
      if (method === "eth_sendRawTransaction") {
        n.sent++;
        if (error) throw error.startsWith("rpc:") ? rpcError(error.slice(4)) : new Error(error);
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

  it("none takes it and one did not answer: uncertain, never a refusal that would give the nonce back", async () => {
    // the endpoint that did not answer may hold it in its pool: a definite refusal elsewhere proves nothing
    for (const refusal of ["rpc:nonce too low", "rpc:insufficient funds for gas", "rpc:invalid sender"]) {
      const result = await broadcastAll([node(1, "fetch failed"), node(2, refusal)], "0x01", HASH);
      expect(result.kind).toBe("uncertain");
      const reversed = await broadcastAll([node(2, refusal), node(1, "fetch failed")], "0x01", HASH);
      expect(reversed.kind).toBe("uncertain");
    }
  });

  it("every endpoint refused: the most telling refusal (a used nonce over a generic one)", async () => {
    const result = await broadcastAll([node(1, "rpc:invalid sender"), node(2, "rpc:nonce too low")], "0x01", HASH);
    expect(result.kind).toBe("nonce_too_low");
  });
});

describe("the node's transaction fee cap (geth, Erigon rpc.txfeecap)", () => {
  const refusal = "tx fee (1.23 ether) exceeds the configured cap (1.00 ether)";

  it("is its own class, not a generic rejection (which the keeper sent again as is)", async () => {
    expect(classifySendError(rpcError(refusal))).toBe("tx_fee_cap");
    expect(classifyRpcError(rpcError(refusal))).toBe("tx_fee_cap");
    const result = await broadcastAll([node(1, `rpc:${refusal}`)], "0x01", HASH);
    expect(result).toMatchObject({ kind: "tx_fee_cap" });
  });

  it("says more than a generic refusal, less than a used nonce", async () => {
    const generic = node(1, "rpc:invalid sender");
    expect((await broadcastAll([generic, node(2, `rpc:${refusal}`)], "0x01", HASH)).kind).toBe("tx_fee_cap");
    const used = node(2, "rpc:nonce too low");
    expect((await broadcastAll([used, node(1, `rpc:${refusal}`)], "0x01", HASH)).kind).toBe("nonce_too_low");
  });
});

describe("a node's refusal is logged in its own words", () => {
  /** viem's wrapping of a JSON-RPC error -32000: "Missing or invalid parameters", the node's reason in `details`. */
  function wrapped(message: string) {
    return new InvalidInputRpcError(rpcError(message));
  }
  function refusing(error: Error): PublicClient {
    return {
      async request({ method }: { method: string }) {
        if (method === "eth_sendRawTransaction") throw error;
        return null;
      },
    } as unknown as PublicClient;
  }

  it("not viem's generic summary of the error code", async () => {
    const reason = "invalid sender: signature does not match chain id 1";
    const result = await broadcastAll([refusing(wrapped(reason))], "0x01", HASH);
    expect(result.kind).toBe("rejected");
    expect(result).toMatchObject({ error: expect.stringContaining(reason) });
    expect((result as { error: string }).error).not.toMatch(/Missing or invalid parameters/);
  });

  it("classified refusals too, and any URL in them is redacted", async () => {
    const result = await broadcastAll(
      [refusing(wrapped("insufficient funds for gas * price + value (see https://rpc.example/v2/SECRETKEY)"))],
      "0x01",
      HASH,
    );
    expect(result.kind).toBe("insufficient_funds");
    const error = (result as { error: string }).error;
    expect(error).toContain("insufficient funds for gas");
    expect(error).not.toContain("SECRETKEY");
  });
});

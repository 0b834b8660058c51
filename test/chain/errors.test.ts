/** Classified RPC failures: a rate limit is asked again later, never taken for a range too large (halved). */
import { HttpRequestError, RpcRequestError } from "viem";
import { describe, expect, it } from "vitest";
import { classifyRpcError } from "../../src/chain/errors.ts";

const url = "http://127.0.0.1:1";

describe("classifyRpcError", () => {
  it("takes HTTP 429 for a rate limit, whatever its body says", () => {
    const e = new HttpRequestError({ url, status: 429, body: { method: "eth_getLogs" }, details: "Too Many Requests" });
    expect(classifyRpcError(e)).toBe("rate_limited");
  });

  it("takes a provider's rate-limit words for a rate limit", () => {
    const e = new RpcRequestError({ url, body: {}, error: { code: -32005, message: "rate limit exceeded" } });
    expect(classifyRpcError(e)).toBe("rate_limited");
  });

  it("still takes a range refusal for a range too large", () => {
    const e = new RpcRequestError({
      url,
      body: {},
      error: { code: -32005, message: "query returned more than 10000 results" },
    });
    expect(classifyRpcError(e)).toBe("range_too_large");
    const blocks = new RpcRequestError({ url, body: {}, error: { code: -32602, message: "block range too large" } });
    expect(classifyRpcError(blocks)).toBe("range_too_large");
  });

  it("keeps a 5xx an outage", () => {
    expect(classifyRpcError(new HttpRequestError({ url, status: 503, body: {} }))).toBe("unavailable");
  });
});

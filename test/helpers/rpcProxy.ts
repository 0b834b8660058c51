/**
 * A JSON-RPC forwarder on a free 127.0.0.1 port in front of Anvil, for fault tests: it counts requests and lets a
 * test answer (or delay, or break) any request before it reaches the node. Always close() it.
 */
import { createServer } from "node:http";

/** What the test does with one request body: undefined forwards it as it is. */
export type Intercept = (
  body: string,
) => Promise<{ readonly status: number; readonly text: string } | "forward-and-cut" | undefined> | undefined;

export interface RpcProxy {
  readonly url: string;
  /** HTTP requests received. */
  readonly calls: number;
  /** Stops answering: open connections are dropped, new ones refused. */
  close(): void;
}

export async function startRpcProxy(target: string, intercept?: Intercept): Promise<RpcProxy> {
  let calls = 0;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", async () => {
      calls++;
      try {
        const verdict = await intercept?.(body);
        if (verdict && verdict !== "forward-and-cut") {
          res.writeHead(verdict.status, { "content-type": "application/json" }).end(verdict.text);
          return;
        }
        const upstream = await fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body });
        const text = await upstream.text();
        // the node took the request; the answer comes back cut in half
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(verdict === "forward-and-cut" ? text.slice(0, Math.floor(text.length / 2)) : text);
      } catch {
        // the node is gone (a test tearing down while a client still asks): a gateway error, never an unhandled one
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  return {
    url,
    get calls() {
      return calls;
    },
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

type Call = { id: number; method: string; params: unknown[] };
const isFinalized = (c: Call) => c.method === "eth_getBlockByNumber" && c.params[0] === "finalized";

/**
 * The answer of an RPC that does not serve the `finalized` block tag, for a body that asks for it (alone or in a
 * batch: the other calls are forwarded to `target` and answered as they come); undefined for any other body.
 */
export async function refusingFinalized(
  target: string,
  body: string,
): Promise<{ status: number; text: string } | undefined> {
  const parsed = JSON.parse(body) as Call | Call[];
  const calls = Array.isArray(parsed) ? parsed : [parsed];
  if (!calls.some(isFinalized)) return undefined;
  const upstream = await fetch(target, { method: "POST", body, headers: { "content-type": "application/json" } });
  const answered = (await upstream.json()) as { id: number }[] | { id: number };
  const answers = (Array.isArray(answered) ? answered : [answered]).map((a) =>
    calls.find((c) => c.id === a.id && isFinalized(c))
      ? { jsonrpc: "2.0", id: a.id, error: { code: -32602, message: "invalid block tag finalized" } }
      : a,
  );
  return { status: 200, text: JSON.stringify(Array.isArray(answered) ? answers : answers[0]) };
}

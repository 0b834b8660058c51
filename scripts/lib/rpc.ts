/**
 * Plain JSON-RPC over fetch for the benchmarks' own calls to a local node (never through the keeper's transport or
 * the counting proxies): single calls, batches in chunks, and eth_getLogs over block ranges without any decoding.
 */
import { type Address, type Hex, toHex } from "viem";

export interface RpcAnswer {
  readonly result?: unknown;
  readonly error?: { readonly code: number; readonly message: string };
}

export interface RpcCall {
  readonly method: string;
  readonly params: readonly unknown[];
}

/** One JSON-RPC call; an error answer throws, naming the method. */
export async function rpc<T = unknown>(url: string, method: string, params: readonly unknown[] = []): Promise<T> {
  const [answer] = await rpcBatch(url, [{ method, params }]);
  if (answer?.error) throw new Error(`${method}: ${answer.error.message}`);
  return answer?.result as T;
}

/** JSON-RPC batches of `chunk` calls, one after another; answers in the order of the calls. */
export async function rpcBatch(url: string, calls: readonly RpcCall[], chunk = 500): Promise<RpcAnswer[]> {
  const out: RpcAnswer[] = [];
  for (let i = 0; i < calls.length; i += chunk) {
    const body = calls.slice(i, i + chunk).map((c, j) => ({ jsonrpc: "2.0", id: i + j, ...c }));
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(300_000),
    });
    const answers = (await res.json()) as (RpcAnswer & { id: number })[];
    if (!Array.isArray(answers)) throw new Error(`batch answered ${JSON.stringify(answers).slice(0, 200)}`);
    answers.sort((a, b) => a.id - b.id);
    out.push(...answers);
  }
  return out;
}

/** Throws on the first error answer of a batch, naming what it was for. */
export function checkAnswers(answers: readonly RpcAnswer[], what: string): unknown[] {
  return answers.map((a, i) => {
    if (a.error) throw new Error(`${what}: call ${i} failed: ${a.error.message}`);
    return a.result;
  });
}

export interface RawLogsResult {
  /** Logs answered, summed over the ranges. */
  readonly logs: number;
  readonly ranges: number;
  readonly ms: number;
  readonly bytes: number;
}

/**
 * eth_getLogs of `address` over [fromBlock, toBlock] in ranges of `maxRange` blocks (the keeper's split), up to
 * `concurrency` ranges in flight at once, each answer read with fetch and JSON.parse only: no decoding, no
 * formatting. `topics` narrows the logs (for counting events of some kinds).
 */
export async function rawGetLogs(
  url: string,
  o: {
    readonly address: Address;
    readonly fromBlock: bigint;
    readonly toBlock: bigint;
    readonly maxRange: bigint;
    readonly concurrency: number;
    readonly topics?: readonly (Hex | readonly Hex[] | null)[];
  },
): Promise<RawLogsResult> {
  const ranges: [bigint, bigint][] = [];
  for (let from = o.fromBlock; from <= o.toBlock; from += o.maxRange) {
    const to = from + o.maxRange - 1n < o.toBlock ? from + o.maxRange - 1n : o.toBlock;
    ranges.push([from, to]);
  }
  let next = 0;
  let logs = 0;
  let bytes = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < ranges.length) {
      const [from, to] = ranges[next++] as [bigint, bigint];
      const filter = {
        address: o.address,
        fromBlock: toHex(from),
        toBlock: toHex(to),
        ...(o.topics ? { topics: o.topics } : {}),
      };
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_getLogs", params: [filter] }),
        signal: AbortSignal.timeout(300_000),
      });
      const text = await res.text();
      bytes += text.length;
      const answer = JSON.parse(text) as RpcAnswer;
      if (answer.error || !Array.isArray(answer.result)) {
        throw new Error(`eth_getLogs ${from}..${to}: ${answer.error?.message ?? "no array in the answer"}`);
      }
      logs += answer.result.length;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, ranges.length)) }, worker));
  return { logs, ranges: ranges.length, ms: performance.now() - started, bytes };
}

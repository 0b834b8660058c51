/**
 * The fault proxy's inconsistent answers (see faultProxy.ts): well-formed, prompt JSON-RPC answers that are wrong, as
 * the backends behind one load-balanced endpoint give when they sit at different heights or on different forks. The
 * transport sees nothing amiss; only a keeper that checks answers against the chain can tell.
 *
 * - emptyLogs: every eth_getLogs answered `[]` (or only those over a block range, or only those by block hash);
 * - laggingHead: eth_blockNumber and eth_getBlockByNumber("latest"/"pending") answer the block `blocks` under the
 *   node's real head, following it as it moves; everything else (nonces, receipts, calls) comes from the tip;
 * - otherForkLogs: eth_getLogs answers the node's logs with every blockHash replaced by a made-up one (the same for
 *   the same block each time); with `shiftBlocks`, a range query answers the logs of the range that many blocks
 *   lower, renumbered into the range asked (events in other blocks than on the chain);
 * - unknownTx: eth_getTransactionByHash and eth_getTransactionReceipt answer null, and (unless `blockReceipts` is
 *   false) eth_getBlockReceipts too: a backend that has seen neither the transaction nor the block it was mined in.
 *
 * Every other call of the request is forwarded as it is (a batch call by call, its answers merged in order).
 */

export type InconsistentFault =
  /** eth_getLogs answered `[]`: all of them, only those over a range (fromBlock/toBlock), or only those by blockHash. */
  | { readonly kind: "emptyLogs"; readonly only?: "range" | "blockHash" }
  /** The head answered `blocks` under the node's real head (which it follows); everything else from the tip. */
  | { readonly kind: "laggingHead"; readonly blocks: number }
  /** eth_getLogs answered with made-up block hashes; with shiftBlocks, a range's logs taken that many blocks lower. */
  | { readonly kind: "otherForkLogs"; readonly shiftBlocks?: number }
  /** Transaction lookups (and by default block receipts) answered null. */
  | { readonly kind: "unknownTx"; readonly blockReceipts?: boolean };

export const INCONSISTENT_KINDS: readonly InconsistentFault["kind"][] = [
  "emptyLogs",
  "laggingHead",
  "otherForkLogs",
  "unknownTx",
];

export function isInconsistent(fault: { readonly kind: string }): fault is InconsistentFault {
  return (INCONSISTENT_KINDS as readonly string[]).includes(fault.kind);
}

interface Call {
  readonly jsonrpc?: string;
  readonly id?: number | string | null;
  readonly method?: string;
  params?: unknown[];
}

type Forward = (body: string) => Promise<{ status: number; text: string }>;

interface RpcLog {
  blockHash?: string;
  blockNumber?: string;
  [field: string]: unknown;
}

const hex = (n: bigint) => `0x${n.toString(16)}`;

/** The made-up hash another fork has at a block: the real one's digits reversed (the same each time it is asked). */
export function otherForkHash(hash: string): string {
  return `0x${[...hash.slice(2)].reverse().join("")}`;
}

/** Whether a fault rewrites this call (what the proxy counts as a request it hit). */
export function rewrites(fault: InconsistentFault, call: Call): boolean {
  const filter = (call.params?.[0] ?? {}) as { blockHash?: string };
  switch (fault.kind) {
    case "emptyLogs":
      if (call.method !== "eth_getLogs") return false;
      if (fault.only === "range") return filter.blockHash === undefined;
      if (fault.only === "blockHash") return filter.blockHash !== undefined;
      return true;
    case "laggingHead":
      return (
        call.method === "eth_blockNumber" ||
        (call.method === "eth_getBlockByNumber" && ["latest", "pending"].includes(String(call.params?.[0])))
      );
    case "otherForkLogs":
      return call.method === "eth_getLogs";
    case "unknownTx":
      return (
        call.method === "eth_getTransactionByHash" ||
        call.method === "eth_getTransactionReceipt" ||
        (fault.blockReceipts !== false && call.method === "eth_getBlockReceipts")
      );
  }
}

/** The node's head now, for laggingHead. */
async function realHead(forward: Forward): Promise<bigint> {
  const { text } = await forward(JSON.stringify({ jsonrpc: "2.0", id: 0, method: "eth_blockNumber", params: [] }));
  return BigInt((JSON.parse(text) as { result: string }).result);
}

/**
 * Answers a request under an inconsistent fault: each call the fault rewrites is answered locally or forwarded
 * rewritten (and its answer rewritten), the rest forwarded as it is. Returns the HTTP answer and whether any call was
 * rewritten.
 */
export async function inconsistentAnswer(
  fault: InconsistentFault,
  parsed: unknown,
  calls: readonly Call[],
  forward: Forward,
): Promise<{ status: number; text: string; hit: boolean }> {
  const hitCalls = calls.filter((c) => rewrites(fault, c));
  if (hitCalls.length === 0) {
    const { status, text } = await forward(JSON.stringify(parsed));
    return { status, text, hit: false };
  }
  /** Local answers by call; calls absent here are forwarded (perhaps rewritten), their result passed to `after`. */
  const local = new Map<Call, unknown>();
  const after = new Map<Call, (result: unknown) => unknown>();
  const sent = new Map<Call, Call>();
  const head = fault.kind === "laggingHead" ? await realHead(forward) : 0n;
  for (const call of calls) {
    if (!hitCalls.includes(call)) {
      sent.set(call, call);
      continue;
    }
    switch (fault.kind) {
      case "emptyLogs":
        local.set(call, []);
        break;
      case "unknownTx":
        local.set(call, null);
        break;
      case "laggingHead": {
        const lagged = head - BigInt(fault.blocks) < 0n ? 0n : head - BigInt(fault.blocks);
        if (call.method === "eth_blockNumber") local.set(call, hex(lagged));
        else sent.set(call, { ...call, params: [hex(lagged), ...(call.params?.slice(1) ?? [])] });
        break;
      }
      case "otherForkLogs": {
        const filter = { ...((call.params?.[0] ?? {}) as Record<string, unknown>) };
        const shift = BigInt(fault.shiftBlocks ?? 0);
        const ranged = filter.blockHash === undefined && shift > 0n;
        if (ranged) {
          // the logs of the range `shift` blocks lower, renumbered into the range asked
          const lower = (tag: unknown) =>
            typeof tag === "string" && tag.startsWith("0x")
              ? hex(BigInt(tag) - shift < 0n ? 0n : BigInt(tag) - shift)
              : tag;
          filter.fromBlock = lower(filter.fromBlock);
          filter.toBlock = lower(filter.toBlock);
        }
        sent.set(call, { ...call, params: [filter, ...(call.params?.slice(1) ?? [])] });
        after.set(call, (result) =>
          Array.isArray(result)
            ? (result as RpcLog[]).map((l) => ({
                ...l,
                blockHash: l.blockHash === undefined ? l.blockHash : otherForkHash(l.blockHash),
                blockNumber: ranged && l.blockNumber !== undefined ? hex(BigInt(l.blockNumber) + shift) : l.blockNumber,
              }))
            : result,
        );
        break;
      }
    }
  }
  const forwarded = calls.filter((c) => sent.has(c));
  const byId = new Map<unknown, { id?: unknown; result?: unknown }>();
  let status = 200;
  if (forwarded.length > 0) {
    const body = Array.isArray(parsed) ? forwarded.map((c) => sent.get(c)) : sent.get(forwarded[0] as Call);
    const upstream = await forward(JSON.stringify(body));
    status = upstream.status;
    const answered = JSON.parse(upstream.text) as { id?: unknown; result?: unknown } | { id?: unknown }[];
    for (const a of Array.isArray(answered) ? answered : [answered]) byId.set(a.id, a);
  }
  const answers = calls.map((c) => {
    if (local.has(c)) return { jsonrpc: "2.0", id: c.id ?? null, result: local.get(c) };
    const a = byId.get(c.id) ?? { jsonrpc: "2.0", id: c.id ?? null, result: null };
    const rewrite = after.get(c);
    return rewrite && "result" in a ? { ...a, result: rewrite(a.result) } : a;
  });
  return { status, text: JSON.stringify(Array.isArray(parsed) ? answers : answers[0]), hit: true };
}

/**
 * What the chain says about liquidations on the cross-margin exchange (CrossMarginEngine), from its own events and
 * the senders' transactions: which accounts were flagged in which block, each position's closes and the liquidation
 * windows they fell in, and each transaction of a sender (its value, gas, status and the accounts it addressed). The
 * ideas of the cross-margin demo's summary (src/demo/crossMarginDemo.ts), for the pull-oracle benchmark.
 *
 * Beside them, HeadClock: when each block was first seen by the bench (eth_blockNumber polled straight at the node).
 */
import { type Address, decodeFunctionData, type Hex, keccak256, type PublicClient, toBytes } from "viem";
import { iCrossMarginEngineAbi } from "../../abi/ICrossMarginEngine.ts";
import type { CrossMarginDeployment } from "../../src/devnet/crossMargin/deploy.ts";
import { now, sleep } from "./tools.ts";

/** The fetch this module found at load: the bench's own requests go through it, never through a trace. */
export const benchFetch: typeof fetch = globalThis.fetch;

export interface FlagRecord {
  readonly accountId: bigint;
  readonly block: bigint;
  readonly txHash: Hex;
}

/** Accounts flagged (AccountFlaggedForLiquidation) in [from, to], with their block and transaction. */
export async function flagsBetween(
  client: PublicClient,
  engine: Address,
  from: bigint,
  to?: bigint,
): Promise<Map<bigint, FlagRecord>> {
  const logs = await client.getContractEvents({
    address: engine,
    abi: iCrossMarginEngineAbi,
    eventName: "AccountFlaggedForLiquidation",
    fromBlock: from,
    ...(to === undefined ? {} : { toBlock: to }),
  });
  const out = new Map<bigint, FlagRecord>();
  for (const l of logs) {
    const id = l.args.accountId as bigint;
    if (!out.has(id)) out.set(id, { accountId: id, block: l.blockNumber, txHash: l.transactionHash });
  }
  return out;
}

export interface CloseRecord {
  readonly accountId: bigint;
  readonly marketId: bigint;
  readonly amount: bigint;
  /** The position's size after the close (0: closed in full). */
  readonly sizeAfter: bigint;
  readonly block: bigint;
  /** The block's timestamp, unix seconds. */
  readonly timestamp: bigint;
  readonly txHash: Hex;
}

/** Block timestamps, read once each. */
export class BlockTimes {
  private readonly times = new Map<bigint, bigint>();
  constructor(private readonly client: PublicClient) {}
  async of(block: bigint): Promise<bigint> {
    const known = this.times.get(block);
    if (known !== undefined) return known;
    const t = (await this.client.getBlock({ blockNumber: block })).timestamp;
    this.times.set(block, t);
    return t;
  }
}

/** Every PositionLiquidated in [from, to], in chain order, with its block's timestamp. */
export async function closesBetween(
  client: PublicClient,
  engine: Address,
  from: bigint,
  to?: bigint,
  times = new BlockTimes(client),
): Promise<CloseRecord[]> {
  const logs = await client.getContractEvents({
    address: engine,
    abi: iCrossMarginEngineAbi,
    eventName: "PositionLiquidated",
    fromBlock: from,
    ...(to === undefined ? {} : { toBlock: to }),
  });
  const out: CloseRecord[] = [];
  for (const l of logs) {
    out.push({
      accountId: l.args.accountId as bigint,
      marketId: l.args.marketId as bigint,
      amount: l.args.amountLiquidated as bigint,
      sizeAfter: l.args.currentPositionSize as bigint,
      block: l.blockNumber,
      timestamp: await times.of(l.blockNumber),
      txHash: l.transactionHash,
    });
  }
  return out;
}

export interface WindowUse {
  /** Window index from the market's first close: floor((timestamp - first close's timestamp) / window seconds). */
  readonly index: number;
  readonly amount: bigint;
  readonly blocks: readonly bigint[];
}

/**
 * The liquidation windows a market's closes fell in. The exchange's window rolls (a close counts against the cap
 * for `windowSeconds` from its block), so a schedule that uses every window closes a cap at t0, the next as it frees
 * at t0 + W, and so on: the closes are grouped by whole windows from the market's first close.
 */
export function windowsOf(closes: readonly CloseRecord[], windowSeconds: bigint): WindowUse[] {
  if (closes.length === 0) return [];
  const start = closes.reduce((t, c) => (c.timestamp < t ? c.timestamp : t), closes[0]?.timestamp ?? 0n);
  const byIndex = new Map<number, { amount: bigint; blocks: Set<bigint> }>();
  for (const c of closes) {
    const index = windowSeconds > 0n ? Number((c.timestamp - start) / windowSeconds) : 0;
    const w = byIndex.get(index) ?? { amount: 0n, blocks: new Set<bigint>() };
    w.amount += c.amount;
    w.blocks.add(c.block);
    byIndex.set(index, w);
  }
  return [...byIndex.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([index, w]) => ({ index, amount: w.amount, blocks: [...w.blocks].sort((a, b) => (a < b ? -1 : 1)) }));
}

/** ceil(a / b) on bigints (b > 0). */
export const ceilDiv = (a: bigint, b: bigint): bigint => (a + b - 1n) / b;

/** Each account's open position sizes by market at `block` (accounts without any are left out). */
export async function positionsAt(
  client: PublicClient,
  d: CrossMarginDeployment,
  ids: readonly bigint[],
  block: bigint,
): Promise<Map<bigint, Map<bigint, bigint>>> {
  const reads = await Promise.all(
    ids.flatMap((id) =>
      d.markets.map(async (m) => {
        const [size] = await client.readContract({
          address: d.engine,
          abi: iCrossMarginEngineAbi,
          functionName: "getOpenPosition",
          args: [id, m.marketId],
          blockNumber: block,
        });
        return { id, marketId: m.marketId, size };
      }),
    ),
  );
  const out = new Map<bigint, Map<bigint, bigint>>();
  for (const r of reads) {
    if (r.size === 0n) continue;
    const sizes = out.get(r.id) ?? new Map<bigint, bigint>();
    sizes.set(r.marketId, r.size);
    out.set(r.id, sizes);
  }
  return out;
}

/** A market's window: its length in seconds and its cap (maxLiquidationInWindow, base units). */
export async function windowCaps(
  client: PublicClient,
  d: CrossMarginDeployment,
): Promise<Map<bigint, { seconds: bigint; cap: bigint }>> {
  const out = new Map<bigint, { seconds: bigint; cap: bigint }>();
  for (const m of d.markets) {
    const [, cap] = await client.readContract({
      address: d.engine,
      abi: iCrossMarginEngineAbi,
      functionName: "liquidationCapacity",
      args: [m.marketId],
    });
    out.set(m.marketId, { seconds: m.config.maxSecondsInLiquidationWindow, cap });
  }
  return out;
}

export interface SentTx {
  readonly hash: Hex;
  readonly from: Address;
  readonly nonce: number;
  readonly block: bigint;
  /** Position in its block. */
  readonly index: number;
  readonly value: bigint;
  readonly gasLimit: bigint;
  readonly gasUsed: bigint;
  readonly reverted: boolean;
  /** The engine's function, e.g. "liquidateMany"; "other" when the input is not one of its calls. */
  readonly fn: string;
  /** The accounts the call addressed. */
  readonly accounts: readonly bigint[];
  /** AccountLiquidationAttempt events in its receipt: one per account liquidated (flagged, or a continuation step). */
  readonly attempts: number;
  /** Of those, attempts that closed nothing and paid nothing (a window without room). */
  readonly emptyAttempts: number;
  /** LiquidationSkipped events in its receipt. */
  readonly skipped: number;
}

/** The engine call an input holds, and the accounts it names. */
export function decodeLiquidation(input: Hex): { fn: string; accounts: bigint[] } {
  try {
    const call = decodeFunctionData({ abi: iCrossMarginEngineAbi, data: input });
    const args = (call.args ?? []) as readonly unknown[];
    switch (call.functionName) {
      case "liquidate":
        return { fn: args.length > 1 ? "liquidate+price" : "liquidate", accounts: [args[0] as bigint] };
      case "liquidateMany":
      case "liquidateFlaggedAccounts":
        return { fn: call.functionName, accounts: [...(args[0] as readonly bigint[])] };
      case "multicall": {
        const accounts: bigint[] = [];
        for (const inner of args[0] as readonly Hex[]) accounts.push(...decodeLiquidation(inner).accounts);
        return { fn: "multicall", accounts };
      }
      default:
        return { fn: call.functionName, accounts: [] };
    }
  } catch {
    return { fn: "other", accounts: [] };
  }
}

/** The transactions of `senders` mined in [from, to], with their receipts. */
export async function transactionsOf(
  client: PublicClient,
  engine: Address,
  senders: readonly Address[],
  from: bigint,
  to: bigint,
): Promise<SentTx[]> {
  const mine = new Set(senders.map((s) => s.toLowerCase()));
  const out: SentTx[] = [];
  for (let b = from; b <= to; b++) {
    const block = await client.getBlock({ blockNumber: b, includeTransactions: true });
    const ours = block.transactions.filter((tx) => mine.has(tx.from.toLowerCase()));
    const receipts = await Promise.all(ours.map((tx) => client.getTransactionReceipt({ hash: tx.hash })));
    for (const [i, tx] of ours.entries()) {
      const receipt = receipts[i];
      if (!receipt) continue;
      const { fn, accounts } = decodeLiquidation(tx.input);
      let attempts = 0;
      let emptyAttempts = 0;
      let skipped = 0;
      const closedIn = new Set<string>();
      const events = receipt.logs.filter((l) => l.address.toLowerCase() === engine.toLowerCase());
      for (const l of events) {
        const name = eventNameOf(l.topics[0]);
        if (name === "PositionLiquidated" || name === "AccountFlaggedForLiquidation") closedIn.add(l.topics[1] ?? "");
        if (name === "LiquidationSkipped") skipped++;
        if (name === "AccountLiquidationAttempt") {
          attempts++;
          if (!closedIn.has(l.topics[1] ?? "")) emptyAttempts++;
        }
      }
      out.push({
        hash: tx.hash,
        from: tx.from,
        nonce: tx.nonce,
        block: b,
        index: tx.transactionIndex ?? 0,
        value: tx.value,
        gasLimit: tx.gas,
        gasUsed: receipt.gasUsed,
        reverted: receipt.status !== "success",
        fn,
        accounts,
        attempts,
        emptyAttempts,
        skipped,
      });
    }
  }
  return out;
}

const TOPICS = new Map<string, string>();
function eventNameOf(topic: Hex | undefined): string | undefined {
  if (topic === undefined) return undefined;
  if (TOPICS.size === 0) {
    for (const item of iCrossMarginEngineAbi) {
      if (item.type !== "event") continue;
      const signature = `${item.name}(${item.inputs.map((i) => i.type).join(",")})`;
      TOPICS.set(keccakTopic(signature), item.name);
    }
  }
  return TOPICS.get(topic.toLowerCase());
}

function keccakTopic(signature: string): string {
  return keccak256(toBytes(signature)).toLowerCase();
}

/** p-th percentile (0..1) of sorted numbers; 0 when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number;
}

/** The sum of the keeper's JSON-RPC calls (perp_keeper_rpc_requests_total) on its metrics endpoint. */
export async function rpcCallsOf(metricsUrl: string): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith("perp_keeper_rpc_requests_total")) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

/**
 * When each block was first seen: eth_blockNumber polled straight at the node every `everyMs` (10 by default), so
 * that a price move can be placed at a known point of a slot and a broadcast compared with the next block.
 */
export class HeadClock {
  /** Block number -> performance.now() when first seen. */
  readonly seenAt = new Map<bigint, number>();
  head = -1n;
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly url: string,
    everyMs = 10,
  ) {
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          const res = await benchFetch(this.url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_blockNumber", params: [] }),
            signal: AbortSignal.timeout(5_000),
          });
          const n = BigInt(((await res.json()) as { result: Hex }).result);
          if (n > this.head) {
            for (let b = this.head < 0n ? n : this.head + 1n; b <= n; b++) this.seenAt.set(b, now());
            this.head = n;
          }
        } catch {
          // the node is stopping, or slow: the next poll tells
        }
        await sleep(everyMs);
      }
    })();
  }

  /** Resolves at the first block above the current head, with its number. */
  async nextBlock(timeoutMs = 10_000): Promise<bigint> {
    const deadline = now() + timeoutMs;
    const wait = async (done: () => boolean) => {
      while (!done()) {
        if (now() > deadline) throw new Error(`no new block within ${timeoutMs} ms`);
        await sleep(2);
      }
    };
    await wait(() => this.head >= 0n);
    const start = this.head;
    await wait(() => this.head > start);
    return this.head;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

export interface TracedRequest {
  /** performance.now() when sent, and when the answer's headers came. */
  readonly start: number;
  readonly end: number;
  /** JSON-RPC methods of the request (a batch: each of its calls). */
  readonly methods: readonly string[];
}

/**
 * The JSON-RPC requests this process sends to `url` through the global fetch (the keeper's viem transports do,
 * through its RpcStats), with their times: global fetch wrapped while it runs. The bench's own requests use
 * benchFetch and are not seen.
 */
export class RpcTrace {
  readonly requests: TracedRequest[] = [];
  private readonly original = globalThis.fetch;
  private recording = false;

  constructor(private readonly url: string) {
    const original = this.original;
    const trace = this;
    globalThis.fetch = async function traced(input, init) {
      const target = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      if (!trace.recording || !target.startsWith(trace.url)) return original(input, init);
      const start = now();
      try {
        return await original(input, init);
      } finally {
        trace.requests.push({ start, end: now(), methods: methodsOf(init?.body) });
      }
    };
  }

  record(on: boolean): void {
    this.recording = on;
  }

  /** Puts the global fetch back. */
  close(): void {
    globalThis.fetch = this.original;
  }
}

function methodsOf(body: unknown): string[] {
  if (typeof body !== "string") return ["?"];
  try {
    const parsed = JSON.parse(body) as { method?: unknown } | { method?: unknown }[];
    return (Array.isArray(parsed) ? parsed : [parsed]).map((c) => String(c.method ?? "?"));
  } catch {
    return ["?"];
  }
}

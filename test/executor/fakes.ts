/**
 * Fakes for the executor's unit tests: a node (the RPC methods the executor calls, each answer scriptable and each
 * fault injectable), a journal that records or refuses appends, a protocol, a signer that can fail, and an
 * Executor wired to them. No Anvil, no disk.
 */
import {
  type Address,
  formatTransactionReceipt,
  type Hex,
  keccak256,
  type PublicClient,
  RpcRequestError,
  serializeTransaction,
  TransactionReceiptNotFoundError,
  type TransactionSerializableEIP1559,
  toHex,
} from "viem";
import type { Attempt } from "../../src/executor/attempt.ts";
import { Executor } from "../../src/executor/executor.ts";
import type { Journal, JournalRecord } from "../../src/executor/journal.ts";
import { NonceLane } from "../../src/executor/lane.ts";
import type { ExecutorOptions } from "../../src/executor/types.ts";
import type { Logger } from "../../src/ops/logger.ts";
import type { Finding, LiquidationProtocol, TargetOutcome } from "../../src/protocol/adapter.ts";
import type { TrackedPosition } from "../../src/protocol/perpEngine/book.ts";
import { findingOf } from "../../src/protocol/perpEngine/scan.ts";
import type { Tick } from "../../src/watcher/watcher.ts";
import { FEE_POLICY } from "../helpers/fees.ts";

export const EXCHANGE: Address = "0x00000000000000000000000000000000000000e1";
export const SIGNER_A: Address = "0x000000000000000000000000000000000000a001";
export const SIGNER_B: Address = "0x000000000000000000000000000000000000b002";

/** A log collector with pino's shape: every line kept as its merged object. */
export function memoryLog(): Logger & { lines: Record<string, unknown>[]; events: () => string[] } {
  const lines: Record<string, unknown>[] = [];
  const at =
    (level: string) =>
    (obj: Record<string, unknown>, msg?: string): void => {
      lines.push({ level, ...obj, msg });
    };
  const log = {
    lines,
    events: () => lines.map((l) => l.event as string),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    debug: at("debug"),
    trace: at("trace"),
    fatal: at("fatal"),
    child: () => log,
  };
  return log as unknown as Logger & { lines: Record<string, unknown>[]; events: () => string[] };
}

/** A journal in memory: appends are kept, or rejected while `failNext` counts down (an injected disk fault). */
export class FakeJournal {
  readonly records: JournalRecord[] = [];
  readonly writes: JournalRecord[][] = [];
  failNext = 0;
  recordsWritten = 0;
  async append(records: readonly JournalRecord[]): Promise<void> {
    await Promise.resolve();
    if (this.failNext > 0) {
      this.failNext--;
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    }
    this.writes.push([...records]);
    this.records.push(...records);
    this.recordsWritten += records.length;
  }
  async compact(): Promise<void> {}
  async close(): Promise<void> {}
  /** Status records of an attempt, in order. */
  statuses(id: string): string[] {
    return this.records.filter((r) => r.t === "status" && r.id === id).map((r) => (r as { status: string }).status);
  }
}

/** A signer: serializes (unsigned, which is enough for a hash) and can be made to throw on its nth call. */
export function fakeSigner(): ((tx: TransactionSerializableEIP1559) => Promise<Hex>) & {
  calls: number;
  failOn: Set<number>;
} {
  const sign = Object.assign(
    async (tx: TransactionSerializableEIP1559): Promise<Hex> => {
      sign.calls++;
      if (sign.failOn.has(sign.calls)) throw new Error("remote signer: 503 Service Unavailable");
      return serializeTransaction(tx);
    },
    { calls: 0, failOn: new Set<number>() },
  );
  return sign;
}

export function lane(address: Address = SIGNER_A, signer = fakeSigner()): NonceLane & { fake: FakeJournal } {
  const journal = new FakeJournal();
  const l = new NonceLane(address, signer, 31337, journal as unknown as Journal) as NonceLane & { fake: FakeJournal };
  l.fake = journal;
  return l;
}

type Receipt = Record<string, unknown>;

/**
 * A node: answers what the executor asks. `send` decides each eth_sendRawTransaction's answer (default: our hash);
 * `pool` holds what it has; `receipts` by hash, `blocks` of receipts by number; `nonces` the latest count per key.
 */
export class FakeNode {
  readonly sent: Hex[] = [];
  /** Every raw transaction broadcast, in order. */
  readonly raws: Hex[] = [];
  readonly pool = new Set<Hex>();
  readonly receipts = new Map<Hex, Receipt>();
  readonly blockReceipts = new Map<bigint, Receipt[]>();
  readonly nonces = new Map<string, number>();
  /** What an eth_sendRawTransaction answers: the hash (accepted) or a thrown error. */
  send: (raw: Hex, hash: Hex) => Hex | Error = (_raw, hash) => hash;
  /** eth_getTransactionReceipt by hash: thrown when this returns an error. */
  receiptFault: ((hash: Hex) => Error | undefined) | undefined;
  estimates: bigint[] = [];
  estimateCalls = 0;
  callCalls = 0;
  balance = 10n ** 21n;

  get client(): PublicClient {
    const request = async ({ method, params }: { method: string; params: unknown[] }): Promise<unknown> => {
      await Promise.resolve();
      switch (method) {
        case "eth_sendRawTransaction": {
          const raw = params[0] as Hex;
          const hash = keccak256(raw);
          this.sent.push(hash);
          this.raws.push(raw);
          const answer = this.send(raw, hash);
          if (answer instanceof Error) throw answer;
          this.pool.add(hash);
          return answer;
        }
        case "eth_getTransactionByHash": {
          const hash = params[0] as Hex;
          return this.pool.has(hash) || this.receipts.has(hash) ? { hash } : null;
        }
        case "eth_getTransactionReceipt": {
          const hash = params[0] as Hex;
          const fault = this.receiptFault?.(hash);
          if (fault) throw fault;
          return this.receipts.get(hash) ?? null;
        }
        case "eth_getBlockReceipts":
          return this.blockReceipts.get(BigInt(params[0] as Hex)) ?? [];
        default:
          throw new Error(`fake node: ${method} not served`);
      }
    };
    return {
      request,
      getTransactionCount: async ({ address, blockTag }: { address: Address; blockTag: string }) => {
        const latest = this.nonces.get(address.toLowerCase()) ?? 0;
        if (blockTag === "latest") return latest;
        const ours = [...this.pool].length;
        return Math.max(latest, ours);
      },
      getBalance: async () => this.balance,
      estimateGas: async () => {
        this.estimateCalls++;
        return this.estimates.shift() ?? 100_000n;
      },
      call: async () => {
        this.callCalls++;
        return { data: "0x" };
      },
      getFeeHistory: async () => ({ reward: [[1n]] }),
      getTransactionReceipt: async ({ hash }: { hash: Hex }) => {
        const r = (await request({ method: "eth_getTransactionReceipt", params: [hash] })) as Receipt | null;
        if (!r) throw new TransactionReceiptNotFoundError({ hash });
        return formatTransactionReceipt(r as never);
      },
    } as unknown as PublicClient;
  }

  /** Mines `hash` in `block` at nonce count `nonce + 1` for its signer; `logs` for the receipt. */
  mine(hash: Hex, block: bigint, from: Address, nonce: number, status: "0x1" | "0x0" = "0x1"): Receipt {
    const receipt = {
      transactionHash: hash,
      blockNumber: toHex(block),
      blockHash: keccak256(toHex(block)),
      transactionIndex: "0x0",
      from,
      to: EXCHANGE,
      status,
      gasUsed: toHex(50_000n),
      effectiveGasPrice: toHex(1_000_000_000n),
      cumulativeGasUsed: toHex(50_000n),
      logs: [],
      logsBloom: `0x${"00".repeat(256)}`,
      type: "0x2",
      contractAddress: null,
    };
    this.receipts.set(hash, receipt);
    this.blockReceipts.set(block, [...(this.blockReceipts.get(block) ?? []), receipt]);
    this.pool.delete(hash);
    const key = from.toLowerCase();
    this.nonces.set(key, Math.max(this.nonces.get(key) ?? 0, nonce + 1));
    return receipt;
  }

  /** A reorganisation removed `hash`'s block: its receipt is gone and the nonce count falls back. */
  unmine(hash: Hex, from: Address, nonce: number): void {
    const r = this.receipts.get(hash);
    this.receipts.delete(hash);
    if (r) {
      const block = BigInt(r.blockNumber as Hex);
      this.blockReceipts.set(
        block,
        (this.blockReceipts.get(block) ?? []).filter((x) => x.transactionHash !== hash),
      );
    }
    this.nonces.set(from.toLowerCase(), nonce);
  }
}

/** A protocol whose calls spell their targets; `outcomes` maps a receipt to what it did (default: nothing known). */
export function fakeProtocol(outcomes: () => Map<string, TargetOutcome> = () => new Map()): LiquidationProtocol {
  return {
    address: EXCHANGE,
    encodeSingle: (t: { key: string }) => toHex(`single:${t.key}`),
    encodeBatch: (ts: readonly { key: string }[]) => toHex(`batch:${ts.map((t) => t.key).join(",")}`),
    outcomes,
    revertName: () => undefined,
  } as unknown as LiquidationProtocol;
}

export function position(n: number): TrackedPosition {
  const trader = `0x${n.toString(16).padStart(40, "0")}` as Address;
  return {
    key: `0:${trader.toLowerCase()}`,
    trader,
    marketId: 0,
    size: 1n,
    margin: 1n,
    openNotional: 1n,
    lastFundingIndex: 0n,
  } as unknown as TrackedPosition;
}

export function candidate(p: TrackedPosition, reward = 10n ** 18n): Finding {
  return findingOf({
    position: p,
    health: { marginBalance: 0n, maintenanceRequirement: 1n, liquidatable: true },
    markPrice: 1n,
    fundingIndex: 0n,
    keeperReward: reward,
  });
}

export function tick(blockNumber: bigint): Tick {
  return { blockNumber, timestamp: blockNumber * 12n, baseFeePerGas: 1_000_000_000n, prices: new Map() };
}

export interface Harness {
  readonly executor: Executor;
  readonly node: FakeNode;
  readonly log: ReturnType<typeof memoryLog>;
  readonly lanes: (NonceLane & { fake: FakeJournal })[];
  /** Whether a position is still liquidatable at the head (default: yes). */
  readonly liquidatable: Map<string, boolean | undefined>;
  readonly positions: Map<string, TrackedPosition>;
  readonly replanned: string[][];
}

export function harness(
  options: Partial<ExecutorOptions> & { signers?: ReturnType<typeof fakeSigner>[] } = {},
): Harness {
  const node = new FakeNode();
  const log = memoryLog();
  const signers = options.signers ?? [fakeSigner()];
  const lanes = signers.map((s, i) => lane(i === 0 ? SIGNER_A : SIGNER_B, s));
  const liquidatable = new Map<string, boolean | undefined>();
  const positions = new Map<string, TrackedPosition>();
  const replanned: string[][] = [];
  const executor = new Executor({
    client: node.client,
    protocol: fakeProtocol(),
    lanes,
    log,
    dryRun: false,
    fees: FEE_POLICY,
    tipSource: "fixed",
    tipPercentile: 50,
    minKeeperReward: 0n,
    gasLimitMultiplierPercent: 120n,
    batching: false,
    batchGasLimit: 3_000_000n,
    firstBatchPositions: 2,
    maxConcurrentSimulations: 4,
    maxPendingPerSigner: 16,
    stuckBlocks: 3n,
    minSignerBalance: 0n,
    marketName: () => "ETH-PERP",
    current: (key) => positions.get(key),
    stillLiquidatable: (key) => (liquidatable.has(key) ? liquidatable.get(key) : true),
    replan: (keys) => replanned.push([...keys]),
    ...options,
  });
  return { executor, node, log, lanes, liquidatable, positions, replanned };
}

/** Starts the executor at `block` with nothing journaled. */
export async function started(h: Harness, block = 100n, recovered = new Map<NonceLane, Attempt[]>()): Promise<void> {
  await h.executor.start(recovered, tick(block));
}

/** Resolves once `check` holds (polled), or fails after `ms`. */
export async function until(check: () => boolean, ms = 2_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Lets every queued promise and per-head job run. */
export async function settle(h: Harness): Promise<void> {
  await h.executor.idle(2_000);
}

export function rpcRefusal(message: string): RpcRequestError {
  return new RpcRequestError({ body: {}, error: { code: -32000, message }, url: "http://node" });
}

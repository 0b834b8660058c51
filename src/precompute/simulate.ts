/**
 * Simulates liquidations against the state a pending oracle update will leave (issue 9), in one of two ways:
 *
 * - `simulateV1` (eth_simulateV1): the update transaction itself runs first, from its sender, then our calls, in one
 *   simulated block at the next block's expected timestamp. The most faithful: the aggregator's own code takes the
 *   answer (an OCR report it would refuse fails here), and each call sees the ones before it.
 * - `stateOverride` (eth_call with a state override): for nodes without eth_simulateV1. The aggregator's code is
 *   replaced, for that call only, by PinnedAnswer (contracts/PinnedAnswer.sol), which answers latestRoundData with
 *   the pending answer at the expected timestamp; the call runs on the latest block with that timestamp. The
 *   update's own checks are not run (its answer was validated as the watcher validates an on-chain one).
 *
 * `detect` picks the first a node serves. I/O only: what a result means is the executor's to decide.
 */
import {
  type Address,
  encodeAbiParameters,
  type Hex,
  type Log,
  type PublicClient,
  pad,
  type RpcLog,
  toHex,
} from "viem";
import { pinnedAnswerBytecode } from "../../abi/PinnedAnswer.ts";
import { classifyRpcError, InconsistentAnswerError } from "../chain/errors.ts";
import { KeeperError } from "../errors.ts";
import type { PendingUpdate } from "./pendingUpdates.ts";

export type SimulationMethod = "simulateV1" | "stateOverride";

export interface PendingCall {
  readonly from: Address;
  readonly to: Address;
  readonly data: Hex;
}

export type CallResult =
  | { readonly ok: true; readonly gasUsed: bigint | undefined; readonly logs: readonly Log[] | undefined }
  | { readonly ok: false; readonly revertData: Hex | undefined; readonly error: string };

/** The update itself would fail in the simulated block (eth_simulateV1 only): nothing prepared on it can land. */
export class UpdateWouldFailError extends KeeperError {
  override name = "UpdateWouldFailError";
  /** The simulation's answer, not a failure to get one: asking again gives the same. */
  readonly retryable = false;
  readonly exitCode = 1;
}

type SimulatedCall = {
  status?: unknown;
  returnData?: unknown;
  gasUsed?: unknown;
  logs?: unknown;
  error?: { message?: unknown; data?: unknown } | null;
};

export class PendingSimulator {
  private pinnedCode: Hex | undefined;

  constructor(
    private readonly client: PublicClient,
    readonly method: SimulationMethod,
  ) {}

  /**
   * The method a node serves: eth_simulateV1 if a probe of it answers, else eth_call with a state override (every
   * mainstream node serves it). A transport failure is thrown, never taken for "unsupported".
   */
  static async detect(client: PublicClient, wanted: "auto" | SimulationMethod): Promise<PendingSimulator> {
    if (wanted !== "auto") return new PendingSimulator(client, wanted).ready();
    try {
      const probe = await client.request({
        method: "eth_simulateV1" as never,
        params: [{ blockStateCalls: [{ calls: [] }], validation: false }, "latest"] as never,
      });
      if (Array.isArray(probe)) return new PendingSimulator(client, "simulateV1").ready();
    } catch (error) {
      const kind = classifyRpcError(error);
      if (kind === "timeout" || kind === "unavailable") throw error;
    }
    return new PendingSimulator(client, "stateOverride").ready();
  }

  private async ready(): Promise<this> {
    if (this.method === "stateOverride") {
      // the runtime code is what the creation code returns (no constructor): one eth_call, once
      const { data } = await this.client.call({ data: pinnedAnswerBytecode });
      if (!data || data === "0x") throw new InconsistentAnswerError("the node returned no code for PinnedAnswer");
      this.pinnedCode = data;
    }
    return this;
  }

  /**
   * Our calls, in order, in the block the update will be mined in: after the update, at `timestamp`. One result per
   * call. Throws UpdateWouldFailError when the update itself fails, and the RPC's error when it did not answer.
   */
  async simulate(
    update: PendingUpdate,
    decimals: number,
    timestamp: bigint,
    calls: readonly PendingCall[],
    onBlock?: bigint,
  ): Promise<CallResult[]> {
    const block = onBlock === undefined ? "latest" : toHex(onBlock);
    if (this.method === "simulateV1") return this.simulateV1(update, timestamp, calls, block);
    return Promise.all(calls.map((call) => this.callOverridden(update, decimals, timestamp, call, block)));
  }

  private async simulateV1(
    update: PendingUpdate,
    timestamp: bigint,
    calls: readonly PendingCall[],
    block: Hex | "latest",
  ): Promise<CallResult[]> {
    const first = {
      from: update.from,
      to: update.aggregator,
      data: update.input,
      ...(update.gas === undefined ? {} : { gas: toHex(update.gas) }),
    };
    const answer: unknown = await this.client.request({
      method: "eth_simulateV1" as never,
      params: [
        {
          blockStateCalls: [
            {
              blockOverrides: { time: toHex(timestamp) },
              calls: [first, ...calls.map((c) => ({ from: c.from, to: c.to, data: c.data }))],
            },
          ],
          validation: false,
        },
        block,
      ] as never,
    });
    const results = (answer as { calls?: SimulatedCall[] }[] | null)?.[0]?.calls;
    if (!Array.isArray(results) || results.length !== calls.length + 1) {
      throw new InconsistentAnswerError(
        `eth_simulateV1 answered ${Array.isArray(results) ? results.length : "no"} call results for ${calls.length + 1}`,
      );
    }
    const [updateResult, ...ours] = results as [SimulatedCall, ...SimulatedCall[]];
    if (updateResult.status !== "0x1") {
      throw new UpdateWouldFailError(`the update ${update.txHash} fails in the simulated block`);
    }
    return ours.map((r) => {
      if (r.status === "0x1") {
        return {
          ok: true,
          gasUsed: typeof r.gasUsed === "string" ? BigInt(r.gasUsed) : undefined,
          logs: Array.isArray(r.logs) ? (r.logs as RpcLog[]).map(asLog) : undefined,
        };
      }
      const data = typeof r.error?.data === "string" ? (r.error.data as Hex) : (r.returnData as Hex | undefined);
      return { ok: false, revertData: data, error: String(r.error?.message ?? "reverted") };
    });
  }

  private async callOverridden(
    update: PendingUpdate,
    decimals: number,
    timestamp: bigint,
    call: PendingCall,
    block: Hex | "latest",
  ): Promise<CallResult> {
    const word = (v: bigint, type: "uint256" | "int256" = "uint256") => encodeAbiParameters([{ type }], [v]) as Hex;
    const override = {
      [update.aggregator]: {
        code: this.pinnedCode,
        stateDiff: {
          [pad(toHex(0), { size: 32 })]: word(2n ** 64n),
          [pad(toHex(1), { size: 32 })]: word(update.answer, "int256"),
          [pad(toHex(2), { size: 32 })]: word(timestamp),
          [pad(toHex(3), { size: 32 })]: word(BigInt(decimals)),
        },
      },
    };
    try {
      await this.client.request({
        method: "eth_call" as never,
        params: [
          { from: call.from, to: call.to, data: call.data },
          block,
          override,
          { time: toHex(timestamp) },
        ] as never,
      });
      return { ok: true, gasUsed: undefined, logs: undefined };
    } catch (error) {
      const kind = classifyRpcError(error);
      if (kind === "timeout" || kind === "unavailable") throw error;
      return {
        ok: false,
        revertData: revertDataOf(error),
        error: error instanceof Error ? error.message : String(error),
      };
    }
  }
}

function asLog(raw: RpcLog): Log {
  return {
    address: raw.address,
    topics: raw.topics,
    data: raw.data,
    blockNumber: null,
    blockHash: null,
    logIndex: null,
    transactionHash: null,
    transactionIndex: null,
    removed: false,
  } as unknown as Log;
}

function revertDataOf(error: unknown): Hex | undefined {
  let e: unknown = error;
  for (let i = 0; i < 8 && e; i++) {
    const d = (e as { data?: unknown }).data;
    if (typeof d === "string" && d.startsWith("0x")) return d as Hex;
    if (d && typeof d === "object" && typeof (d as { data?: unknown }).data === "string")
      return (d as { data: Hex }).data;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

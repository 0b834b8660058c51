/**
 * The naive per-block bot of the race benchmark (scripts/bench-race.ts, race vsNaive): what a liquidation bot
 * without a mempool looks like. It knows every open position (the population, as an indexer would), polls the head
 * every `pollMs`, and at each new head:
 * - reads isLiquidatable (the engine's view; false once closed) of every position at that head, in one JSON-RPC
 *   batch, the head's base fee, and eth_maxPriorityFeePerGas, the going tip;
 * - sends one liquidate(trader, marketId) per liquidatable position it has not sent for in the last two blocks, at the
 *   going tip (maxFeePerGas: base fee x 2 + tip), gas limit 300k, its own nonces (a local counter, re-read from the
 *   pending count after a refused send).
 * No simulation, no replacement, no cancel: a lost race reverts on chain (NoPosition) and costs its gas.
 */
import { type Address, encodeFunctionData, type Hex, hexToBigInt } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { httpPublicClient } from "../../src/chain/httpClient.ts";
import type { Slot } from "./benchRaceScenario.ts";
import { now, sleep } from "./tools.ts";

const GAS_LIMIT = 300_000n;
const RESEND_AFTER_BLOCKS = 2n;

export interface NaiveBot {
  readonly address: Address;
  /** Resolves when it stopped (the signal aborted); rejects on nothing: errors are counted. */
  readonly done: Promise<void>;
  /** Heads it has read (block number, performance.now() when seen). */
  readonly heads: { block: bigint; at: number }[];
  readonly stats: { sent: number; refused: number; readErrors: number };
}

export function startNaiveBot(o: {
  readonly rpcUrl: string;
  readonly key: Hex;
  readonly engine: Address;
  readonly slots: readonly Slot[];
  readonly signal: AbortSignal;
  readonly pollMs?: number;
}): NaiveBot {
  const client = httpPublicClient(o.rpcUrl, { batch: { batchSize: 1000 }, timeout: 30_000, retryCount: 0 });
  const account = privateKeyToAccount(o.key);
  const sentAt = new Map<string, bigint>();
  const heads: NaiveBot["heads"] = [];
  const stats = { sent: 0, refused: 0, readErrors: 0 };

  const step = async (head: bigint, chainId: number, nonce: { next: number }) => {
    const slots = o.slots;
    const [says, block, tip] = await Promise.all([
      Promise.all(
        slots.map((s) =>
          client.readContract({
            address: o.engine,
            abi: perpEngineAbi,
            functionName: "isLiquidatable",
            args: [s.trader, BigInt(s.marketId)],
            blockNumber: head,
          }),
        ),
      ),
      client.getBlock({ blockNumber: head }),
      client.request({ method: "eth_maxPriorityFeePerGas" }).then((t) => hexToBigInt(t)),
    ]);
    const maxFeePerGas = (block.baseFeePerGas ?? 0n) * 2n + tip;
    const raws: Hex[] = [];
    for (const [i, s] of slots.entries()) {
      const last = sentAt.get(s.key);
      if (!says[i] || (last !== undefined && head < last + RESEND_AFTER_BLOCKS)) continue;
      sentAt.set(s.key, head);
      raws.push(
        await account.signTransaction({
          chainId,
          type: "eip1559",
          to: o.engine,
          data: encodeFunctionData({
            abi: perpEngineAbi,
            functionName: "liquidate",
            args: [s.trader, BigInt(s.marketId)],
          }),
          gas: GAS_LIMIT,
          nonce: nonce.next++,
          maxFeePerGas,
          maxPriorityFeePerGas: tip,
        }),
      );
    }
    const answers = await Promise.all(
      raws.map((raw) =>
        client.sendRawTransaction({ serializedTransaction: raw }).then(
          () => true,
          () => false,
        ),
      ),
    );
    stats.sent += answers.filter(Boolean).length;
    stats.refused += answers.filter((ok) => !ok).length;
    if (answers.some((ok) => !ok)) {
      nonce.next = await client.getTransactionCount({ address: account.address, blockTag: "pending" });
    }
  };

  const done = (async () => {
    const chainId = await client.getChainId();
    const nonce = { next: await client.getTransactionCount({ address: account.address, blockTag: "pending" }) };
    let seen = await client.getBlockNumber({ cacheTime: 0 });
    heads.push({ block: seen, at: now() });
    while (!o.signal.aborted) {
      const head = await client.getBlockNumber({ cacheTime: 0 }).catch(() => seen);
      if (head <= seen) {
        await sleep(o.pollMs ?? 100);
        continue;
      }
      seen = head;
      heads.push({ block: head, at: now() });
      await step(head, chainId, nonce).catch(() => {
        stats.readErrors++;
      });
    }
  })();
  return { address: account.address, done, heads, stats };
}

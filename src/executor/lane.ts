/**
 * One signer's nonce lane: its local nonce counter, the attempts it has in flight (by nonce), its journal and its
 * balance. Nonces are handed out in order and never twice; a nonce is given back only when it is the highest one
 * handed out and nothing of ours at it reached the node, otherwise it is filled (a cancel) so that no later
 * nonce waits behind a gap. The key itself never reaches this file: signing is the injected `sign` callback.
 */
import { type Address, type Hex, keccak256, type PublicClient, type TransactionSerializableEIP1559 } from "viem";
import type { Attempt } from "./attempt.ts";
import type { Fees } from "./fees.ts";
import type { Journal } from "./journal.ts";

/** Signs an EIP-1559 transaction and returns its serialized bytes (viem's LocalAccount.signTransaction). */
export type SignTransaction = (tx: TransactionSerializableEIP1559) => Promise<Hex>;

export interface UnsignedCall {
  readonly to: Address;
  readonly data: Hex;
  readonly gas: bigint;
  /** Wei sent with it (a pull oracle's update fee); absent: 0. */
  readonly value?: bigint;
}

export class NonceLane {
  /** Next nonce to hand out; undefined until read from the chain. */
  private next: number | undefined;
  /** Unresolved attempts by nonce. */
  readonly live = new Map<number, Attempt>();
  /** Latest balance read, wei. */
  balance: bigint | undefined;
  /** Below the configured floor: no new work until it is funded again. */
  lowBalance = false;
  /** The chain's latest nonce as last read (mined transactions of this key). */
  chainNonce: number | undefined;
  /** Broadcasts under way (the executor's pump). */
  busy = false;

  constructor(
    readonly address: Address,
    private readonly signTx: SignTransaction,
    private readonly chainId: number,
    readonly journal: Journal,
  ) {}

  /** Starts the counter at `nonce` (after reconciling the journal with the chain). */
  init(nonce: number): void {
    this.next = nonce;
  }

  get initialised(): boolean {
    return this.next !== undefined;
  }

  /** The next nonce to use; the caller must get a transaction at it to the node, or give it back. */
  take(): number {
    if (this.next === undefined) throw new Error(`nonce lane ${this.address} used before init`);
    return this.next++;
  }

  /** Gives back a nonce that nothing of ours reached the node with; only the highest one handed out can be. */
  giveBack(nonce: number): boolean {
    if (this.next === undefined || nonce !== this.next - 1 || this.live.has(nonce)) return false;
    this.next = nonce;
    return true;
  }

  /** Moves the counter up to `nonce` if the chain (another process with this key) is past it. */
  catchUp(nonce: number): boolean {
    if (this.next !== undefined && this.next >= nonce) return false;
    this.next = nonce;
    return true;
  }

  get nextNonce(): number | undefined {
    return this.next;
  }

  /** Nonces in [from, next) with no attempt of ours: holes that would hold every later nonce back. */
  gaps(from: number): number[] {
    const holes: number[] = [];
    if (this.next === undefined) return holes;
    const top = Math.max(...this.live.keys(), -1);
    for (let n = from; n < top; n++) if (!this.live.has(n)) holes.push(n);
    return holes;
  }

  async sign(call: UnsignedCall, nonce: number, fees: Fees): Promise<{ raw: Hex; hash: Hex }> {
    const raw = await this.signTx({
      type: "eip1559",
      chainId: this.chainId,
      nonce,
      to: call.to,
      data: call.data,
      gas: call.gas,
      value: call.value ?? 0n,
      maxFeePerGas: fees.maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
    });
    return { raw, hash: keccak256(raw) };
  }

  /**
   * Signs a throwaway transaction (never sent): the first signature of a process pays for the curve's precomputed
   * tables (~20 ms), which must not land on the first liquidation of a crash.
   */
  async warmUp(): Promise<void> {
    await this.sign({ to: this.address, data: "0x", gas: 21_000n }, 0, { maxFeePerGas: 1n, maxPriorityFeePerGas: 1n });
  }

  /** Reads the chain's nonces of this key: latest (mined) and pending (with the pool). */
  static async chainNonces(client: PublicClient, address: Address): Promise<{ latest: number; pending: number }> {
    const [latest, pending] = await Promise.all([
      client.getTransactionCount({ address, blockTag: "latest" }),
      client.getTransactionCount({ address, blockTag: "pending" }),
    ]);
    return { latest, pending };
  }
}

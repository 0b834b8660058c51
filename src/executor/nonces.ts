import type { Address, PublicClient } from "viem";

/**
 * Hands out the signer's nonces locally, one after another, so that concurrent liquidations never reuse or skip
 * one. It starts from the chain's pending count and is re-read when a send failed before it was broadcast.
 */
export class NonceAllocator {
  private next: number | undefined;

  constructor(
    private readonly client: PublicClient,
    private readonly address: Address,
  ) {}

  /** The next nonce to use; the caller must either broadcast with it or call resync(). */
  async take(): Promise<number> {
    if (this.next === undefined) {
      this.next = await this.client.getTransactionCount({ address: this.address, blockTag: "pending" });
    }
    return this.next++;
  }

  /** Forgets the local count: the next take() reads the chain again. */
  resync(): void {
    this.next = undefined;
  }
}

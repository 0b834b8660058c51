/**
 * Transactions on the Perp v2 devnet: each with an explicit gas limit (the node's estimates are unreliable for Perp:
 * funding settlement, `try cacheTwap` and the 63/64 rule make them come out short), a local nonce per account so
 * that many can be in flight at once (a deploy fills a few blocks under `--block-time 1` instead of waiting a block
 * per transaction), and a receipt check that names the step that failed and why.
 */
import {
  type Abi,
  type Account,
  type Address,
  type Chain,
  type ContractFunctionArgs,
  type ContractFunctionName,
  decodeErrorResult,
  encodeFunctionData,
  type Hex,
  type PublicClient,
  type TransactionReceipt,
  type Transport,
  type WalletClient,
} from "viem";

export type Wallet = WalletClient<Transport, Chain, Account>;

/** A transaction sent and not yet checked. */
export interface PendingTx {
  readonly step: string;
  readonly hash: Hex;
  readonly from: Address;
  readonly gas: bigint;
}

/** What one confirmed step cost. */
export interface StepRecord {
  readonly step: string;
  readonly hash: Hex;
  readonly blockNumber: bigint;
  readonly gasUsed: bigint;
  readonly gasLimit: bigint;
}

export interface TxRequest {
  readonly to?: Address;
  readonly data: Hex;
  readonly gas: bigint;
  readonly value?: bigint;
}

export interface ContractTx<abi extends Abi, name extends ContractFunctionName<abi, "nonpayable" | "payable">> {
  readonly address: Address;
  readonly abi: abi;
  readonly functionName: name;
  readonly args: ContractFunctionArgs<abi, "nonpayable" | "payable", name>;
  readonly gas: bigint;
}

export interface TxSenderOptions {
  /** How long a transaction may stay without a receipt (default 60 s). */
  readonly receiptTimeoutMs?: number;
  /** Fee cap of every transaction (default 100 gwei: far above a dev chain's base fee, far below a dev account's ETH). */
  readonly maxFeePerGas?: bigint;
  /** Called with each confirmed step (gas reports). */
  readonly onStep?: (record: StepRecord) => void;
}

const ERROR_STRING_ABI = [
  { type: "error", name: "Error", inputs: [{ name: "message", type: "string" }] },
  { type: "error", name: "Panic", inputs: [{ name: "code", type: "uint256" }] },
] as const;

/** Sends transactions from any number of dev accounts with local nonces, and checks their receipts. */
export class TxSender {
  private readonly nonces = new Map<Address, number>();
  /** Sends one at a time, in call order: nonces go out in order, and the in-flight gas is counted exactly. */
  private gate: Promise<unknown> = Promise.resolve();
  /** Sent and not yet seen mined. */
  private inflight: PendingTx[] = [];
  private inflightGas = 0n;
  private blockGasLimit: bigint | undefined;
  private readonly receiptTimeoutMs: number;
  private readonly maxFeePerGas: bigint;

  constructor(
    readonly publicClient: PublicClient<Transport, Chain>,
    private readonly options: TxSenderOptions = {},
  ) {
    this.receiptTimeoutMs = options.receiptTimeoutMs ?? 60_000;
    this.maxFeePerGas = options.maxFeePerGas ?? 100_000_000_000n;
  }

  /** The nonce the next transaction from `address` will take (reads the chain the first time). */
  async nextNonce(address: Address): Promise<number> {
    let nonce = this.nonces.get(address);
    if (nonce === undefined) {
      nonce = await this.publicClient.getTransactionCount({ address, blockTag: "pending" });
      this.nonces.set(address, nonce);
    }
    return nonce;
  }

  /** Forgets an account's local nonce (it is read from the chain again). */
  forget(address?: Address): void {
    if (address) this.nonces.delete(address);
    else this.nonces.clear();
  }

  /** Sends a raw transaction (deploy when `to` is omitted) without waiting for it to be mined. */
  submit(wallet: Wallet, step: string, request: TxRequest): Promise<PendingTx> {
    const sent = this.gate.catch(() => {}).then(() => this.submitNow(wallet, step, request));
    this.gate = sent;
    return sent;
  }

  /** Sends a contract call without waiting for it to be mined. */
  submitCall<const abi extends Abi, name extends ContractFunctionName<abi, "nonpayable" | "payable">>(
    wallet: Wallet,
    step: string,
    call: ContractTx<abi, name>,
  ): Promise<PendingTx> {
    const data = encodeFunctionData({
      abi: call.abi,
      functionName: call.functionName,
      args: call.args,
    } as Parameters<typeof encodeFunctionData>[0]);
    return this.submit(wallet, step, { to: call.address, data, gas: call.gas });
  }

  private async submitNow(wallet: Wallet, step: string, request: TxRequest): Promise<PendingTx> {
    const from = wallet.account.address;
    // Under interval mining Anvil fills a block by gas limit; a transaction that does not fit waits for the next
    // block, but the same account's next one is then tried with a nonce gap, found invalid and DROPPED from the pool
    // (everything after it stays queued forever). So the gas in flight never exceeds one block.
    this.blockGasLimit ??= (await this.publicClient.getBlock({ blockTag: "latest" })).gasLimit;
    if (request.gas > this.blockGasLimit)
      throw new Error(`${step}: gas limit ${request.gas} is above the block gas limit ${this.blockGasLimit}`);
    if (this.inflightGas + request.gas > this.blockGasLimit) await this.drain();
    const nonce = await this.nextNonce(from);
    let hash: Hex;
    try {
      hash = await wallet.sendTransaction({
        account: wallet.account,
        chain: wallet.chain,
        to: request.to ?? null,
        data: request.data,
        gas: request.gas,
        value: request.value ?? 0n,
        nonce,
        maxFeePerGas: this.maxFeePerGas,
        maxPriorityFeePerGas: 1n,
      } as Parameters<Wallet["sendTransaction"]>[0]);
    } catch (error) {
      // the nonce may or may not have reached the node: read it from the chain again
      this.nonces.delete(from);
      throw new Error(`${step}: sending failed: ${firstLine(error)}`);
    }
    this.nonces.set(from, nonce + 1);
    const pending = { step, hash, from, gas: request.gas };
    this.inflight.push(pending);
    this.inflightGas += request.gas;
    return pending;
  }

  /** Waits until everything in flight is mined (whatever its status: confirm() checks that). */
  private async drain(): Promise<void> {
    const waiting = this.inflight;
    this.inflight = [];
    this.inflightGas = 0n;
    await Promise.all(waiting.map((tx) => this.receipt(tx)));
  }

  private receipt(tx: PendingTx): Promise<TransactionReceipt> {
    return this.publicClient
      .waitForTransactionReceipt({ hash: tx.hash, timeout: this.receiptTimeoutMs, pollingInterval: 50 })
      .catch((error: unknown) => {
        throw new Error(`${tx.step}: no receipt for ${tx.hash}: ${firstLine(error)}`);
      });
  }

  /** Waits for the receipts and checks that each succeeded; throws naming the first step that did not. */
  async confirm(pending: PendingTx | readonly PendingTx[]): Promise<TransactionReceipt[]> {
    const list = Array.isArray(pending) ? (pending as readonly PendingTx[]) : [pending as PendingTx];
    const receipts = await Promise.all(list.map((tx) => this.receipt(tx)));
    const done = new Set(list.map((tx) => tx.hash));
    for (const tx of this.inflight) if (done.has(tx.hash)) this.inflightGas -= tx.gas;
    this.inflight = this.inflight.filter((tx) => !done.has(tx.hash));
    for (const [i, receipt] of receipts.entries()) {
      const tx = list[i] as PendingTx;
      if (receipt.status !== "success") {
        this.forget(tx.from);
        throw new Error(
          `${tx.step} reverted (tx ${tx.hash}, block ${receipt.blockNumber}, gas ${receipt.gasUsed} of ${tx.gas}): ${await this.revertReason(tx, receipt)}`,
        );
      }
      this.options.onStep?.({
        step: tx.step,
        hash: tx.hash,
        blockNumber: receipt.blockNumber,
        gasUsed: receipt.gasUsed,
        gasLimit: tx.gas,
      });
    }
    return receipts;
  }

  /** Sends and confirms one transaction. */
  async send(wallet: Wallet, step: string, request: TxRequest): Promise<TransactionReceipt> {
    const [receipt] = await this.confirm(await this.submit(wallet, step, request));
    return receipt as TransactionReceipt;
  }

  /** Sends and confirms one contract call. */
  async call<const abi extends Abi, name extends ContractFunctionName<abi, "nonpayable" | "payable">>(
    wallet: Wallet,
    step: string,
    call: ContractTx<abi, name>,
  ): Promise<TransactionReceipt> {
    const [receipt] = await this.confirm(await this.submitCall(wallet, step, call));
    return receipt as TransactionReceipt;
  }

  /** Why a mined transaction reverted: the trace's revert data decoded (Anvil's callTracer), else a guess. */
  private async revertReason(tx: PendingTx, receipt: TransactionReceipt): Promise<string> {
    const outOfGas = receipt.gasUsed * 100n >= tx.gas * 98n ? " (used ~all its gas: out of gas?)" : "";
    try {
      const trace = (await this.publicClient.request({
        method: "debug_traceTransaction",
        params: [tx.hash, { tracer: "callTracer" }],
      } as never)) as { error?: string; revertReason?: string; output?: Hex };
      return `${describeRevert(trace.output, trace.revertReason ?? trace.error)}${outOfGas}`;
    } catch {
      return `unknown${outOfGas}`;
    }
  }
}

/** A revert's data as text: Error(string) / Panic(uint256) decoded, else the raw data. */
export function describeRevert(data: Hex | undefined, fallback?: string): string {
  if (data && data !== "0x") {
    try {
      const decoded = decodeErrorResult({ abi: ERROR_STRING_ABI, data });
      return decoded.errorName === "Error" ? String(decoded.args[0]) : `panic ${String(decoded.args[0])}`;
    } catch {
      return fallback ? `${fallback} (${data})` : data;
    }
  }
  return fallback ?? "no revert data";
}

function firstLine(error: unknown): string {
  const text =
    error instanceof Error ? ((error as { shortMessage?: string }).shortMessage ?? error.message) : String(error);
  return text.split("\n")[0] ?? text;
}

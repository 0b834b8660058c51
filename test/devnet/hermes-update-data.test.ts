/**
 * The TypeScript encoding of MockPyth update data against MockPyth itself (npm bytecode, deployed on Anvil): the
 * same bytes as its createPriceFeedUpdateData, accepted by updatePriceFeeds and parsePriceFeedUpdates.
 */
import fc from "fast-check";
import { type AbiItem, createWalletClient, type Hex, http, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil as anvilChain } from "viem/chains";
import { formatAbiItem } from "viem/utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpPublicClient } from "../../src/chain/httpClient.ts";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../../src/devnet/anvil.ts";
import {
  decodeMockPythUpdate,
  encodeMockPythUpdate,
  mockPythAbi,
  mockPythArtifact,
} from "../../src/devnet/hermes/updateData.ts";

const FEE = 7n;
const ETH_ID = `0x${"ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace".toLowerCase()}` as Hex;

let anvil: Anvil | undefined;
let pyth: Hex;
let client: PublicClient;
const account = privateKeyToAccount(ANVIL_KEYS[0]);
const wallet = () => createWalletClient({ chain: anvilChain, account, transport: http(anvil?.rpcUrl) });

beforeAll(async () => {
  anvil = await startAnvil();
  client = httpPublicClient(anvil.rpcUrl, {}, { chain: anvilChain });
  const { bytecode } = mockPythArtifact();
  const hash = await wallet().deployContract({ abi: mockPythAbi, bytecode, args: [60n, FEE] });
  const receipt = await client.waitForTransactionReceipt({ hash });
  if (!receipt.contractAddress) throw new Error("MockPyth deploy gave no address");
  pyth = receipt.contractAddress;
});

afterAll(async () => {
  await anvil?.stop();
});

describe("MockPyth update data", () => {
  it("the npm artifact is MockPyth (its ABI has createPriceFeedUpdateData)", () => {
    const { abi, source } = mockPythArtifact();
    expect(source).toMatch(/^@pythnetwork\/pyth-sdk-solidity@/);
    expect(abi.some((i) => i.type === "function" && i.name === "createPriceFeedUpdateData")).toBe(true);
  });

  it("every function, event and error of the hand-written ABI is in the npm artifact, with the same signature", () => {
    const signatures = (items: readonly AbiItem[]) =>
      new Set(items.filter((i) => i.type !== "constructor").map((i) => formatAbiItem(i)));
    const theirs = signatures(mockPythArtifact().abi);
    const missing = [...signatures(mockPythAbi)].filter((s) => !theirs.has(s));
    expect(missing).toEqual([]);
  });

  it("equals MockPyth.createPriceFeedUpdateData for arbitrary values", async () => {
    const int64 = fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n);
    const uint64 = fc.bigInt(0n, 2n ** 64n - 1n);
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        int64,
        uint64,
        fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        int64,
        uint64,
        uint64,
        uint64,
        async (idBytes, price, conf, expo, emaPrice, emaConf, publishTime, prevPublishTime) => {
          const id = `0x${Buffer.from(idBytes).toString("hex")}` as Hex;
          const theirs = await client.readContract({
            address: pyth,
            abi: mockPythAbi,
            functionName: "createPriceFeedUpdateData",
            args: [id, price, conf, expo, emaPrice, emaConf, publishTime, prevPublishTime],
          });
          const update = { id, price, conf, expo, emaPrice, emaConf, publishTime, prevPublishTime };
          const ours = encodeMockPythUpdate(update);
          expect(ours).toBe(theirs);
          expect(decodeMockPythUpdate(ours)).toEqual(update);
        },
      ),
      { numRuns: 25 },
    );
  });

  it("updatePriceFeeds accepts it for getUpdateFee, after which getPriceUnsafe returns the price", async () => {
    const publishTime = BigInt(Math.floor(Date.now() / 1000));
    const data = [
      encodeMockPythUpdate({ id: ETH_ID, price: 312_345_000_000n, conf: 1_500_000n, expo: -8, publishTime }),
    ];
    const fee = await client.readContract({
      address: pyth,
      abi: mockPythAbi,
      functionName: "getUpdateFee",
      args: [data],
    });
    expect(fee).toBe(FEE);
    await expect(
      client.simulateContract({
        address: pyth,
        abi: mockPythAbi,
        functionName: "updatePriceFeeds",
        args: [data],
        account,
      }),
    ).rejects.toThrow(/InsufficientFee/);
    const hash = await wallet().writeContract({
      address: pyth,
      abi: mockPythAbi,
      functionName: "updatePriceFeeds",
      args: [data],
      value: fee,
    });
    expect((await client.waitForTransactionReceipt({ hash })).status).toBe("success");
    const price = await client.readContract({
      address: pyth,
      abi: mockPythAbi,
      functionName: "getPriceUnsafe",
      args: [ETH_ID],
    });
    expect(price).toEqual({ price: 312_345_000_000n, conf: 1_500_000n, expo: -8, publishTime });

    const { result } = await client.simulateContract({
      address: pyth,
      abi: mockPythAbi,
      functionName: "parsePriceFeedUpdates",
      args: [data, [ETH_ID], publishTime - 10n, publishTime + 10n],
      value: fee,
      account,
    });
    expect(result[0]?.id).toBe(ETH_ID);
    expect(result[0]?.price.price).toBe(312_345_000_000n);
  });
});

/**
 * The local Hermes read with the official client (@pythnetwork/hermes-client): the feed list, the latest updates
 * (parsed and binary, in both encodings) whose bytes MockPyth on Anvil accepts, and the server-sent-event stream.
 */
import { HermesClient } from "@pythnetwork/hermes-client";
import { schemas } from "@pythnetwork/hermes-client/zodSchemas";
import { createWalletClient, type Hex, http, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil as anvilChain } from "viem/chains";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { httpPublicClient } from "../../src/chain/httpClient.ts";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../../src/devnet/anvil.ts";
import { type LocalHermes, startHermes } from "../../src/devnet/hermes/server.ts";
import { decodeMockPythUpdate, mockPythAbi, mockPythArtifact } from "../../src/devnet/hermes/updateData.ts";

const ETH_ID = "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace";
const BTC_ID = "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43";
const FEE = 11n;

let hermes: LocalHermes | undefined;
let client: HermesClient;

beforeEach(async () => {
  hermes = await startHermes({
    feeds: [
      { id: `0x${ETH_ID}`, symbol: "ETH/USD", price: 300_000_000_000n, expo: -8, conf: 1_000_000n },
      { id: BTC_ID, symbol: "Crypto.BTC/USD", price: 9_000_000_000_000n, expo: -8, conf: 5_000_000n },
    ],
  });
  client = new HermesClient(hermes.url, { timeout: 2000, httpRetries: 0 });
});

afterEach(async () => {
  await hermes?.close();
  hermes = undefined;
});

describe("local Hermes with HermesClient", () => {
  it("getPriceFeeds lists the feeds with attributes, filtered by query and asset type", async () => {
    const feeds = await client.getPriceFeeds();
    expect(feeds.map((f) => f.id)).toEqual([ETH_ID, BTC_ID]);
    expect(feeds[0]?.attributes).toMatchObject({ symbol: "Crypto.ETH/USD", base: "ETH", quote_currency: "USD" });
    expect(feeds[1]?.attributes.symbol).toBe("Crypto.BTC/USD");
    expect((await client.getPriceFeeds({ query: "btc" })).map((f) => f.id)).toEqual([BTC_ID]);
    expect(await client.getPriceFeeds({ assetType: "fx" })).toEqual([]);
  });

  it("getLatestPriceUpdates returns parsed prices and MockPyth bytes, hex and base64", async () => {
    const update = await client.getLatestPriceUpdates([`0x${ETH_ID}`, BTC_ID], { parsed: true });
    expect(update.binary.encoding).toBe("hex");
    expect(update.binary.data).toHaveLength(2);
    const eth = hermes?.feed(ETH_ID);
    expect(update.parsed?.[0]).toEqual({
      id: ETH_ID,
      price: { price: "300000000000", conf: "1000000", expo: -8, publish_time: Number(eth?.publishTime) },
      ema_price: { price: "300000000000", conf: "1000000", expo: -8, publish_time: Number(eth?.publishTime) },
      metadata: {
        slot: 0,
        proof_available_time: Number(eth?.publishTime),
        prev_publish_time: Number(eth?.publishTime) - 1,
      },
    });
    const decoded = decodeMockPythUpdate(`0x${update.binary.data[1]}` as Hex);
    expect(decoded).toMatchObject({ id: `0x${BTC_ID}`, price: 9_000_000_000_000n, conf: 5_000_000n, expo: -8 });

    const b64 = await client.getLatestPriceUpdates([ETH_ID], { encoding: "base64", parsed: false });
    expect(b64.parsed).toBeUndefined();
    expect(`0x${Buffer.from(b64.binary.data[0] ?? "", "base64").toString("hex")}`).toBe(
      hermes?.updateData([ETH_ID])[0],
    );
  });

  it("unknown ids are a 404 unless ignored; a malformed id is a 400", async () => {
    const unknown = "11".repeat(32);
    await expect(client.getLatestPriceUpdates([unknown])).rejects.toThrow(/404/);
    const ignored = await client.getLatestPriceUpdates([unknown, ETH_ID], { ignoreInvalidPriceIds: true });
    expect(ignored.parsed?.map((p) => p.id)).toEqual([ETH_ID]);
    await expect(client.getLatestPriceUpdates(["0xabc"])).rejects.toThrow(/400/);
  });

  it("getPriceUpdatesStream delivers the current price, then an event after setPrice", async () => {
    const stream = await client.getPriceUpdatesStream([ETH_ID, BTC_ID], { parsed: true });
    try {
      const events: { parsed: { id: string; price: { price: string; publish_time: number } }[] }[] = [];
      let notify = () => {};
      stream.onmessage = (event) => {
        // Each event in the client's own PriceUpdate schema (the one getLatestPriceUpdates validates with).
        schemas.PriceUpdate.parse(JSON.parse(String(event.data)));
        events.push(JSON.parse(String(event.data)));
        notify();
      };
      const next = async (count: number) => {
        const timeout = Date.now() + 5000;
        while (events.length < count) {
          if (Date.now() > timeout) throw new Error(`waited for ${count} events, got ${events.length}`);
          await new Promise<void>((resolve) => {
            notify = resolve;
            setTimeout(resolve, 100);
          });
        }
      };
      await next(1);
      expect(events[0]?.parsed.map((p) => p.id)).toEqual([ETH_ID, BTC_ID]);

      const before = hermes?.feed(ETH_ID).publishTime ?? 0n;
      const moved = hermes?.setPrice(ETH_ID, 270_000_000_000n);
      await next(2);
      expect(events[1]?.parsed).toHaveLength(1);
      expect(events[1]?.parsed[0]?.price.price).toBe("270000000000");
      expect(BigInt(events[1]?.parsed[0]?.price.publish_time ?? 0)).toBeGreaterThan(before);
      expect(moved?.prevPublishTime).toBe(before);
      expect(hermes?.streams).toBe(1);
    } finally {
      stream.close();
    }
    const until = Date.now() + 2000;
    while ((hermes?.streams ?? 0) > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(hermes?.streams).toBe(0);
  });

  it("close() ends open streams and stops the server", async () => {
    const stream = await client.getPriceUpdatesStream([ETH_ID]);
    try {
      const opened = new Promise<void>((resolve) => {
        stream.onmessage = () => resolve();
      });
      await opened;
      await hermes?.close();
      await expect(client.getPriceFeeds()).rejects.toThrow();
    } finally {
      stream.close();
    }
  });
});

describe("local Hermes bytes on MockPyth", () => {
  let anvil: Anvil | undefined;
  let chain: PublicClient;
  let pyth: Hex;
  const account = privateKeyToAccount(ANVIL_KEYS[0]);
  const wallet = () => createWalletClient({ chain: anvilChain, account, transport: http(anvil?.rpcUrl) });

  beforeAll(async () => {
    anvil = await startAnvil();
    chain = httpPublicClient(anvil.rpcUrl, {}, { chain: anvilChain });
    const hash = await wallet().deployContract({
      abi: mockPythAbi,
      bytecode: mockPythArtifact().bytecode,
      args: [60n, FEE],
    });
    const receipt = await chain.waitForTransactionReceipt({ hash });
    if (!receipt.contractAddress) throw new Error("MockPyth deploy gave no address");
    pyth = receipt.contractAddress;
  });

  afterAll(async () => {
    await anvil?.stop();
  });

  it("updatePriceFeeds accepts the latest update's bytes, paying getUpdateFee; getPriceUnsafe returns the price", async () => {
    const push = async (data: Hex[]) => {
      const value = await chain.readContract({
        address: pyth,
        abi: mockPythAbi,
        functionName: "getUpdateFee",
        args: [data],
      });
      expect(value).toBe(FEE * BigInt(data.length));
      const hash = await wallet().writeContract({
        address: pyth,
        abi: mockPythAbi,
        functionName: "updatePriceFeeds",
        args: [data],
        value,
      });
      expect((await chain.waitForTransactionReceipt({ hash })).status).toBe("success");
    };
    const read = (id: string) =>
      chain.readContract({ address: pyth, abi: mockPythAbi, functionName: "getPriceUnsafe", args: [`0x${id}`] });

    const first = await client.getLatestPriceUpdates([ETH_ID, BTC_ID]);
    await push(first.binary.data.map((d) => `0x${d}` as Hex));
    expect((await read(BTC_ID)).price).toBe(9_000_000_000_000n);

    // Two moves within one second still land: each publish time is after the last.
    hermes?.setPrice(ETH_ID, 250_000_000_000n);
    hermes?.setPrice(ETH_ID, 240_000_000_000n);
    const second = await client.getLatestPriceUpdates([ETH_ID]);
    await push(second.binary.data.map((d) => `0x${d}` as Hex));
    const price = await read(ETH_ID);
    expect(price.price).toBe(240_000_000_000n);
    expect(price.publishTime).toBe(hermes?.feed(ETH_ID).publishTime);
  });
});

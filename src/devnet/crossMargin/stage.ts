/**
 * The cross-margin devnet's stage: the exchange deployed (deploy.ts) with a local Hermes serving its feeds, which
 * publishes every feed again each `heartbeatMs` as Pythnet does (a new publish time at the same price: a pull
 * oracle's price is only as fresh as its last message), and price moves through Hermes. What the demo, the devnet,
 * the benchmark and the tests share.
 */
import { type Hex, type PublicClient, parseUnits } from "viem";
import { iCrossMarginEngineAbi } from "../../../abi/ICrossMarginEngine.ts";
import { accountHealth, type PositionAt, pythPriceToWad } from "../../protocol/crossMargin/math.ts";
import { type HermesFeedState, type LocalHermes, startHermes } from "../hermes/server.ts";
import { type CrossMarginDeployment, type CrossMarginDeployOptions, deployCrossMargin } from "./deploy.ts";

export interface CrossMarginStage {
  readonly deployment: CrossMarginDeployment;
  readonly hermes: LocalHermes;
  /** Moves prices (by market name, decimal USD) on Hermes: one event, as one Pythnet slot. */
  move(prices: Readonly<Record<string, string>>): HermesFeedState[];
  /** The current Hermes price of a market, WAD. */
  priceOf(name: string): bigint;
  /** Stops the heartbeat and Hermes (the chain is the caller's). */
  close(): Promise<void>;
}

export interface StageOptions extends CrossMarginDeployOptions {
  /** Every feed published again this often, ms (default 1000; 0: never). */
  readonly heartbeatMs?: number;
  /** Hermes' loopback port (default: a free one). */
  readonly hermesPort?: number;
}

export async function stageCrossMargin(rpcUrl: string, options: StageOptions = {}): Promise<CrossMarginStage> {
  const deployment = await deployCrossMargin(rpcUrl, options);
  const hermes = await startHermes({
    feeds: deployment.markets.map((m) => ({
      id: m.feedId,
      symbol: `${m.name}/USD`,
      price: m.initialPrice,
      expo: m.expo,
      conf: 0n,
    })),
    ...(options.hermesPort === undefined ? {} : { port: options.hermesPort }),
  });
  const market = (name: string) => {
    const m = deployment.markets.find((x) => x.name === name);
    if (!m) throw new Error(`no market ${name} on the cross-margin devnet`);
    return m;
  };
  const beat = options.heartbeatMs ?? 1000;
  const timer =
    beat > 0
      ? setInterval(() => {
          // a feed is published again once the clock has passed its last publish time: a move made in the same
          // second got the next second (MockPyth keeps only newer prices), and a heartbeat on top of it would push
          // publish times ahead of the clock, where the exchange refuses them
          const now = BigInt(Math.floor(Date.now() / 1000));
          const due = deployment.markets.filter((m) => hermes.feed(m.feedId).publishTime < now);
          if (due.length > 0) {
            hermes.setPrices(due.map((m) => ({ id: m.feedId, price: hermes.feed(m.feedId).price, publishTime: now })));
          }
        }, beat)
      : undefined;
  timer?.unref();
  return {
    deployment,
    hermes,
    move(prices) {
      return hermes.setPrices(
        Object.entries(prices).map(([name, price]) => {
          const m = market(name);
          return { id: m.feedId, price: parseUnits(price, -m.expo) };
        }),
      );
    },
    priceOf(name) {
      const m = market(name);
      const state = hermes.feed(m.feedId);
      return pythPriceToWad(state.price, state.expo) ?? 0n;
    },
    async close() {
      if (timer) clearInterval(timer);
      await hermes.close();
    },
  };
}

/** A keeper config for the devnet's exchange, with `hermesUrl` as its price service. */
export function crossMarginKeeperConfig(
  d: CrossMarginDeployment,
  rpcUrl: string,
  hermesUrls: readonly string[],
  keeper: Record<string, unknown> = { pollIntervalMs: 250 },
  exchange: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    network: { name: "devnet-cross-margin", chainId: d.chainId, rpcUrl },
    exchange: {
      adapter: "cross-margin",
      address: d.engine,
      deployBlock: Number(d.deployBlock),
      hermes: { endpoints: [...hermesUrls] },
      ...exchange,
    },
    keeper,
  };
}

/**
 * The accounts the exchange would find liquidatable at `prices` (by market name, WAD), by its own rules on its own
 * state read at `blockNumber`: what a crash should have the keeper flag.
 */
export async function liquidatableAt(
  client: PublicClient,
  d: CrossMarginDeployment,
  accountIds: readonly bigint[],
  prices: Readonly<Record<string, bigint>>,
  blockNumber?: bigint,
): Promise<bigint[]> {
  const out: bigint[] = [];
  const at = blockNumber ?? (await client.getBlockNumber({ cacheTime: 0 }));
  for (const id of accountIds) {
    const read = (functionName: "getCollateral" | "isFlagged") =>
      client.readContract({ address: d.engine, abi: iCrossMarginEngineAbi, functionName, args: [id], blockNumber: at });
    if ((await read("isFlagged")) === true) continue;
    const collateral = (await read("getCollateral")) as bigint;
    const positions: PositionAt[] = [];
    for (const m of d.markets) {
      const [size, entryPrice] = await client.readContract({
        address: d.engine,
        abi: iCrossMarginEngineAbi,
        functionName: "getOpenPosition",
        args: [id, m.marketId],
        blockNumber: at,
      });
      const price = prices[m.name];
      if (size !== 0n && price !== undefined) positions.push({ config: m.config, size, entryPrice, price });
    }
    if (accountHealth(d.global, collateral, positions).liquidatable) out.push(id);
  }
  return out;
}

/** Feed ids of the deployment, for the keeper's stream. */
export function feedsOf(d: CrossMarginDeployment): Hex[] {
  return d.markets.map((m) => m.feedId);
}

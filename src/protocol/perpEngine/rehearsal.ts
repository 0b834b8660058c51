/**
 * PerpEngine in a rehearsal (`perp-keeper rehearse`, src/ops/rehearse.ts): its markets' Chainlink feeds (what a shock
 * moves), and its keeper (src/app.ts) started on the fork with the counts the report gives: positions liquidatable at
 * the first head after the shock, the keeper rewards the chain's events credit to our signer, positions still open and
 * still liquidatable at the end.
 */
import { type Address, type Hex, hexToString, type PublicClient } from "viem";
import { perpEngineAbi } from "../../../abi/PerpEngine.ts";
import { startKeeper } from "../../app.ts";
import type { RehearsalExchange, RehearsedKeeper } from "../../ops/rehearse.ts";
import type { Tick } from "../../watcher/watcher.ts";

/** Market name to its oracle, as the exchange lists them. */
async function oracles(client: PublicClient, engine: Address): Promise<Map<string, Address>> {
  const count = await client.readContract({ address: engine, abi: perpEngineAbi, functionName: "marketCount" });
  const markets = new Map<string, Address>();
  for (let id = 0n; id < count; id++) {
    const m = (await client.readContract({
      address: engine,
      abi: perpEngineAbi,
      functionName: "market",
      args: [id],
    })) as unknown as { name: Hex; oracle: Address };
    markets.set(hexToString(m.name, { size: 32 }).replace(/\0+$/, ""), m.oracle);
  }
  return markets;
}

export const perpEngineRehearsal: RehearsalExchange = {
  oracles,
  async start({ keeperAddress, ...options }): Promise<RehearsedKeeper> {
    const keeper = await startKeeper(options);
    let liquidatableAfterShock: number | undefined;
    const handleTick = keeper.keeper.handleTick.bind(keeper.keeper);
    keeper.keeper.handleTick = (tick: Tick) => {
      handleTick(tick);
      // after the keeper's own pass (which brings its index up to date): nothing of it is mined yet
      if (liquidatableAfterShock === undefined) {
        liquidatableAfterShock = [...tick.prices].reduce(
          (n, [market, price]) => n + keeper.risk.liquidatable(market, price, tick.timestamp).length,
          0,
        );
      }
    };
    // the rewards of our liquidations, exact (WAD collateral), as the chain's events carry them
    let rewardsWad = 0n;
    const handleEvent = keeper.keeper.handleEvent.bind(keeper.keeper);
    keeper.keeper.handleEvent = (event, live) => {
      if (event.kind === "positionLiquidated" && event.keeper.toLowerCase() === keeperAddress.toLowerCase()) {
        rewardsWad += event.keeperReward;
      }
      return handleEvent(event, live);
    };
    return {
      executor: keeper.executor,
      done: keeper.done,
      stop: (reason) => keeper.stop(reason),
      liquidatableAfterShock: () => liquidatableAfterShock,
      rewardsWad: () => rewardsWad,
      openPositions: () => keeper.book.positions.size,
      stillLiquidatable() {
        const tick = keeper.watcher.latestTick;
        let n = 0;
        for (const p of keeper.book.positions.values()) {
          const price = tick?.prices.get(p.marketId);
          if (tick && price !== undefined && keeper.risk.isLiquidatable(p, price, tick.timestamp)) n++;
        }
        return n;
      },
    };
  },
};

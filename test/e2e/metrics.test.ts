/**
 * The operations endpoint of a real keeper on a devnet: /metrics in Prometheus text with the keeper's figures,
 * /readyz after the backfill, /healthz passing on a quiet chain whose head the keeper processed, the heartbeat
 * line, and no key anywhere in what is served.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;
const specs = ethLongs(3);

beforeAll(async () => {
  net = await startDevnet({ accounts: 6 });
  await openPositions(net.ex, specs);
  ({ keeper, logs } = await startTestKeeper(net, {
    pollIntervalMs: 50,
    metricsPort: 0,
    healthMaxHeadAgeSeconds: 1,
    heartbeatSeconds: 1,
    snapshotIntervalSeconds: 0,
  }));
}, 60_000);

afterAll(async () => {
  await shutdown(keeper, net);
});

/** Samples of a Prometheus text exposition: `name{labels}` -> value. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    samples.set(m[1] as string, Number(m[2]));
  }
  return samples;
}

async function get(path: string): Promise<{ status: number; text: string; type: string | null }> {
  const res = await fetch(`${keeper?.metricsUrl}${path}`);
  return { status: res.status, text: await res.text(), type: res.headers.get("content-type") };
}

const mine = () => net.ex.publicClient.request({ method: "evm_mine" as never, params: [] as never });

describe("the operations endpoint", () => {
  it("listens on loopback on a free port", () => {
    expect(keeper?.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(keeper?.metricsUrl).not.toMatch(/:9464$/);
    expect(logs.events("metrics_server_started")[0]?.url).toBe(keeper?.metricsUrl);
  });

  it("is ready once the backfill completed", async () => {
    await until("backfill_completed", () => logs.events("backfill_completed").length === 1, 15_000);
    await until("/readyz 200", async () => (await get("/readyz")).status === 200, 5_000);
    expect(JSON.parse((await get("/readyz")).text).status).toBe("ready");
  });

  it("serves the keeper's metrics, parseable, with the book's and the watcher's figures", async () => {
    const k = keeper as RunningKeeper;
    await until("a tick", () => k.watcher.latestTick !== undefined, 10_000);
    const res = await get("/metrics");
    expect(res.status).toBe(200);
    expect(res.type).toContain("text/plain");
    const m = parse(res.text);
    const signer = k.addresses[0] as string;
    expect(m.get('perp_keeper_positions_tracked{market="ETH-USD"}')).toBe(specs.length);
    const tracked = [...m].filter(([n]) => n.startsWith("perp_keeper_positions_tracked{")).map(([, v]) => v);
    expect(tracked.reduce((a, b) => a + b, 0)).toBe(k.book.positions.size);
    const atRisk = m.get('perp_keeper_positions_at_risk{market="ETH-USD"}') as number;
    // 20x longs at 2500 go liquidatable near 2448, about 2% away: inside the 5% atRiskDistance, every one of them
    expect(atRisk).toBe(specs.length);
    expect(m.get("perp_keeper_head_block")).toBe(Number(k.watcher.latestTick?.blockNumber));
    expect(m.get("perp_keeper_processed_block")).toBe(Number(k.watcher.processedBlock));
    expect(m.get("perp_keeper_processing_lag_blocks")).toBe(0);
    expect(m.get("perp_keeper_head_age_seconds")).toBeGreaterThanOrEqual(0);
    expect(m.get("perp_keeper_backfill_completed")).toBe(1);
    // at risk but above maintenance: nothing liquidatable is left behind
    expect(m.get('perp_keeper_liquidatable_positions{market="ETH-USD"}')).toBe(0);
    expect(m.get("perp_keeper_liquidatable_oldest_age_seconds")).toBe(0);
    expect(m.get("perp_keeper_liquidatable_oldest_age_blocks")).toBe(0);
    expect(m.get("perp_keeper_backfill_target_block")).toBeLessThanOrEqual(m.get("perp_keeper_head_block") as number);
    expect(m.get(`perp_keeper_pending_transactions{signer="${signer}"}`)).toBe(0);
    expect(m.get(`perp_keeper_signer_balance_wei{signer="${signer}"}`)).toBeGreaterThan(0);
    for (const outcome of ["confirmed", "lost_to_competitor", "reverted", "cancelled", "skipped", "failed"]) {
      expect(m.get(`perp_keeper_liquidations_total{outcome="${outcome}"}`)).toBe(0);
    }
    expect(m.get('perp_keeper_transactions_total{kind="sent"}')).toBe(0);
    expect(m.get("perp_keeper_gas_spent_wei_total")).toBe(0);
    expect(m.get("perp_keeper_rewards_collateral_total")).toBe(0);
    // each market's oracle answer age at the last head: head timestamp - the answer's updatedAt
    const tick = k.watcher.latestTick;
    for (const market of k.book.markets.values()) {
      const age = m.get(`perp_keeper_oracle_answer_age_seconds{market="${market.name}"}`);
      const updatedAt = tick?.oracleUpdatedAt?.get(market.id);
      expect(updatedAt, market.name).toBeDefined();
      expect(age, market.name).toBe(Number((tick?.timestamp ?? 0n) - (updatedAt ?? 0n)));
    }
    // the keeper's JSON-RPC traffic, per endpoint (redacted) and method
    const endpoint = new URL(net.anvil.rpcUrl).origin;
    expect(m.get(`perp_keeper_rpc_requests_total{endpoint="${endpoint}",method="eth_getLogs"}`)).toBeGreaterThan(0);
    expect(m.get(`perp_keeper_rpc_requests_total{endpoint="${endpoint}",method="eth_chainId"}`)).toBeGreaterThan(0);
    // the default process metrics, on the keeper's own registry
    expect(m.get("perp_keeper_process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(m.get("perp_keeper_nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
  });

  it("never serves a private key", async () => {
    const served = [(await get("/metrics")).text, (await get("/healthz")).text, (await get("/readyz")).text]
      .join("\n")
      .toLowerCase();
    const key = ANVIL_KEYS[1].toLowerCase();
    expect(served).not.toContain(key);
    expect(served).not.toContain(key.slice(2));
  });

  it("stays healthy on a quiet chain whose head the keeper has processed (chain_quiet), and after a block", async () => {
    // automine with no transactions: the chain does not move; the endpoint reports the head the keeper processed
    await until("chain_quiet", () => logs.events("chain_quiet").length > 0, 10_000);
    // past healthMaxHeadAgeSeconds (1 s) since the last head: the old rule said 503 here
    let quiet = { headAgeSeconds: 0, processedBlock: "0", reportedHead: "" };
    await until("the head older than the limit", async () => {
      quiet = JSON.parse((await get("/healthz")).text);
      return quiet.headAgeSeconds >= 1;
    });
    expect(quiet).toMatchObject({ status: "ok", reasons: [], chain: "quiet" });
    expect(quiet.reportedHead).toBe(quiet.processedBlock);
    const m = parse((await get("/metrics")).text);
    expect(m.get("perp_keeper_head_behind")).toBe(0);
    expect(m.get("perp_keeper_endpoint_head_block")).toBe(Number(quiet.processedBlock));
    expect(logs.events("keeper_behind")).toHaveLength(0);
    await mine();
    const after = BigInt(quiet.processedBlock) + 1n;
    await until("the mined block processed", () => (keeper as RunningKeeper).watcher.processedBlock >= after, 5_000);
    expect(JSON.parse((await get("/healthz")).text)).toMatchObject({ status: "ok", reasons: [] });
  });

  it("logs a heartbeat with where the keeper is", async () => {
    await until("keeper_heartbeat", () => logs.events("keeper_heartbeat").length > 0, 5_000);
    const beat = logs.events("keeper_heartbeat").at(-1) as Record<string, unknown>;
    expect(beat).toMatchObject({ level: 30, positions: specs.length, pendingTransactions: 0 });
    expect(Number(beat.head)).toBeGreaterThan(0);
    expect(beat.lagBlocks).toBe("0");
    const balances = beat.signerBalances as Record<string, string>;
    expect(BigInt(balances[keeper?.addresses[0] as string] as string)).toBeGreaterThan(0n);
  });

  it("stops serving when the keeper stops", async () => {
    const url = keeper?.metricsUrl;
    await keeper?.stop("test finished");
    expect(logs.lines.map((l) => l.event).at(-1)).toBe("keeper_stopped");
    await expect(fetch(`${url}/metrics`)).rejects.toThrow();
  });
});

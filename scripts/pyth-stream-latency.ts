/**
 * How long a Pyth price move takes from the local Hermes server to the keeper's listener: setPrice on a local Hermes
 * (src/devnet/hermes/server.ts) to PythPriceStream's onUpdate call with that price, over the real HermesClient's
 * server-sent events on loopback, one move at a time (each waited for before the next).
 *
 *   node --import tsx scripts/pyth-stream-latency.ts [--moves 200] [--feeds 2] [--json]
 *
 * Prints p50, p90, p99 and max in milliseconds (and, with --json, one JSON object as the last line). Server and
 * stream share this process: the figure is the client's path (socket read, SSE parsing, JSON, the strict parse,
 * the listener) plus the server's write, without a network.
 */
import { parseArgs } from "node:util";
import type { Hex } from "viem";
import { startHermes } from "../src/devnet/hermes/server.ts";
import { createLogger } from "../src/ops/logger.ts";
import { PythPriceStream } from "../src/prices/pyth/hermesStream.ts";

const { values } = parseArgs({
  options: {
    moves: { type: "string", default: "200" },
    feeds: { type: "string", default: "2" },
    json: { type: "boolean" },
  },
});
const moves = Number(values.moves);
const feedCount = Number(values.feeds);
const ids = Array.from({ length: feedCount }, (_, i) => `0x${(i + 1).toString(16).padStart(64, "a")}` as Hex);

const hermes = await startHermes({
  feeds: ids.map((id, i) => ({ id, symbol: `F${i}/USD`, price: 100_000_000n, expo: -8, conf: 1_000n })),
});
const stream = new PythPriceStream({
  endpoints: [hermes.url],
  feeds: ids,
  log: createLogger({ level: "warn", stderr: true }),
  staleAfterMs: 60_000,
});
try {
  await stream.start();
  const target = ids[0] as Hex;
  let waiting: { price: bigint; resolve: (at: number) => void } | undefined;
  stream.onUpdate((moved) => {
    const at = performance.now();
    if (waiting && moved.some((m) => m.feed === target && m.price === waiting?.price)) waiting.resolve(at);
  });
  // the stream is open once a move arrives: one untimed move first
  const samples: number[] = [];
  for (let i = 0; i <= moves; i++) {
    const price = 100_000_000n + BigInt(i + 1);
    const arrived = new Promise<number>((resolve) => {
      waiting = { price, resolve };
    });
    const sent = performance.now();
    hermes.setPrice(target, price);
    const at = await Promise.race([
      arrived,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`move ${i} never arrived`)), 10_000)),
    ]);
    if (i > 0) samples.push(at - sent);
  }
  samples.sort((a, b) => a - b);
  const q = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] as number;
  const result = {
    moves: samples.length,
    feeds: feedCount,
    p50Ms: +q(0.5).toFixed(3),
    p90Ms: +q(0.9).toFixed(3),
    p99Ms: +q(0.99).toFixed(3),
    maxMs: +(samples.at(-1) as number).toFixed(3),
  };
  console.log(
    `setPrice -> onUpdate over ${result.moves} moves (${feedCount} feeds followed): p50 ${result.p50Ms} ms, ` +
      `p90 ${result.p90Ms} ms, p99 ${result.p99Ms} ms, max ${result.maxMs} ms`,
  );
  if (values.json) console.log(JSON.stringify(result));
} finally {
  stream.close();
  await hermes.close();
}

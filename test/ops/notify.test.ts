/** The webhook notifier against a local HTTP server: delivery, retry, rate limit, presets, and no secret in a body. */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { keeperConfigSchema } from "../../src/config/schema.ts";
import { Notifier, type NotifyConfig } from "../../src/ops/notify.ts";
import { captureLogs } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

const KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcaa1d7f2ff80b0f3a"; // a private key that must never leave
const TOKEN = "123456:AAH-secret-bot-token";

interface Received {
  readonly url: string;
  readonly body: string;
}

let server: Server | undefined;
afterEach(() => server?.close());

/** A server answering each request with the next status of `statuses` (then 200). */
async function serve(statuses: number[] = []): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  server = createServer((req: IncomingMessage, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ url: req.url ?? "", body });
      res.writeHead(statuses.shift() ?? 200).end("ok");
    });
  });
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

function config(o: Partial<NotifyConfig>): NotifyConfig {
  return {
    preset: "json",
    telegramApiUrl: "https://api.telegram.org",
    events: ["liquidation_confirmed", "liquidation_failed", "signer_low", "left_behind", "keeper_stopping"],
    maxPerMinute: 20,
    retries: 3,
    timeoutMs: 2_000,
    retryBaseMs: 10,
    ...o,
  };
}

describe("Notifier", () => {
  it("delivers the events asked for from the log's lines, as JSON, without holding up the log call", async () => {
    const { url, received } = await serve();
    const logs = captureLogs();
    const n = new Notifier(
      config({ url: `${url}/hook`, events: ["liquidation_confirmed", "keeper_stopping"] }),
      logs.log,
      "devnet",
      {},
    );
    n.follow(logs.log);
    logs.log.info(
      { event: "liquidation_confirmed", trader: "0xabc", marketId: 1, blockNumber: "42", reward: "12.5" },
      "x",
    );
    logs.log.warn({ event: "signer_low_balance", signer: "0xdef" }, "not asked for");
    logs.log.info({ event: "position_flagged", trader: "0xabc" }, "not a notification");
    expect(received).toHaveLength(0); // nothing was posted inside the log call
    logs.log.info({ event: "keeper_stopping", reason: "SIGTERM" }, "x");
    await n.flush(5_000);
    expect(received.map((r) => r.url)).toEqual(["/hook", "/hook"]);
    const first = JSON.parse(received[0]?.body as string);
    expect(first).toMatchObject({
      source: "perp-keeper",
      network: "devnet",
      event: "liquidation_confirmed",
      fields: { trader: "0xabc", marketId: 1, blockNumber: "42", reward: "12.5" },
    });
    expect(first.text).toMatch(/liquidated market 1 position of 0xabc in block 42 for 12\.5/);
    expect(JSON.parse(received[1]?.body as string).event).toBe("keeper_stopping");
    expect(n.stats).toMatchObject({ delivered: 2, failed: 0 });
  });

  it("retries a failed delivery with back-off, and says notify_failed once it gives up", async () => {
    const { url, received } = await serve([500, 503]);
    const logs = captureLogs();
    const n = new Notifier(config({ url }), logs.log, "devnet", {});
    n.onLog({ event: "liquidation_failed", signer: "0xabc", nonce: 3, reason: "rejected" });
    await until("delivered after two failures", () => n.stats.delivered === 1, 5_000);
    expect(received).toHaveLength(3);
    expect(new Set(received.map((r) => r.body)).size).toBe(1); // the same body each time

    const down = await serve([500, 500, 500, 500, 500]);
    const m = new Notifier(config({ url: down.url, retries: 2 }), logs.log, "devnet", {});
    m.onLog({ event: "liquidation_reverted", signer: "0xabc", nonce: 4 });
    await until("given up", () => m.stats.failed === 1, 5_000);
    expect(down.received).toHaveLength(3);
    expect(logs.events("notify_failed")).toEqual([
      expect.objectContaining({ notification: "liquidation_failed", attempts: 3, status: "HTTP 500" }),
    ]);
  });

  it("rate-limits: past maxPerMinute messages are dropped and counted in the next one", async () => {
    const { url, received } = await serve();
    const logs = captureLogs();
    const n = new Notifier(config({ url, maxPerMinute: 2 }), logs.log, "devnet", {});
    for (let i = 0; i < 5; i++) n.onLog({ event: "liquidation_confirmed", trader: `0x${i}`, marketId: 0 });
    await n.flush(5_000);
    expect(received).toHaveLength(2);
    expect(n.stats).toMatchObject({ delivered: 2, suppressed: 3 });
  });

  it("never puts an error text, a key, a URL or a token in a body or a log line", async () => {
    const { url, received } = await serve([500]);
    const logs = captureLogs();
    const n = new Notifier(
      config({ preset: "telegram", telegramApiUrl: url, telegramChatId: "-100", retries: 0 }),
      logs.log,
      "devnet",
      {
        TELEGRAM_BOT_TOKEN: TOKEN,
      },
    );
    n.follow(logs.log);
    logs.log.warn(
      {
        event: "liquidation_failed",
        signer: "0xabc",
        reason: "rejected",
        error: `insufficient funds; key ${KEY} at https://user:pass@rpc.example/v3/apikey`,
        privateKey: KEY,
      },
      "x",
    );
    await until("tried", () => n.stats.failed === 1, 5_000);
    logs.log.info({ event: "keeper_stopping" }, "x");
    await n.flush(5_000);
    expect(received).toHaveLength(2);
    // the token is in the Bot API path only
    expect(received[0]?.url).toBe(`/bot${TOKEN}/sendMessage`);
    expect(JSON.parse(received[1]?.body as string)).toMatchObject({ chat_id: "-100" });
    const everything = [...received.map((r) => r.body), ...logs.raw.filter((l) => l.includes("notify_failed"))].join(
      "\n",
    );
    for (const secret of [KEY, KEY.slice(2), TOKEN, "apikey", "user:pass", "insufficient funds"]) {
      expect(everything).not.toContain(secret);
    }
    expect(logs.events("notify_failed")).toHaveLength(1);
  });

  it("presets: Slack text, Discord content", async () => {
    const { url, received } = await serve();
    const logs = captureLogs();
    for (const preset of ["slack", "discord"] as const) {
      const n = new Notifier(config({ preset }), logs.log, "mainnet", { KEEPER_NOTIFY_URL: url });
      n.onLog({ event: "liquidatable_left_behind", positions: 2, oldestAgeBlocks: 9 });
      await n.flush(5_000);
    }
    const [slack, discord] = received.map((r) => JSON.parse(r.body));
    expect(Object.keys(slack)).toEqual(["text"]);
    expect(slack.text).toMatch(
      /perp-keeper \(mainnet\): 2 liquidatable position\(s\) not liquidated, the oldest for 9 blocks/,
    );
    expect(Object.keys(discord)).toEqual(["content"]);
  });

  it("is configured under keeper.notify, validated", () => {
    const base = {
      network: { name: "x", chainId: 1 },
      exchange: { adapter: "perp-engine", address: `0x${"1".repeat(40)}`, deployBlock: 0 },
    };
    const ok = keeperConfigSchema.parse({
      ...base,
      keeper: { notify: { preset: "slack", url: "https://hooks.example/x" } },
    });
    expect(ok.keeper.notify).toMatchObject({ preset: "slack", maxPerMinute: 20, retries: 3 });
    expect(keeperConfigSchema.safeParse({ ...base, keeper: { notify: { preset: "telegram" } } }).success).toBe(false);
    expect(keeperConfigSchema.safeParse({ ...base, keeper: { notify: { events: ["everything"] } } }).success).toBe(
      false,
    );
    expect(keeperConfigSchema.parse({ ...base }).keeper.notify).toBeUndefined();
  });
});

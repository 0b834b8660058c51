/**
 * Endpoint standing: demotion (said, ordered last, restored after its time), lag against the freshest head reported
 * just now (not one up to 10 s old), and firstKnown's blame of an endpoint that denies a block it had passed.
 */
import pino from "pino";
import type { PublicClient } from "viem";
import { describe, expect, it } from "vitest";
import { type Endpoint, Endpoints } from "../../src/chain/endpoints.ts";
import type { Logger } from "../../src/ops/logger.ts";

function setup(n: number) {
  const events: Record<string, unknown>[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => events.push(JSON.parse(line)) }) as Logger;
  let now = 1_000_000;
  /** What each endpoint answers when asked for its head now. */
  const heads: bigint[] = Array.from({ length: n }, () => 0n);
  const list: Endpoint[] = Array.from({ length: n }, (_, i) => {
    const client = { id: i, getBlockNumber: async () => heads[i] } as unknown as PublicClient;
    return {
      url: `http://user:secret@node${i}.example/key${i}`,
      label: `http://node${i}.example/<redacted>`,
      client,
      logsClient: client,
    };
  });
  const eps = new Endpoints(list, log, 5n, () => now);
  return { eps, list, events, heads, advance: (ms: number) => (now += ms) };
}

describe("endpoint standing", () => {
  it("demotes an endpoint, says so without its credentials, orders it last and restores it after its time", () => {
    const { eps, list, events, advance } = setup(2);
    const [a, b] = list as [Endpoint, Endpoint];
    eps.demote(a, "logs_missing", "block 7");
    expect(eps.ordered()).toEqual([b, a]);
    expect(eps.usable()).toEqual([b]);
    expect(eps.isDemoted(a.url)).toBe(true);
    const said = events.find((e) => e.event === "rpc_endpoint_demoted");
    expect(said?.endpoint).toBe(a.label);
    expect(JSON.stringify(events)).not.toContain("secret");
    advance(30_001);
    expect(eps.isDemoted(a.url)).toBe(false);
    expect(events.some((e) => e.event === "rpc_endpoint_restored")).toBe(true);
    eps.demote(a, "logs_missing", "again");
    advance(30_001);
    expect(eps.isDemoted(a.url)).toBe(true); // the second demotion lasts twice as long
  });

  it("measures lag against the freshest head reported just now, not against an old one", () => {
    const { eps, list, events, advance } = setup(2);
    const [a, b] = list as [Endpoint, Endpoint];
    eps.reportHead(b.url, 100n);
    advance(10_000); // b's report is old: it says nothing of the head now
    eps.reportHead(a.url, 101n);
    expect(eps.isLagging(a.url)).toBe(false);
    eps.reportHead(b.url, 112n); // reported just now, 11 blocks ahead of a
    expect(eps.isLagging(a.url)).toBe(true);
    expect(events.filter((e) => e.event === "rpc_endpoint_lagging")).toHaveLength(1);
    eps.reportHead(a.url, 112n);
    expect(eps.isLagging(a.url)).toBe(false);
    expect(events.some((e) => e.event === "rpc_endpoint_caught_up")).toBe(true);
  });

  it("firstKnown demotes an endpoint that denied a block it had passed, not one that is merely behind", async () => {
    const { eps, list, heads } = setup(2);
    const [a, b] = list as [Endpoint, Endpoint];
    const answer = (c: PublicClient) => Promise.resolve((c as unknown as { id: number }).id === 0 ? null : "receipts");
    eps.reportHead(a.url, 10n);
    eps.reportHead(b.url, 12n);
    heads[0] = 11n;
    // a is asked first (listed first), says null, and b has it; a reported 10 and answers 11 now: behind, not blamed
    expect(await eps.firstKnown("block 12", answer, () => 12n)).toBe("receipts");
    expect(eps.isDemoted(a.url)).toBe(false);
    // now past the block by its own word, it still denies it
    heads[0] = 13n;
    expect(await eps.firstKnown("block 12", answer, () => 12n)).toBe("receipts");
    expect(eps.isDemoted(a.url)).toBe(true);
    expect(eps.isDemoted(a.url)).toBe(true);
    expect(eps.isDemoted(b.url)).toBe(false);
  });
});

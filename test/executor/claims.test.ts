/**
 * The claims ledger: one owner per position, freed only by its holder; a position our receipt settled is held back
 * until the book agrees, and a book that disagrees past the receipt's block is reported once.
 */
import { describe, expect, it } from "vitest";
import type { Attempt } from "../../src/executor/attempt.ts";
import { Claims } from "../../src/executor/claims.ts";

function attempt(id: string, status: Attempt["status"] = "pending"): Attempt {
  return {
    id,
    signer: "0x0000000000000000000000000000000000000001",
    nonce: 0,
    kind: "single",
    targets: [],
    to: "0x0000000000000000000000000000000000000002",
    data: "0x",
    gas: 100_000n,
    txs: [],
    status,
    createdAtBlock: 1n,
  } as Attempt;
}

const pos = (margin: bigint) => ({ size: 10n, openNotional: 100n, margin, lastFundingIndex: 0n });

describe("claims", () => {
  it("never lets a second live attempt take a position, and frees a position only for its holder", () => {
    const c = new Claims();
    const a = attempt("a");
    const b = attempt("b");
    expect(c.claim(["p"], "planning")).toEqual([]);
    expect(c.claim(["p"], a)).toEqual([]); // planning hands over to the attempt
    expect(c.claim(["p"], b)).toEqual(["p"]); // held by a live attempt: refused
    expect(c.claim(["p"], "planning")).toEqual(["p"]);
    expect(c.holder("p")).toBe(a);
    c.release(["p"], "planning"); // not planning's to free
    c.release(["p"], b); // nor b's
    expect(c.holder("p")).toBe(a);
    expect(c.heldByOther("p")).toBe(true);
    expect(c.heldByOther("p", a)).toBe(false);
    c.release(["p"], a);
    expect(c.has("p")).toBe(false);
  });

  it("lets a terminal attempt's stale claim be taken over", () => {
    const c = new Claims();
    const done = attempt("a", "confirmed");
    c.claim(["p"], done);
    expect(c.heldByOther("p")).toBe(false);
    expect(c.claim(["p"], "planning")).toEqual([]);
    expect(c.holder("p")).toBe("planning");
  });

  it("holds back a position its receipt settled until the book changes it, and reports a book that disagrees", () => {
    const c = new Claims();
    const seen = pos(5n);
    c.settledAt("p", 10n, seen);
    expect(c.heldBack("p", pos(5n))).toBe(true); // the book still shows it as it was
    expect(c.contradictions(9n, () => pos(5n))).toEqual([]); // the book has not processed block 10 yet
    expect(c.contradictions(10n, () => pos(5n))).toEqual([{ key: "p", block: 10n }]);
    expect(c.contradictions(11n, () => pos(5n))).toEqual([]); // said once
    expect(c.heldBack("p", pos(5n))).toBe(true); // still never sent again
    expect(c.heldBack("p", pos(6n))).toBe(false); // the book changed it: judged afresh
    expect(c.heldBack("p", pos(5n))).toBe(false);
  });

  it("forgets what receipts said when the book changes the position or the chain reorganises", () => {
    const c = new Claims();
    c.settledAt("p", 10n, pos(5n));
    c.bookChanged("p");
    expect(c.heldBack("p", pos(5n))).toBe(false);
    c.settledAt("q", 10n, pos(5n));
    c.forgetSettled();
    expect(c.heldBack("q", pos(5n))).toBe(false);
    c.settledAt("r", 10n, undefined); // gone from the book already when the receipt was read
    expect(c.heldBack("r", undefined)).toBe(false);
  });
});

import { describe, expect, it } from "vitest";
import type { Attempt } from "../../src/executor/attempt.ts";
import { fakeSigner, lane } from "./fakes.ts";

const attemptAt = (nonce: number) => ({ nonce }) as unknown as Attempt;

describe("NonceLane", () => {
  it("refuses to hand out a nonce before init (never guesses 0)", () => {
    const l = lane();
    expect(() => l.take()).toThrow(/before init/);
    l.init(7);
    expect([l.take(), l.take()]).toEqual([7, 8]);
  });

  it("gives back only the highest nonce handed out, and never one an attempt still holds", () => {
    const l = lane();
    l.init(0);
    const [a, b] = [l.take(), l.take()];
    expect(l.giveBack(a)).toBe(false); // below b: a hole to be filled, not reused
    expect(l.nextNonce).toBe(2);
    l.live.set(b, attemptAt(b));
    expect(l.giveBack(b)).toBe(false); // an attempt holds it
    l.live.delete(b);
    expect(l.giveBack(b)).toBe(true);
    expect(l.take()).toBe(b);
  });

  it("reports holes under its highest live nonce, from the chain's count", () => {
    const l = lane();
    l.init(0);
    for (let i = 0; i < 5; i++) l.take();
    l.live.set(1, attemptAt(1));
    l.live.set(4, attemptAt(4));
    expect(l.gaps(0)).toEqual([0, 2, 3]);
    expect(l.gaps(3)).toEqual([3]);
  });

  it("catches up with another sender of the key, never moves back", () => {
    const l = lane();
    l.init(5);
    expect(l.catchUp(3)).toBe(false);
    expect(l.nextNonce).toBe(5);
    expect(l.catchUp(9)).toBe(true);
    expect(l.take()).toBe(9);
  });

  it("a signer that fails throws to the caller and consumes nothing of the counter itself", async () => {
    const signer = fakeSigner();
    signer.failOn.add(1);
    const l = lane(undefined, signer);
    l.init(0);
    const nonce = l.take();
    await expect(
      l.sign({ to: l.address, data: "0x", gas: 21_000n }, nonce, { maxFeePerGas: 2n, maxPriorityFeePerGas: 1n }),
    ).rejects.toThrow(/remote signer/);
    expect(l.giveBack(nonce)).toBe(true);
    const { hash } = await l.sign({ to: l.address, data: "0x", gas: 21_000n }, l.take(), {
      maxFeePerGas: 2n,
      maxPriorityFeePerGas: 1n,
    });
    expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
  });
});

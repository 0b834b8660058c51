import { describe, expect, it } from "vitest";
import { backoffMs } from "../../src/ops/backoff.ts";

describe("retry back-off", () => {
  it("doubles from the base, never above the 5 s cap, with jitter between half and all of it", () => {
    expect(backoffMs(1, 500, 5_000, () => 1)).toBe(500);
    expect(backoffMs(2, 500, 5_000, () => 1)).toBe(1_000);
    expect(backoffMs(10, 500, 5_000, () => 1)).toBe(5_000);
    expect(backoffMs(10, 500, 5_000, () => 0)).toBe(2_500);
    for (let attempt = 1; attempt < 40; attempt++) {
      const delay = backoffMs(attempt, 500);
      expect(delay).toBeLessThanOrEqual(5_000);
      expect(delay).toBeGreaterThan(0);
    }
  });
});

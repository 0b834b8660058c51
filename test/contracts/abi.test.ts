import { describe, expect, it } from "vitest";
import { staleArtifacts } from "../../scripts/compile-contracts.ts";

describe("generated ABIs", () => {
  it("abi/ matches a fresh compile of contracts/ (run npm run compile:contracts)", () => {
    expect(staleArtifacts()).toEqual([]);
  });
});

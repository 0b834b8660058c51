import { describe, expect, it } from "vitest";
import { renderTable } from "../../src/ops/table.ts";

describe("renderTable", () => {
  it("pads each column to its widest cell or title, two spaces apart, with no trailing blanks", () => {
    const text = renderTable(
      ["a", "long title", "c"],
      [
        ["wide cell", "x", ""],
        ["y", "z", "last"],
      ],
    );
    expect(text.split("\n")).toEqual(["a          long title  c", "wide cell  x", "y          z           last"]);
  });

  it("is the header alone without rows", () => {
    expect(renderTable(["one", "two"], [])).toBe("one  two");
  });
});

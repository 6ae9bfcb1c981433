// When the shared lowering runs a reduction a workgroup per row (lower/cooperative.ts).
import { describe, expect, it } from "vitest";
import { cooperates } from "../../backends/common/lower/cooperative.ts";
import { monomialOf } from "../../common/size.ts";

const offer = { workgroupSize: 64 };
const size = (...dims: (number | string)[]) => monomialOf(dims);

describe("the cooperative-reduction heuristic", () => {
  it.each([
    ["rows of at least a workgroup", size("N"), size(64), true],
    ["a length known only at run time", size(1024), size("K"), true],
    ["fewer rows than a workgroup has threads", size(3), size(5), true],
    ["many short rows", size("N"), size(63), false],
    ["many rows of one element", size(4096), size(1), false],
    ["a few rows of one element", size(3), size(1), false],
  ])("%s", (_, rows, length, expected) => {
    expect(cooperates(offer, rows, length)).toBe(expected);
  });

  it("is forced either way by the target's option, and never taken without an offer", () => {
    expect(cooperates({ ...offer, reductions: "cooperative" }, size("N"), size(1))).toBe(true);
    expect(cooperates({ ...offer, reductions: "per-row" }, size(1), size(1 << 20))).toBe(false);
    expect(cooperates(undefined, size(1), size(1 << 20))).toBe(false);
  });
});

import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { opReference } from "../docs/generate.ts";

it("docs/ops.md is the registry's current reference (run `npm run docs` after changing an op)", () => {
  expect(readFileSync(new URL("../docs/ops.md", import.meta.url), "utf8")).toBe(opReference());
});

// The starting point of a new pass (`difftc new-pass NAME`): a pass file with one working
// example rule and its test file, both following docs/passes.md, and the line that registers
// it. The example (neg(neg(x)) -> x) passes its tests as generated, so the first edit starts
// from green; replace it with the rewrite being studied.
import { Diagnostic } from "../../common/diagnostic.ts";
import { PASSES } from "./registry.ts";

export interface PassTemplate {
  /** Paths relative to the repository root, and their contents. */
  files: { path: string; text: string }[];
  /** What to add to compiler/passes/registry.ts to register it. */
  registration: string[];
}

const NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

export function passTemplate(name: string): PassTemplate {
  if (!NAME.test(name)) throw new Diagnostic(`a pass name is lowercase words joined by '-' (fold-weight-transposes), not '${name}'`);
  if (PASSES.some((p) => p.name === name)) throw new Diagnostic(`there is a pass named ${name} already (see --list-passes)`);
  const camel = name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  const constant = name.toUpperCase().replace(/-/g, "_");
  const pass = camel.endsWith("Pass") ? camel : `${camel}Pass`;
  const passFile = `// ${name}: what the pass finds, what replaces it, and why that is exact (or within which
// tolerance, for a pass that moves rounding). docs/passes.md walks through writing, testing
// and measuring a pass.
import type { Pass } from "./pass.ts";
import { P, rewrite, type Rule } from "./pattern.ts";

export const ${constant}_RULES: Rule[] = [
  {
    // The example rule, to replace: neg(neg(x)) is x for every x, -0 and NaN included.
    name: "neg(neg(x)) -> x",
    pattern: P.op("neg", P.op("neg", P.any("x"))),
    build: ({ x }, r) => r.value(x.id),
  },
];

export const ${pass}: Pass = {
  name: "${name}",
  description: "neg(neg(x)) -> x (the template's example rule)",
  run: (graph) => rewrite(graph, ${constant}_RULES),
  // The order it needs, if any: pipelines that break it get a warning.
  // runsAfter: { "fuse-dual-softmax": "it rewrites what fuse-dual-softmax looks for" },
  // runsBefore: { "fuse-elementwise": "fused bodies hide what it looks for" },
};
`;
  const testFile = `import { describe, it } from "vitest";
import { ${pass} } from "../../compiler/passes/${name}.ts";
import { checkCleanup, expectRewrite } from "./equivalence.ts";

describe("${name}", () => {
  it("neg(neg(x)) is x", () => {
    expectRewrite(
      ${pass},
      \`graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = neg(%0) : f32[N, 4]
        %2 = neg(%1) : f32[N, 4]
        output "y" = %2
      }\`,
      \`graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        output "y" = %0
      }\`,
    );
  });

  // Bit-exact on random graphs (with NaN, ±inf and ±0 among the inputs), and the rule must
  // fire on some of them: a property whose rule never fires checks nothing. A pass that moves
  // rounding uses checkWithinTolerance instead.
  it("keeps every output bit on random graphs, and fires on some of them", () => {
    checkCleanup(${pass}, { fires: { rule: "neg(neg(x)) -> x", atLeast: 0.02 } });
  });
});
`;
  return {
    files: [
      { path: `compiler/passes/${name}.ts`, text: passFile },
      { path: `test/passes/${name}.test.ts`, text: testFile },
    ],
    registration: [`import { ${pass} } from "./${name}.ts";`, `  ${pass}, // in PASSES`],
  };
}

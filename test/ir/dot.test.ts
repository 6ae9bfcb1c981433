// Pictures of the IR: DOT text (always), and SVG where Graphviz's dot is installed.
import { describe, expect, it } from "vitest";
import { graphToDot, hasGraphviz, renderSvg } from "../../compiler/ir/dot.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";

const graphviz = hasGraphviz();
if (!graphviz && process.env.CI === "true") throw new Error("Graphviz's dot is missing: SVG rendering cannot be tested in CI (apt-get install graphviz)");
if (!graphviz) console.warn("\n*** SKIPPING the SVG rendering test: Graphviz's dot is not installed (apt-get install graphviz) ***\n");

const FUSED = parseGraph(`graph g [N] {
  %0 = input {name = "x"} : f32[N, 4]
  %1 = param {name = "w", init = "constant", init_args = [1]} : f32[4]
  %2 = fused(%0, %1) {kind = "elementwise"} : f32[N, 4]
    body = graph fused [N] {
      %0 = input {name = "0"} : f32[N, 4]
      %1 = input {name = "1"} : f32[4]
      %2 = mul(%0, %1) : f32[N, 4]
      %3 = exp(%2) : f32[N, 4]
      output "out" = %3
    }
  %3 = sum(%2) {axes = [-1]} : f32[N]
  output "y" = %3
}`);

describe("IR pictures", () => {
  it("a fused node is a cluster of its body's nodes, fed by the fused node's operands; inputs and params are their names; outputs are named", () => {
    const dot = graphToDot(FUSED, { title: "g: IR after fuse-elementwise" });
    expect(dot).toMatch(/^digraph "g" \{\n/);
    expect(dot).toContain('label="g: IR after fuse-elementwise"');
    expect(dot).toContain('n0 [label="%0 input x\\nf32[N, 4]"');
    expect(dot).toContain('n1 [label="%1 param w\\nf32[4]"');
    expect(dot).toContain("subgraph cluster_2 {");
    expect(dot).toContain('label="%2 fused elementwise : f32[N, 4]"');
    // The body's inputs are the operands themselves: no box for them, edges from %0 and %1.
    expect(dot).toContain('n2_2 [label="%2 mul\\nf32[N, 4]"');
    expect(dot).not.toContain("n2_0 [");
    expect(dot).toMatch(/ n0 -> n2_2;\n {2}n1 -> n2_2;\n {2}n2_2 -> n2_3;/);
    // The reader of the fused node reads the body's output; attributes at their defaults are left out.
    expect(dot).toContain("n2_3 -> n3;");
    expect(dot).toContain('n3 [label="%3 sum\\n{axes = [-1]}\\nf32[N]"');
    expect(dot).toContain("n3 -> out_y;");
  });

  it.skipIf(!graphviz)("renders to SVG through Graphviz's dot", () => {
    const svg = renderSvg(graphToDot(FUSED));
    expect(svg).toContain("<svg");
    expect(svg).toContain("cluster_2");
  });
});

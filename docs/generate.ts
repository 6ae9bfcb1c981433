// Writes docs/ops.md from the op registry, so the reference can never drift from the code:
//   npm run docs
// test/docs.test.ts fails when the committed file is stale.
import { writeFileSync } from "node:fs";
import { allOps, type AttrSpec } from "../compiler/ir/registry.ts";
import "../compiler/ir/ops/index.ts";

function attr(name: string, spec: AttrSpec): string {
  const type = spec.oneOf ? spec.oneOf.map((s) => `"${s}"`).join(" \\| ") : spec.type;
  const dflt = spec.default === undefined ? "required" : `default ${JSON.stringify(spec.default)}`;
  return `\`${name}\`: ${type}, ${dflt}${spec.doc ? ` (${spec.doc})` : ""}`;
}

export function opReference(): string {
  const lines = [
    "# Op reference",
    "",
    "Generated from the op registry by `npm run docs`; do not edit. Each op's text is the",
    "definition the reference interpreter implements. Operands marked `?` are optional, `...`",
    "variadic. Fusion patterns: elementwise, injective (each output element reads one input",
    "element), reduction, matmul, opaque, source (no operands).",
    "",
    "| op | operands | attributes | pattern | semantics |",
    "|---|---|---|---|---|",
  ];
  for (const op of allOps()) {
    const attrs = Object.entries(op.attrs).map(([k, v]) => attr(k, v)).join("<br>") || "-";
    const decomposes = op.decompose ? " Backends without a kernel for it run its decomposition into primitives." : "";
    lines.push(`| \`${op.name}\` | ${op.operands.map((o) => `\`${o}\``).join(", ") || "-"} | ${attrs} | ${op.pattern} | ${(op.doc + decomposes).replace(/\|/g, "\\|")} |`);
  }
  return `${lines.join("\n")}\n`;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop()!)) {
  writeFileSync(new URL("./ops.md", import.meta.url), opReference());
  console.log("wrote docs/ops.md");
}

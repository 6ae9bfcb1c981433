// The JS kernel of a `fused` node: the elementwise loop, matmul or reduction template of
// kernels.ts, given the body's elementwise chain to compute at each element. Every chain node
// becomes a local rounded to its dtype, as the interpreter rounds every node, so a fused kernel
// computes bit for bit what the unfused kernels did, without the stores and loads between them.
import type { Node } from "../../compiler/ir/graph.ts";
import { roundScalar } from "../../compiler/ir/numeric.ts";
import { type FusedBody, fusedBody, type FusedKind } from "../../compiler/ir/ops/fused.ts";
import { type DType, isFloat, type TensorType } from "../../compiler/ir/types.ts";
import { lit, ref, render, scalarOp } from "../common/expr.ts";
import { elementwiseLoop, type FusedRead, type KernelWriter, matmul, reduction, useHelpers } from "./kernels.ts";
import { jsSpelling } from "./spelling.ts";

/** Ops whose result is already in its dtype when their operands are: they need no rounding. */
const EXACT = new Set(["broadcast", "relu", "maximum", "minimum", "where", "eq", "ne", "lt", "le", "gt", "ge"]);
/** The same for float dtypes only (the i32 negation of -2^31 wraps). */
const EXACT_FOR_FLOATS = new Set(["neg", "abs"]);

/** A float64 value rounded to a dtype as numeric.ts's roundScalar does, as a store to its typed array would. */
function rounded(dtype: DType, e: string, helpers: Set<string>): string {
  switch (dtype) {
    case "f32":
      return `Math.fround(${e})`;
    case "f16":
    case "bf16":
      helpers.add(`${dtype}Bits`).add(`${dtype}FromBits`);
      return `${dtype}FromBits(${dtype}Bits(${e}))`;
    case "i32":
      return `(${e} | 0)`;
    case "i8":
      return `((${e} << 24) >> 24)`;
    case "u8":
      return `(${e} & 255)`;
    case "bool":
      helpers.add("toBool");
      return `toBool(${e})`;
  }
}

/** The body nodes `target` depends on, not looking past the `known` ones. */
function needed(body: FusedBody, target: Node, known: ReadonlySet<number>): Set<number> {
  const seen = new Set<number>();
  const visit = (id: number) => {
    if (seen.has(id)) return;
    seen.add(id);
    if (!known.has(id)) body.graph.nodes[id].operands.forEach(visit);
  };
  visit(target.id);
  return seen;
}

/**
 * Writes the chain nodes `target` needs beyond the `known` values (body id -> JS value), each a
 * local `t<id>` rounded to its dtype, and returns target's value as an expression: unrounded
 * (the store rounds it) unless `round`.
 */
function chain(w: KernelWriter, body: FusedBody, known: ReadonlyMap<number, string>, target: Node, round: boolean): string {
  const values = new Map(known);
  const nodes = body.graph.nodes;
  for (const id of [...needed(body, target, new Set(known.keys()))].sort((a, b) => a - b)) {
    const n = nodes[id];
    if (values.has(id)) continue;
    if (n.op === "input") throw new Error(`fused: body input ${n.attrs.name} is needed but was not loaded`);
    if (n.op === "const") {
      values.set(id, render(lit(roundScalar(n.type.dtype, n.attrs.value as number), n.type.dtype), jsSpelling));
      continue;
    }
    const args = n.operands.map((o) => ref(values.get(o)!));
    const expr = n.op === "broadcast" ? args[0] : scalarOp(n.op, args, nodes[n.operands[n.op === "where" ? 1 : 0]].type.dtype, n.attrs);
    useHelpers(w, expr);
    const js = render(expr, jsSpelling);
    const exact = EXACT.has(n.op) || (EXACT_FOR_FLOATS.has(n.op) && isFloat(n.type.dtype));
    if (id === target.id) return round && !exact ? rounded(n.type.dtype, js, w.helpers) : js;
    if (n.op === "broadcast") values.set(id, js);
    else {
      w.line(`const t${id} = ${exact ? js : rounded(n.type.dtype, js, w.helpers)};`);
      values.set(id, `t${id}`);
    }
  }
  return values.get(target.id)!;
}

/** The operand index of a body input. */
const operandOf = (n: Node) => Number(n.attrs.name);

export function fused(w: KernelWriter, node: Node, types: TensorType[]): void {
  const body = fusedBody(node.attrs.body as string, node.attrs.kind as FusedKind);
  /** The inputs the chain up to `target` reads, read from their kernel inputs. */
  const readsFor = (target: Node, known: Set<number>): { reads: FusedRead[]; inputs: Node[] } => {
    const reach = needed(body, target, known);
    const inputs = body.inputs.filter((n) => reach.has(n.id) && !known.has(n.id));
    return { inputs, reads: inputs.map((n) => ({ name: `in${operandOf(n)}`, type: types[operandOf(n)] })) };
  };
  const loadedAs = (inputs: Node[], loaded: string[]) => new Map(inputs.map((n, i) => [n.id, loaded[i]]));

  if (body.kind === "elementwise") {
    elementwiseLoop(w, node.type, types, (loaded) => chain(w, body, loadedAs(body.inputs, loaded), body.output, false));
  } else if (body.kind === "epilogue") {
    const mm = body.anchor!;
    const [a, b] = mm.operands.map((o) => operandOf(body.graph.nodes[o]));
    const { inputs, reads } = readsFor(body.output, new Set([mm.id]));
    matmul(w, mm, [types[a], types[b]], [`in${a}`, `in${b}`], {
      reads,
      dtype: node.type.dtype,
      value: (sum, loaded) => {
        w.line(`const t${mm.id} = ${rounded(mm.type.dtype, sum, w.helpers)};`);
        return chain(w, body, new Map([...loadedAs(inputs, loaded), [mm.id, `t${mm.id}`]]), body.output, false);
      },
    });
  } else {
    const red = body.anchor!;
    const x = body.graph.nodes[red.operands[0]];
    const { inputs, reads } = readsFor(x, new Set());
    reduction(w, red, x.type, { reads, value: (loaded) => chain(w, body, loadedAs(inputs, loaded), x, true) });
  }
}

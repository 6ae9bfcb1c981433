// The quant report (`difftc quant-report`): what low-bit attention costs in accuracy and saves
// in bytes, on a model's own layer and, side by side on the same q, k and v, on standard
// attention (DESIGN.md §4; the Diff Transformer's §3.8 claims 4-bit Diff ≈ 6-bit Transformer).
// Everything runs on the interpreter, whose qflash rules are the ops' definition: the numbers
// are those of every backend's kernels up to their float tolerance.
import { Diagnostic } from "../common/diagnostic.ts";
import type { Graph, Node } from "../compiler/ir/graph.ts";
import { attend } from "../compiler/ir/ops/attention.ts";
import { attentionQuant, QuantStats } from "../compiler/ir/ops/attention-quant.ts";
import { attentionGeometry } from "../compiler/ir/ops/attention-geometry.ts";
import type { Attrs } from "../compiler/ir/graph.ts";
import type { HostTensor } from "../compiler/ir/tensor.ts";
import { runPipeline } from "../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../compiler/passes/registry.ts";
import { DEFAULT_QUANT } from "../compiler/passes/quantize-attention.ts";
import { evaluate, type TensorMap } from "./interpreter/index.ts";

export interface QuantReportOptions {
  /** Bit widths to report besides the unquantised 16-bit row. */
  bits: number[];
  targets: ("logits" | "probs")[];
  granularities: ("row" | "block")[];
  /** The skip threshold of every quantised row (0: none). */
  threshold: number;
  /** V's bits in every quantised row (0: V as it is). */
  vBits: number;
  /** Keys per block of every row; undefined keeps the fused op's. */
  block?: number;
  dims?: ReadonlyMap<string, number>;
}

/** How far a result is from the reference. */
export interface ErrorMeasure {
  maxAbs: number;
  /** ||a - e|| / ||e||. */
  relL2: number;
  cosine: number;
}

/** One quantisation setting's figures for one attention kind. */
export interface ReportCell {
  error: ErrorMeasure;
  /** Skipped (row, key block) pairs over all of them. */
  skipped: number;
  /** Bytes of the quantised logits or maps read (levels and scales; 16-bit values when unquantised), and of V read by W·V per query row. */
  mapBytes: number;
  vBytes: number;
}

export interface ReportRow {
  label: string;
  attrs: Attrs;
  /** The model's outputs (all concatenated) against the unquantised model's. */
  model: ErrorMeasure;
  /** The fused diff attention's output (with its epilogue) against the unquantised one's. */
  diff: ReportCell;
  /** Standard attention on the same q, k and v (dk = 2d), against unquantised standard attention. */
  standard: ReportCell;
}

export function measureError(actual: Float64Array, expected: Float64Array): ErrorMeasure {
  let maxAbs = 0;
  let diff2 = 0;
  let exp2 = 0;
  let act2 = 0;
  let dot = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = actual[i] - expected[i];
    maxAbs = Math.max(maxAbs, Math.abs(d));
    diff2 += d * d;
    exp2 += expected[i] * expected[i];
    act2 += actual[i] * actual[i];
    dot += actual[i] * expected[i];
  }
  return { maxAbs, relL2: Math.sqrt(diff2 / exp2), cosine: dot / Math.sqrt(exp2 * act2) };
}

/** The model's fused attention nodes after the default pipeline; the report needs exactly one flash_diffattn. */
function diffNode(graph: Graph): Node {
  const nodes = graph.nodes.filter((n) => n.op === "flash_diffattn");
  if (nodes.length !== 1)
    throw new Diagnostic(`quant-report measures one differential attention layer, and ${graph.name} has ${nodes.length} (after the default pipeline, as flash_diffattn): pass a single layer such as examples/diff_attention.dt`);
  return nodes[0];
}

/** The bytes one attention moved under `quant`, from its stats (see ReportCell). */
function bytesMoved(stats: QuantStats, attrs: Attrs, maps: number, dv: number): { mapBytes: number; vBytes: number } {
  const quantised = attrs.quant !== "none";
  const bits = quantised ? (attrs.bits as number) : 16;
  const kept = stats.keys - stats.skippedKeys;
  const vBits = (attrs.v_bits as number) || 16;
  return { mapBytes: (kept * maps * bits) / 8 + (quantised ? stats.scales * 4 : 0), vBytes: (kept * dv * vBits) / 8 };
}

/** Standard attention's attributes on the diff node's q, k and v: H heads of width 2d, the same causality and key blocks. */
function standardAttrs(diff: Node): Attrs {
  return { heads: diff.attrs.heads, kv_heads: diff.attrs.kv_heads, causal: diff.attrs.causal, scale: 0, block: diff.attrs.block };
}

/** The settings the report rows run, the unquantised one first. */
function settings(o: QuantReportOptions): { label: string; attrs: Attrs }[] {
  const base: Attrs = { ...DEFAULT_QUANT, threshold: 0, v_bits: 0, ...(o.block === undefined ? {} : { block: o.block }) };
  const rows: { label: string; attrs: Attrs }[] = [{ label: "none      -     16", attrs: { ...base, quant: "none" } }];
  if (o.threshold > 0 || o.vBits > 0) rows.push({ label: "none+t/v  -     16", attrs: { ...base, quant: "none", threshold: o.threshold, v_bits: o.vBits } });
  for (const target of o.targets)
    for (const granularity of o.granularities)
      for (const bits of o.bits) rows.push({ label: `${target.padEnd(9)} ${granularity.padEnd(5)} ${String(bits).padStart(2)}`, attrs: { ...base, quant: target, granularity, bits, threshold: o.threshold, v_bits: o.vBits } });
  return rows;
}

/** The report's rows: each setting's errors and savings, diff and standard attention side by side. */
export function quantReport(graph: Graph, weights: TensorMap, inputs: TensorMap, o: QuantReportOptions): ReportRow[] {
  const fused = runPipeline(graph, DEFAULT_PIPELINE, { log: () => {} });
  // The unquantised reference with the rows' block (no result depends on it there).
  if (o.block !== undefined) for (const n of fused.nodes) if (n.op === "flash_diffattn") n.attrs.block = o.block;
  const node = diffNode(fused);
  // The reference run, keeping the diff node's operands and output.
  let operands: HostTensor[] = [];
  let reference: HostTensor | undefined;
  const wanted = new Map(node.operands.map((id, i) => [id, i]));
  const referenceOutputs = evaluate(fused, inputs, weights, {
    dims: o.dims,
    onValue: (id, value) => {
      if (wanted.has(id)) operands[wanted.get(id)!] = value;
      if (id === node.id) reference = value;
    },
  });
  operands = [...operands];
  const flat = (outputs: Map<string, HostTensor>) => Float64Array.from([...outputs.values()].flatMap((t) => [...t.data]));
  const modelReference = flat(referenceOutputs);
  const [q, k, v] = operands;
  const stdAttrs = standardAttrs(node);
  const stdGeo = attentionGeometry("attention", [q, k, v], stdAttrs);
  const stdOut = { shape: [...(reference!.shape.slice(0, -2)), stdGeo.heads, stdGeo.dv] };
  const stdReference = attend("attention", [q, k, v], stdAttrs, stdOut);
  const diffGeo = attentionGeometry("diffattn", [q, k, v], node.attrs);

  return settings(o).map(({ label, attrs }) => {
    const quantisedGraph = runPipeline(fused, ["quantize-attention"], { log: () => {}, passOptions: { quant: attrs } });
    // The pass rebuilds node for node: the layer's node keeps its id.
    const qnode = quantisedGraph.nodes[node.id];
    let diffOut: HostTensor | undefined;
    const outputs = evaluate(quantisedGraph, inputs, weights, { dims: o.dims, onValue: (id, value) => id === qnode.id && (diffOut = value) });
    const diffStats = new QuantStats();
    attend("diffattn", operands, { ...node.attrs, ...attrs }, { shape: reference!.shape }, attentionQuant({ ...node.attrs, ...attrs }), diffStats);
    const stdStats = new QuantStats();
    const stdQuant = attentionQuant({ ...stdAttrs, ...attrs });
    const std = attend("attention", [q, k, v], stdAttrs, stdOut, stdQuant, stdStats);
    return {
      label,
      attrs,
      model: measureError(flat(outputs), modelReference),
      diff: { error: measureError(diffOut!.data, reference!.data), skipped: diffStats.skippedBlocks / diffStats.rowBlocks, ...bytesMoved(diffStats, attrs, 2, diffGeo.dv) },
      standard: { error: measureError(std, stdReference), skipped: stdStats.skippedBlocks / stdStats.rowBlocks, ...bytesMoved(stdStats, attrs, 1, stdGeo.dv) },
    };
  });
}

const sci = (x: number) => (x === 0 ? "0" : x.toExponential(2));
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)}`;

/** The report as text: one table per attention kind, then relative L2 errors side by side per bit width. */
export function formatQuantReport(rows: ReportRow[], heading: string): string {
  const head = "target    gran  bits   max|err|   rel L2     cosine      skipped  maps KiB     V KiB";
  const cell = (r: ReportRow, c: ReportCell) =>
    `${r.label}   ${sci(c.error.maxAbs).padStart(9)}  ${sci(c.error.relL2).padStart(9)}  ${c.error.cosine.toFixed(7)}  ${(100 * c.skipped).toFixed(1).padStart(6)}%  ${kib(c.mapBytes).padStart(8)}  ${kib(c.vBytes).padStart(8)}`;
  const lines = [heading, ""];
  lines.push("differential attention (the layer's flash_diffattn output, epilogue included; model rel L2 = the layer's output):", `${head}   model rel L2`);
  for (const r of rows) lines.push(`${cell(r, r.diff)}   ${sci(r.model.relL2).padStart(9)}`);
  lines.push("", "standard attention on the same q, k, v (H heads of width 2d):", head);
  for (const r of rows) lines.push(cell(r, r.standard));
  // Side by side: relative L2 per setting, diff vs standard, the paper's comparison.
  lines.push("", "rel L2, diff vs standard, per target and granularity:");
  const groups = new Map<string, ReportRow[]>();
  for (const r of rows.filter((r) => r.attrs.quant !== "none")) {
    const key = `${r.attrs.quant} ${r.attrs.granularity}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const bitsList = [...new Set(rows.filter((r) => r.attrs.quant !== "none").map((r) => r.attrs.bits as number))];
  lines.push(`${"".padEnd(14)}${bitsList.map((b) => `${`${b} bits: diff / std`.padStart(28)}`).join("")}`);
  for (const [key, group] of groups)
    lines.push(`${key.padEnd(14)}${bitsList.map((b) => {
      const r = group.find((x) => x.attrs.bits === b)!;
      return `${sci(r.diff.error.relL2)} / ${sci(r.standard.error.relL2)}`.padStart(28);
    }).join("")}`);
  return `${lines.join("\n")}\n`;
}

/** Inputs made peaked: every `every`-th row of each float input scaled by `factor`, a few keys with large logits for every query (activation outliers). */
export function peakedInputs(inputs: TensorMap, factor: number, every = 16): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of inputs) {
    if (t.dtype === "i32" || t.dtype === "i8" || t.dtype === "u8" || t.dtype === "bool" || t.shape.length < 2) {
      out.set(name, t);
      continue;
    }
    const width = t.shape[t.shape.length - 1];
    const data = Float64Array.from(t.data);
    for (let row = 0; row * width < data.length; row += every) for (let c = 0; c < width; c++) data[row * width + c] *= factor;
    out.set(name, { ...t, data });
  }
  return out;
}

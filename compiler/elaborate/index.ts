// From a parsed program to a graph: picks the model, merges the standard library, applies
// `--set` overrides and elaborates.
import { readFileSync } from "node:fs";
import type { ModelDecl, Program } from "../../dsl/ast.ts";
import { Diagnostic } from "../../common/diagnostic.ts";
import { parseProgram } from "../../dsl/parse.ts";
import type { Graph } from "../ir/graph.ts";
import { Elaborator, type ParamValue } from "./elaborator.ts";

export type { ParamValue } from "./elaborator.ts";
import { closest, type Value } from "./values.ts";

const STDLIB_URL = new URL("../../dsl/stdlib/std.dt", import.meta.url);
let stdlib: Program | undefined;

/** The standard library of models written in the DSL (Linear, RMSNorm, DiffAttention, ...). */
export function standardLibrary(): Program {
  stdlib ??= parseProgram(readFileSync(STDLIB_URL, "utf8"), "<std>/std.dt");
  return stdlib;
}

/**
 * The model to compile when none is named: the last model in the file that no other model in
 * the file instantiates (so helper models written after the main one are not picked).
 */
export function rootModel(program: Program): ModelDecl | undefined {
  const used = new Set<string>();
  const visit = (stmts: ModelDecl["body"]) => {
    for (const s of stmts) {
      if (s.kind === "sub") used.add(s.model.name);
      if (s.kind === "for") visit(s.body);
    }
  };
  for (const m of program.models) visit(m.body);
  const roots = program.models.filter((m) => !used.has(m.name.name));
  return roots.at(-1) ?? program.models.at(-1);
}

/** The dims a model declares (`dim N`): sizes bound at run time. */
export function modelDims(model: ModelDecl): string[] {
  return model.body.flatMap((s) => (s.kind === "dim" ? s.names.map((n) => n.name) : []));
}

export interface ElaborateOptions {
  model?: string;
  /** Compile-time model parameters (`--set D=1024`, `--set causal=false`) and sizes of the model's dims (`--set N=64`). */
  set?: ReadonlyMap<string, ParamValue>;
}

export interface Elaborated {
  graph: Graph;
  model: ModelDecl;
  /** The value of every compile-time parameter of the root model. */
  params: Map<string, Value>;
  /** The sizes of the model's dims that `set` gave. */
  dims: Map<string, number>;
}

export function elaborate(program: Program, options: ElaborateOptions = {}): Elaborated {
  const models = new Map<string, ModelDecl>();
  for (const m of standardLibrary().models) models.set(m.name.name, m);
  const own = new Set<string>();
  for (const m of program.models) {
    if (own.has(m.name.name)) throw new Diagnostic(`model ${m.name.name} is defined twice`, m.name.span);
    own.add(m.name.name);
    models.set(m.name.name, m);
  }
  let model: ModelDecl | undefined;
  if (options.model) {
    model = models.get(options.model);
    if (!model) {
      const hint = closest(options.model, models.keys());
      const listing = [`${program.file} defines ${program.models.map((m) => m.name.name).join(", ") || "no model"}; the standard library ${standardLibrary().models.map((m) => m.name.name).join(", ")}`];
      throw new Diagnostic(`no model named ${options.model} in ${program.file}${hint ? ` (did you mean ${hint}?)` : ""}`, undefined, listing);
    }
  } else {
    model = rootModel(program);
    if (!model) throw new Diagnostic(`${program.file} defines no model`);
  }
  // Keys naming a dim of the model bind run-time sizes; the rest are compile-time parameters.
  const dims = new Map<string, number>();
  const set = new Map(options.set ?? []);
  for (const d of modelDims(model)) {
    const v = set.get(d);
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new Diagnostic(`dim ${d} is a size: it takes a non-negative integer, got ${JSON.stringify(v)}`);
    dims.set(d, v);
    set.delete(d);
  }
  for (const key of set.keys()) {
    if (!model.params.some((p) => p.name.name === key)) {
      const names = model.params.map((p) => p.name.name);
      const dims = modelDims(model);
      const has = [names.length ? `parameters ${names.join(", ")}` : "no parameters", dims.length ? `dims ${dims.join(", ")}` : "no dims"];
      throw new Diagnostic(`model ${model.name.name} has no parameter or dim ${key} (it has ${has.join("; ")})`, undefined, closest(key, [...names, ...dims]) ? [`did you mean ${closest(key, [...names, ...dims])}?`] : []);
    }
  }
  const el = new Elaborator(models, model.name.name);
  const params = el.elaborateRoot(model, set);
  return { graph: el.builder.finish(), model, params, dims };
}

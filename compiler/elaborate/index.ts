// From a parsed program to a graph: picks the model, merges the standard library, applies
// `--set` overrides and elaborates.
import { readFileSync } from "node:fs";
import type { ModelDecl, Program } from "../../dsl/ast.ts";
import { Diagnostic } from "../../common/diagnostic.ts";
import { parseProgram } from "../../dsl/parse.ts";
import type { Graph } from "../ir/graph.ts";
import { Elaborator } from "./elaborator.ts";
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

export interface ElaborateOptions {
  model?: string;
  /** Overrides of compile-time model parameters (`--set D=1024`). */
  set?: ReadonlyMap<string, number>;
}

export interface Elaborated {
  graph: Graph;
  model: ModelDecl;
  /** The value of every compile-time parameter of the root model. */
  params: Map<string, Value>;
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
      throw new Diagnostic(`no model named ${options.model} in ${program.file}${hint ? ` (did you mean ${hint}?)` : ""}`);
    }
  } else {
    model = rootModel(program);
    if (!model) throw new Diagnostic(`${program.file} defines no model`);
  }
  const set = options.set ?? new Map();
  for (const key of set.keys()) {
    if (!model.params.some((p) => p.name.name === key)) {
      const names = model.params.map((p) => p.name.name);
      throw new Diagnostic(`model ${model.name.name} has no parameter ${key}${names.length ? ` (it has ${names.join(", ")})` : ""}`);
    }
  }
  const el = new Elaborator(models, model.name.name);
  const params = el.elaborateRoot(model, set);
  return { graph: el.builder.finish(), model, params };
}

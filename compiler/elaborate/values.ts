// Values during elaboration: compile-time numbers and lists, symbolic sizes, tensors (graph
// nodes), and sub-module instances. Only tensors reach the graph.
import type { ModelDecl } from "../../dsl/ast.ts";
import { Diagnostic, type SourceSpan } from "../../common/diagnostic.ts";
import type { Dim } from "../ir/types.ts";

/** A model instance declared with `sub`: the model and its compile-time arguments. */
export interface Instance {
  model: ModelDecl;
  args: { name?: string; value: Value; span: SourceSpan }[];
  /** Hierarchical prefix of its params, e.g. `layers.2.attn.`. */
  prefix: string;
  span: SourceSpan;
}

/** A `dim` of a sub-model: bound when an input shape mentions it. */
export interface DimVar {
  name: string;
  bound?: Dim;
}

export type Value =
  | { kind: "number"; value: number; integer: boolean }
  | { kind: "bool"; value: boolean }
  | { kind: "string"; value: string }
  | { kind: "dim"; dim: DimVar }
  | { kind: "list"; items: Value[] }
  | { kind: "tensor"; id: number }
  | { kind: "tuple"; items: Value[] }
  | { kind: "module"; instance: Instance }
  | { kind: "modules"; name: string; items: Instance[] };

export function describe(v: Value): string {
  switch (v.kind) {
    case "number":
      return v.integer ? `the integer ${v.value}` : `the number ${v.value}`;
    case "bool":
      return `${v.value}`;
    case "string":
      return `the string "${v.value}"`;
    case "dim":
      return `the dim ${v.dim.name}`;
    case "list":
      return "a list";
    case "tensor":
      return "a tensor";
    case "tuple":
      return `a tuple of ${v.items.length} values`;
    case "module":
      return `the sub-module ${v.instance.prefix.slice(0, -1)} (${v.instance.model.name.name})`;
    case "modules":
      return `the sub-module array ${v.name}`;
  }
}

export interface Binding {
  value: Value;
  /** `let` bindings may be rebound inside a `for` body; inputs, params and subs may not. */
  rebindable: boolean;
  span: SourceSpan;
}

export class Scope {
  private readonly vars = new Map<string, Binding>();
  constructor(
    readonly parent?: Scope,
    /** True for the body of a `for`, where `x = ...` may rebind an outer `let`. */
    readonly loopBody = false,
  ) {}

  lookup(name: string): Binding | undefined {
    return this.vars.get(name) ?? this.parent?.lookup(name);
  }

  define(name: string, binding: Binding): void {
    const prior = this.lookup(name);
    if (prior) throw new Diagnostic(`${name} is already defined`, binding.span, [`first defined at ${where(prior.span)}`]);
    this.vars.set(name, binding);
  }

  /** Rebinds an existing `let` from inside a loop body. */
  assign(name: string, value: Value, span: SourceSpan): void {
    let inLoop = false;
    for (let s: Scope | undefined = this; s; s = s.parent) {
      inLoop ||= s.loopBody;
      const b = s.vars.get(name);
      if (!b) continue;
      if (!b.rebindable) throw new Diagnostic(`${name} cannot be reassigned: only a let can be rebound`, span, [`defined at ${where(b.span)}`]);
      if (!inLoop) throw new Diagnostic(`${name} is already defined; only a for body may rebind a let (use a new name)`, span);
      b.value = value;
      return;
    }
    throw new Diagnostic(`unknown name ${name} (declare it with let first)`, span);
  }

  names(): string[] {
    return [...this.vars.keys(), ...(this.parent?.names() ?? [])];
  }
}

export function where(span: SourceSpan): string {
  const upTo = span.source.slice(0, span.start);
  const line = upTo.split("\n").length;
  const col = span.start - upTo.lastIndexOf("\n");
  return `${span.file}:${line}:${col}`;
}

/** Names longer than this get no "did you mean": edit distance costs the product of the lengths. */
const MAX_SUGGESTED_LENGTH = 64;

/** The closest candidate by edit distance, for "did you mean" notes. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  if (name.length > MAX_SUGGESTED_LENGTH) return undefined;
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const c of candidates) {
    // The distance is at least the difference in length: skip what cannot be closer.
    if (c.length > MAX_SUGGESTED_LENGTH || Math.abs(c.length - name.length) >= bestDistance) continue;
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = row[j];
      row[j] = next;
    }
  }
  return row[b.length];
}

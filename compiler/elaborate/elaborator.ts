// Elaboration: runs a model's statements at compile time, inlining sub-modules, unrolling
// loops and folding compile-time arithmetic, and builds the typed graph IR.
import type { Arg, Expr, ModelDecl, Stmt, TypeExpr } from "../../dsl/ast.ts";
import { Diagnostic, type SourceSpan } from "../../common/diagnostic.ts";
import { GraphBuilder } from "../ir/builder.ts";
import type { Attrs } from "../ir/graph.ts";
import { checkNodeSize } from "../ir/limits.ts";
import { OpError } from "../ir/registry.ts";
import { type Dim, type DType, formatType, isDType, isFloat, type TensorType } from "../ir/types.ts";
import { builtinNames, callBuiltin, isBuiltin } from "./builtins.ts";
import { closest, describe, type DimVar, type Instance, Scope, type Value, where } from "./values.ts";

const CONSTANTS: Record<string, Value> = {
  true: { kind: "bool", value: true },
  false: { kind: "bool", value: false },
  inf: { kind: "number", value: Infinity, integer: false },
  pi: { kind: "number", value: Math.PI, integer: false },
};

/**
 * How much work elaborating one model may do. Unrolling and instantiation multiply: a model
 * that instantiates the next twice, 26 levels deep, or two nested 100000-step loops, would run
 * for hours and exhaust memory. Real models stay far below: diff_lm.dt with L = 32 adds 1,543
 * nodes in 2,412 steps. Past a limit elaboration stops with a diagnostic that names it.
 */
export const ELABORATION_BUDGET = {
  /** Graph nodes added. */
  nodes: 200_000,
  /** Statements executed, loop iterations and sub-module calls, together. */
  steps: 1_000_000,
  /** Sub-module instances nested inside one another. */
  depth: 64,
};

/** A tensor type pattern: sizes, or `...` for any leading dims. */
type ShapeEntry = { ellipsis: true } | { ellipsis: false; dim: Dim | DimVar };

interface Frame {
  scope: Scope;
  prefix: string;
  /** The arguments of a sub-module call, consumed by its `input` statements; absent at the top. */
  callArgs?: { args: { name?: string; value: Value; span: SourceSpan }[]; used: Set<number>; span: SourceSpan; model: string };
  outputs: { name: string; value: Value }[];
  dims: { name: string; var: DimVar; span: SourceSpan }[];
  /** Root dims that some input shape uses: the others could never be bound at run time. */
  rootDimsUsed?: Set<string>;
}

/** A value given for a model parameter from outside (`--set`, the API): a number, a boolean or a string. */
export type ParamValue = number | boolean | string;

function paramValue(v: ParamValue): Value {
  if (typeof v === "number") return { kind: "number", value: v, integer: Number.isInteger(v) };
  return typeof v === "boolean" ? { kind: "bool", value: v } : { kind: "string", value: v };
}

/** Diagnostics that carry instantiation notes already: every enclosing instance adds its own. */
const instantiated = new WeakSet<Diagnostic>();

function within(inner: SourceSpan | undefined, outer: SourceSpan): boolean {
  return !!inner && inner.source === outer.source && inner.start >= outer.start && inner.end <= outer.end;
}

export class Elaborator {
  readonly builder: GraphBuilder;
  private readonly paramIds = new Map<string, number>();
  private readonly stack: string[] = [];
  private steps = 0;

  constructor(
    private readonly models: ReadonlyMap<string, ModelDecl>,
    graphName: string,
  ) {
    this.builder = new GraphBuilder(graphName);
  }

  // ---- models -------------------------------------------------------------

  /** Elaborates the root model: its inputs become graph inputs, its outputs graph outputs. */
  elaborateRoot(model: ModelDecl, overrides: ReadonlyMap<string, ParamValue>): Map<string, Value> {
    const scope = new Scope();
    for (const p of model.params) {
      const o = overrides.get(p.name.name);
      if (o !== undefined) scope.define(p.name.name, { value: paramValue(o), rebindable: false, span: p.name.span });
      else if (p.default) scope.define(p.name.name, { value: this.evaluate(p.default, { scope, prefix: "", outputs: [], dims: [] }), rebindable: false, span: p.name.span });
      else throw new Diagnostic(`model ${model.name.name} needs a value for ${p.name.name}: pass --set ${p.name.name}=VALUE`, p.name.span);
    }
    const frame: Frame = { scope, prefix: "", outputs: [], dims: [], rootDimsUsed: new Set() };
    this.runBody(model, frame);
    if (frame.outputs.length === 0) throw new Diagnostic(`model ${model.name.name} has no output`, model.name.span);
    for (const o of frame.outputs) this.builder.output(o.name, this.tensorId(o.value, model.name.span));
    const params = new Map<string, Value>();
    for (const p of model.params) params.set(p.name.name, scope.lookup(p.name.name)!.value);
    return params;
  }

  private runBody(model: ModelDecl, frame: Frame): void {
    if (this.stack.includes(model.name.name)) throw new Diagnostic(`model ${model.name.name} instantiates itself (${[...this.stack, model.name.name].join(" -> ")})`, model.name.span);
    this.stack.push(model.name.name);
    if (this.stack.length > ELABORATION_BUDGET.depth) throw this.overBudget(`${ELABORATION_BUDGET.depth} nested sub-module instances`, model.name.span);
    for (const stmt of model.body) this.statement(stmt, frame);
    this.stack.pop();
    for (const d of frame.dims) {
      const bound = frame.callArgs ? d.var.bound !== undefined : frame.rootDimsUsed?.has(d.name);
      if (!bound) throw new Diagnostic(`dim ${d.name} cannot be bound: no input shape uses it`, d.span);
    }
  }

  /**
   * Calls a sub-module instance: binds its inputs to `args` and returns its outputs. An error
   * inside the instantiated model (often the standard library) gains a note naming the `sub`
   * that instantiated it, so the notes lead down from the user's file to the failing line.
   */
  private callInstance(instance: Instance, args: Arg[], frame: Frame, span: SourceSpan): Value {
    try {
      return this.instantiate(instance, args, frame, span);
    } catch (e) {
      if (!(e instanceof Diagnostic) || !(instantiated.has(e) || within(e.span, instance.model.span))) throw e;
      const note = `in ${instance.model.name.name} as ${instance.prefix.slice(0, -1)}, instantiated at ${where(instance.span)}`;
      const noted = new Diagnostic(e.message, e.span, [note, ...e.notes]);
      instantiated.add(noted);
      throw noted;
    }
  }

  private instantiate(instance: Instance, args: Arg[], frame: Frame, span: SourceSpan): Value {
    const model = instance.model;
    this.step(span);
    const scope = new Scope();
    const inner: Frame = { scope, prefix: instance.prefix, outputs: [], dims: [] };
    // Compile-time parameters, evaluated where the `sub` was declared.
    const given = new Map<string, Value>();
    instance.args.forEach((a, i) => {
      if (a.name === undefined) {
        const p = model.params[i];
        if (!p) throw new Diagnostic(`${model.name.name} takes ${model.params.length} parameter${model.params.length === 1 ? "" : "s"}, got ${instance.args.length}`, a.span);
        given.set(p.name.name, a.value);
      } else {
        if (!model.params.some((p) => p.name.name === a.name)) {
          const hint = closest(a.name, model.params.map((p) => p.name.name));
          throw new Diagnostic(`${model.name.name} has no parameter ${a.name}`, a.span, hint ? [`did you mean ${hint}?`] : []);
        }
        if (given.has(a.name)) throw new Diagnostic(`parameter ${a.name} given twice`, a.span);
        given.set(a.name, a.value);
      }
    });
    for (const p of model.params) {
      const value = given.get(p.name.name) ?? (p.default ? this.evaluate(p.default, inner) : undefined);
      if (!value) throw new Diagnostic(`${model.name.name} needs parameter ${p.name.name}`, instance.span);
      scope.define(p.name.name, { value, rebindable: false, span: p.name.span });
    }
    inner.callArgs = {
      args: args.map((a) => ({ name: a.name, value: this.evaluate(a.value, frame), span: a.span })),
      used: new Set(),
      span,
      model: model.name.name,
    };
    this.runBody(model, inner);
    const unused = inner.callArgs.args.findIndex((_, i) => !inner.callArgs!.used.has(i));
    if (unused >= 0) {
      const a = inner.callArgs.args[unused];
      throw new Diagnostic(a.name ? `${model.name.name} has no input ${a.name}` : `${model.name.name} takes ${inner.callArgs.used.size} input${inner.callArgs.used.size === 1 ? "" : "s"}, got ${args.length}`, a.span);
    }
    if (inner.outputs.length === 0) throw new Diagnostic(`${model.name.name} has no output`, model.name.span);
    return inner.outputs.length === 1 ? inner.outputs[0].value : { kind: "tuple", items: inner.outputs.map((o) => o.value) };
  }

  // ---- statements ---------------------------------------------------------

  /** Counts one unit of work: a statement, a loop iteration or a sub-module instance. */
  private step(span: SourceSpan): void {
    if (++this.steps > ELABORATION_BUDGET.steps) throw this.overBudget(`${ELABORATION_BUDGET.steps.toLocaleString("en-US")} steps (statements run, loop iterations and sub-module instances)`, span);
  }

  private overBudget(limit: string, span: SourceSpan): Diagnostic {
    const path = this.stack.length > 6 ? [...this.stack.slice(0, 3), "...", ...this.stack.slice(-3)] : this.stack;
    return new Diagnostic(`elaborating model ${this.builder.name} exceeds the limit of ${limit}, in model ${this.stack.at(-1)}`, span, [
      `instantiated as ${path.join(" -> ")}`,
      "a loop or a chain of sub-modules multiplies the work; check the ranges and how often each model is instantiated",
    ]);
  }

  private statement(stmt: Stmt, frame: Frame): void {
    this.step(stmt.span);
    const { scope } = frame;
    switch (stmt.kind) {
      case "dim":
        for (const n of stmt.names) {
          // A root dim is a graph symbol; a sub-model's dim is bound by its inputs' shapes.
          const dim: DimVar = frame.callArgs ? { name: n.name } : { name: n.name, bound: n.name };
          if (!frame.callArgs) this.builder.dim(n.name);
          frame.dims.push({ name: n.name, var: dim, span: n.span });
          scope.define(n.name, { value: { kind: "dim", dim }, rebindable: false, span: n.span });
        }
        return;
      case "input":
        scope.define(stmt.name.name, { value: this.input(stmt.name.name, stmt.type, frame, stmt.span), rebindable: false, span: stmt.name.span });
        return;
      case "param": {
        const { dtype, entries } = this.typePattern(stmt.type, frame);
        const shape = entries.map((e) => {
          const d = e.ellipsis ? undefined : resolveDim(e.dim);
          if (typeof d !== "number") throw new Diagnostic(`param ${stmt.name.name} needs a static shape; sizes must be compile-time integers`, stmt.type.span);
          return d;
        });
        const name = frame.prefix + stmt.name.name;
        let id = this.paramIds.get(name);
        if (id === undefined) {
          const init = stmt.init ? this.initializer(stmt.init, frame, shape.includes(0)) : { init: "normal", init_args: [0, 0.02] };
          id = this.add("param", [], { name, dtype, shape, ...init }, stmt.span);
          this.paramIds.set(name, id);
        }
        scope.define(stmt.name.name, { value: { kind: "tensor", id }, rebindable: false, span: stmt.name.span });
        return;
      }
      case "output": {
        const value = this.evaluate(stmt.value, frame);
        const id = this.tensorId(value, stmt.value.span);
        if (stmt.type) this.checkType(`output ${stmt.name.name}`, this.builder.type(id), stmt.type, frame, stmt.value.span);
        if (frame.outputs.some((o) => o.name === stmt.name.name)) throw new Diagnostic(`output ${stmt.name.name} is declared twice`, stmt.name.span);
        frame.outputs.push({ name: stmt.name.name, value: { kind: "tensor", id } });
        return;
      }
      case "let": {
        const value = this.evaluate(stmt.value, frame);
        if (stmt.tuple) {
          if (value.kind !== "tuple" || value.items.length !== stmt.targets.length)
            throw new Diagnostic(`cannot unpack ${describe(value)} into ${stmt.targets.length} names`, stmt.value.span);
          stmt.targets.forEach((t, i) => scope.define(t.name, { value: value.items[i], rebindable: true, span: t.span }));
        } else {
          scope.define(stmt.targets[0].name, { value, rebindable: true, span: stmt.targets[0].span });
        }
        return;
      }
      case "assign":
        scope.assign(stmt.target.name, this.evaluate(stmt.value, frame), stmt.target.span);
        return;
      case "sub": {
        const model = this.models.get(stmt.model.name);
        if (!model) {
          const hint = closest(stmt.model.name, this.models.keys());
          throw new Diagnostic(`unknown model ${stmt.model.name}`, stmt.model.span, hint ? [`did you mean ${hint}?`] : []);
        }
        const instance = (prefix: string, s: Scope): Instance => ({
          model,
          args: stmt.args.map((a) => ({ name: a.name, value: this.compileTime(this.evaluate(a.value, { ...frame, scope: s }), a.value.span), span: a.span })),
          prefix,
          span: stmt.span,
        });
        if (stmt.array) {
          const indices = this.range(stmt.array.range, frame);
          const items = indices.map((i) => {
            this.step(stmt.span);
            const s = new Scope(scope);
            s.define(stmt.array!.index.name, { value: { kind: "number", value: i, integer: true }, rebindable: false, span: stmt.array!.index.span });
            return instance(`${frame.prefix}${stmt.name.name}.${i}.`, s);
          });
          scope.define(stmt.name.name, { value: { kind: "modules", name: stmt.name.name, items }, rebindable: false, span: stmt.name.span });
        } else {
          scope.define(stmt.name.name, { value: { kind: "module", instance: instance(`${frame.prefix}${stmt.name.name}.`, scope) }, rebindable: false, span: stmt.name.span });
        }
        return;
      }
      case "for":
        for (const i of this.range(stmt.range, frame)) {
          this.step(stmt.span);
          const body = new Scope(scope, true);
          body.define(stmt.index.name, { value: { kind: "number", value: i, integer: true }, rebindable: false, span: stmt.index.span });
          for (const s of stmt.body) this.statement(s, { ...frame, scope: body });
        }
        return;
    }
  }

  private range(r: { from: Expr; to: Expr }, frame: Frame): number[] {
    const from = this.integer(this.evaluate(r.from, frame), r.from.span);
    const to = this.integer(this.evaluate(r.to, frame), r.to.span);
    if (to - from > 100_000) throw new Diagnostic(`range ${from}..${to} is too long to unroll`, r.to.span);
    return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
  }

  /** A param's initialiser; one of an empty param is never drawn from, so any arguments do (Linear's 1/sqrt(IN) at IN = 0). */
  private initializer(expr: Expr, frame: Frame, empty: boolean): Attrs {
    const kinds: Record<string, [string, number]> = { normal: ["normal", 2], uniform: ["uniform", 2], constant: ["constant", 1], ones: ["constant", 0], zeros: ["constant", 0] };
    const fail = () => new Diagnostic("an initializer must be normal(mean, std), uniform(lo, hi), constant(value), ones() or zeros()", expr.span);
    if (expr.kind !== "call" || expr.callee.kind !== "name" || !Object.hasOwn(kinds, expr.callee.name)) throw fail();
    const [init, arity] = kinds[expr.callee.name];
    if (expr.args.length !== arity || expr.args.some((a) => a.name)) throw fail();
    const name = expr.callee.name;
    const args = expr.args.map((a) => {
      const v = this.number(this.evaluate(a.value, frame), a.value.span);
      if (!empty && !Number.isFinite(v)) throw new Diagnostic(`${name}: its arguments must be finite numbers, got ${v}`, a.value.span);
      return v;
    });
    if (!empty && init === "normal" && args[1] < 0) throw new Diagnostic(`normal: the standard deviation must not be negative, got ${args[1]}`, expr.args[1].value.span);
    if (!empty && init === "uniform" && args[0] > args[1]) throw new Diagnostic(`uniform: the low end ${args[0]} is above the high end ${args[1]}`, expr.span);
    if (name === "ones") args.push(1);
    if (name === "zeros") args.push(0);
    return { init, init_args: args };
  }

  // ---- inputs and types ---------------------------------------------------

  private input(name: string, type: TypeExpr, frame: Frame, span: SourceSpan): Value {
    const pattern = this.typePattern(type, frame);
    const call = frame.callArgs;
    if (!call) {
      const shape = pattern.entries.map((e) => {
        if (e.ellipsis) throw new Diagnostic(`input ${name} of the model being compiled needs a concrete shape, not ...`, type.span);
        if (typeof e.dim === "object") throw new Diagnostic(`internal: unbound dim in root input`, type.span);
        return e.dim;
      });
      for (const d of shape) if (typeof d === "string") frame.rootDimsUsed?.add(d);
      return { kind: "tensor", id: this.add("input", [], { name, dtype: pattern.dtype, shape }, span) };
    }
    let index = call.args.findIndex((a) => a.name === name);
    if (index < 0) index = call.args.findIndex((a, i) => a.name === undefined && !call.used.has(i));
    if (index < 0) throw new Diagnostic(`${call.model} needs input ${name}: ${formatPattern(pattern)}`, call.span);
    call.used.add(index);
    const arg = call.args[index];
    const id = this.tensorId(arg.value, arg.span);
    this.unify(`${call.model} input ${name}`, this.builder.type(id), pattern, arg.span);
    return { kind: "tensor", id };
  }

  private typePattern(type: TypeExpr, frame: Frame): { dtype: DType; entries: ShapeEntry[] } {
    const dtype = type.dtype.name;
    if (!isDType(dtype)) {
      const hint = closest(dtype, ["f32", "f16", "bf16", "i32", "i8", "u8", "bool"]);
      throw new Diagnostic(`unknown dtype ${dtype}`, type.dtype.span, hint ? [`did you mean ${hint}?`] : []);
    }
    const entries = type.dims.map((d, i): ShapeEntry => {
      if (d.kind === "ellipsis") {
        if (i !== 0) throw new Diagnostic("... may only stand first in a shape", d.span);
        return { ellipsis: true };
      }
      const v = this.evaluate(d.expr, frame, { allowUnboundDim: true });
      if (v.kind === "dim") return { ellipsis: false, dim: v.dim.bound ?? v.dim };
      const n = this.integer(v, d.expr.span);
      if (n < 0) throw new Diagnostic(`a size must not be negative, got ${n}`, d.expr.span);
      return { ellipsis: false, dim: n };
    });
    return { dtype, entries };
  }

  /** Matches an argument's type against an input pattern, binding the sub-model's dims. */
  private unify(what: string, actual: TensorType, pattern: { dtype: DType; entries: ShapeEntry[] }, span: SourceSpan): void {
    const fail = () => new Diagnostic(`${what} expects ${formatPattern(pattern)}, got ${formatType(actual)}`, span);
    if (actual.dtype !== pattern.dtype) throw fail();
    const ellipsis = pattern.entries.length > 0 && pattern.entries[0].ellipsis;
    const fixed = pattern.entries.filter((e) => !e.ellipsis) as { dim: Dim | DimVar }[];
    if (ellipsis ? actual.shape.length < fixed.length : actual.shape.length !== fixed.length) throw fail();
    const tail = actual.shape.slice(actual.shape.length - fixed.length);
    fixed.forEach((e, i) => {
      if (typeof e.dim === "object") {
        if (e.dim.bound === undefined) e.dim.bound = tail[i];
        else if (e.dim.bound !== tail[i]) throw fail();
      } else if (e.dim !== tail[i]) throw fail();
    });
  }

  private checkType(what: string, actual: TensorType, type: TypeExpr, frame: Frame, span: SourceSpan): void {
    this.unify(what, actual, this.typePattern(type, frame), span);
  }

  // ---- expressions --------------------------------------------------------

  evaluate(expr: Expr, frame: Frame, opts: { allowUnboundDim?: boolean } = {}): Value {
    switch (expr.kind) {
      case "number":
        return { kind: "number", value: expr.value, integer: expr.integer };
      case "string":
        return { kind: "string", value: expr.value };
      case "name": {
        const b = frame.scope.lookup(expr.name);
        if (b) {
          if (b.value.kind === "dim" && b.value.dim.bound === undefined && !opts.allowUnboundDim && frame.callArgs)
            throw new Diagnostic(`dim ${expr.name} is not bound yet: an input shape must use it first`, expr.span);
          return b.value;
        }
        if (Object.hasOwn(CONSTANTS, expr.name)) return CONSTANTS[expr.name];
        if (isDType(expr.name)) return { kind: "string", value: expr.name };
        if (isBuiltin(expr.name) || this.models.has(expr.name)) throw new Diagnostic(`${expr.name} is a function: call it with (...)`, expr.span);
        const hint = closest(expr.name, frame.scope.names());
        // In a shape, an unknown name is most often a size meant to be bound at run time.
        const dimHint = opts.allowUnboundDim ? [`a size bound at run time is declared in the model first: dim ${expr.name}`] : [];
        throw new Diagnostic(`unknown name ${expr.name}`, expr.span, [...(hint ? [`did you mean ${hint}?`] : []), ...dimHint]);
      }
      case "list":
        return { kind: "list", items: expr.items.map((i) => this.evaluate(i, frame, opts)) };
      case "unary": {
        const v = this.evaluate(expr.operand, frame);
        if (v.kind === "number") return { kind: "number", value: -v.value, integer: v.integer };
        return { kind: "tensor", id: this.add("neg", [this.tensorId(v, expr.operand.span)], {}, expr.span) };
      }
      case "binary":
        return this.binary(expr, frame);
      case "call": {
        if (expr.callee.kind === "name" && !frame.scope.lookup(expr.callee.name)) {
          const name = expr.callee.name;
          if (this.models.has(name)) throw new Diagnostic(`${name} is a model: declare an instance with \`sub NAME = ${name}(...)\` and call that`, expr.callee.span);
          if (!isBuiltin(name)) {
            const hint = closest(name, [...frame.scope.names(), ...builtinNames()]);
            throw new Diagnostic(`unknown function ${name}`, expr.callee.span, hint ? [`did you mean ${hint}?`] : []);
          }
          const args = expr.args.map((a) => ({ name: a.name, value: this.evaluate(a.value, frame), span: a.span }));
          return callBuiltin(this, name, args, expr.span);
        }
        const callee = this.evaluate(expr.callee, frame);
        if (callee.kind !== "module") throw new Diagnostic(`${describe(callee)} cannot be called`, expr.callee.span);
        return this.callInstance(callee.instance, expr.args, frame, expr.span);
      }
      case "index": {
        const target = this.evaluate(expr.target, frame);
        const index = this.evaluate(expr.index, frame);
        if (target.kind === "modules") {
          const i = this.integer(index, expr.index.span);
          const item = target.items[i];
          if (!item) throw new Diagnostic(`index ${i} is out of range for ${target.name} (${target.items.length} items)`, expr.index.span);
          return { kind: "module", instance: item };
        }
        if (target.kind === "tuple" || target.kind === "list") {
          const i = this.integer(index, expr.index.span);
          const item = target.items[i < 0 ? i + target.items.length : i];
          if (!item) throw new Diagnostic(`index ${i} is out of range (${target.items.length} items)`, expr.index.span);
          return item;
        }
        if (target.kind === "tensor") {
          if (index.kind !== "tensor") throw new Diagnostic(`a tensor is indexed by an integer tensor (a gather), got ${describe(index)}`, expr.index.span);
          return { kind: "tensor", id: this.add("gather", [target.id, index.id], { axis: 0 }, expr.span) };
        }
        throw new Diagnostic(`${describe(target)} cannot be indexed`, expr.target.span);
      }
    }
  }

  private binary(expr: Extract<Expr, { kind: "binary" }>, frame: Frame): Value {
    const l = this.evaluate(expr.left, frame);
    const r = this.evaluate(expr.right, frame);
    if (l.kind === "number" && r.kind === "number") return foldBinary(expr.op, l, r, expr.span);
    const op = BINARY_OPS[expr.op];
    if (expr.op === "@") {
      if (l.kind !== "tensor" || r.kind !== "tensor") throw new Diagnostic(`@ multiplies two tensors, got ${describe(l)} and ${describe(r)}`, expr.span);
    }
    const [a, b] = this.tensorOperands([l, r], [expr.left.span, expr.right.span]);
    return { kind: "tensor", id: this.add(op, [a, b], {}, expr.span) };
  }

  // ---- helpers shared with builtins ------------------------------------------

  /** Adds a node, turning a shape-rule failure into a diagnostic at `span`. */
  add(op: string, operands: number[], attrs: Attrs, span: SourceSpan): number {
    let id: number;
    try {
      id = this.builder.add(op, operands, attrs, span);
    } catch (e) {
      if (e instanceof OpError) throw new Diagnostic(e.message, span);
      throw e;
    }
    checkNodeSize(this.builder.nodes[id]);
    if (id >= ELABORATION_BUDGET.nodes) throw this.overBudget(`${ELABORATION_BUDGET.nodes.toLocaleString("en-US")} graph nodes`, span);
    return id;
  }

  tensorId(v: Value, span: SourceSpan): number {
    if (v.kind === "tensor") return v.id;
    throw new Diagnostic(`expected a tensor, got ${describe(v)}`, span);
  }

  /**
   * Turns values into operands of one op: compile-time numbers become constants of the
   * tensors' dtype, so `x * 0.5` stays in x's dtype.
   */
  tensorOperands(values: Value[], spans: SourceSpan[]): number[] {
    const first = values.find((v) => v.kind === "tensor");
    const dtype: DType = first && first.kind === "tensor" ? this.builder.type(first.id).dtype : values.every((v) => v.kind === "number" && v.integer) ? "i32" : "f32";
    return values.map((v, i) => {
      if (v.kind === "number" || v.kind === "bool") {
        const value = v.kind === "bool" ? +v.value : v.value;
        // A fractional number never becomes an integer constant: it stays f32, and an op that
        // needs matching dtypes says so (dequantize's scale is f32 beside an i8 operand).
        const cdtype = v.kind === "bool" ? "bool" : v.kind === "number" && !v.integer && !isFloat(dtype) ? "f32" : dtype;
        return this.add("const", [], { value, dtype: cdtype }, spans[i]);
      }
      return this.tensorId(v, spans[i]);
    });
  }

  compileTime(v: Value, span: SourceSpan): Value {
    if (v.kind === "tensor" || v.kind === "tuple") throw new Diagnostic(`a model parameter must be a compile-time value, got ${describe(v)}`, span);
    return v;
  }

  integer(v: Value, span: SourceSpan): number {
    if (v.kind === "number" && v.integer) return v.value;
    throw new Diagnostic(`expected a compile-time integer, got ${describe(v)}`, span);
  }

  number(v: Value, span: SourceSpan): number {
    if (v.kind === "number") return v.value;
    throw new Diagnostic(`expected a compile-time number, got ${describe(v)}`, span);
  }
}

function resolveDim(d: Dim | DimVar): Dim | undefined {
  return typeof d === "object" ? d.bound : d;
}

function formatPattern(p: { dtype: DType; entries: ShapeEntry[] }): string {
  return `${p.dtype}[${p.entries.map((e) => (e.ellipsis ? "..." : typeof e.dim === "object" ? (e.dim.bound ?? e.dim.name) : e.dim)).join(", ")}]`;
}

const BINARY_OPS: Record<string, string> = { "+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "**": "pow", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne" };

function foldBinary(op: string, l: { value: number; integer: boolean }, r: { value: number; integer: boolean }, span: SourceSpan): Value {
  const integer = l.integer && r.integer;
  const num = (value: number, isInt = integer): Value => ({ kind: "number", value, integer: isInt });
  const bool = (value: boolean): Value => ({ kind: "bool", value });
  switch (op) {
    case "+":
      return num(l.value + r.value);
    case "-":
      return num(l.value - r.value);
    case "*":
      return num(l.value * r.value);
    case "/":
      if (integer) {
        if (r.value === 0) throw new Diagnostic(`division by zero: ${l.value} / 0`, span);
        if (l.value % r.value !== 0) throw new Diagnostic(`${l.value} / ${r.value} does not divide exactly; compile-time integer division must be exact`, span, ["write a float (e.g. 2.0) for a fractional result, or floor(a / b.0)"]);
        return num(l.value / r.value);
      }
      return num(l.value / r.value, false);
    case "**":
      return num(l.value ** r.value, integer && r.value >= 0);
    case "@":
      throw new Diagnostic("@ multiplies two tensors, not numbers", span);
    case "<":
      return bool(l.value < r.value);
    case "<=":
      return bool(l.value <= r.value);
    case ">":
      return bool(l.value > r.value);
    case ">=":
      return bool(l.value >= r.value);
    case "==":
      return bool(l.value === r.value);
    default:
      return bool(l.value !== r.value);
  }
}

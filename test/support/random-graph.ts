// The shared fast-check generator of well-typed graphs, for property tests of the parser,
// the passes and the backends. A graph is built from a list of random steps, each trying one
// op on values already available; a step whose op does not fit is skipped, so shrinking a
// failing case removes steps and inputs and still leaves a valid graph.
//
// Values stay finite on inputs in [-2, 2]: every value carries a bound on its magnitude, and
// a step that could exceed BOUND is skipped; log, sqrt, rsqrt, div and pow only ever see
// operands of the form |x| + 1.
import fc from "fast-check";
import { GraphBuilder } from "../../compiler/ir/builder.ts";
import { type Attrs, type Graph, inputNodes, nodeName } from "../../compiler/ir/graph.ts";
import { roundScalar } from "../../compiler/ir/numeric.ts";
import { getOp, normalizeAttrs, OpError } from "../../compiler/ir/registry.ts";
import { type HostTensor, tensor } from "../../compiler/ir/tensor.ts";
import { type Dim, isInteger, resolveShape, sameType, type TensorType } from "../../compiler/ir/types.ts";
import { initWeights } from "../../runtime/init.ts";
import { Rng } from "../../runtime/random.ts";

export interface RandomGraphOptions {
  /** Upper bound on the number of nodes (default 24). */
  maxNodes?: number;
  /** Whether inputs may have the symbolic size N (default false). */
  dims?: boolean;
  /**
   * Whether steps may build attention: the attention and diffattn ops, and the same written
   * by hand with primitives, sometimes with a flaw that makes it something else (default false).
   */
  attention?: boolean;
  /**
   * Whether steps may build the standard library's layers on weights (params): Linear
   * (x @ transpose(W), with or without a bias), RMSNorm, SwiGLU and a one-head attention
   * block with its q, k, v projections (default false). The params are part of the case.
   */
  layers?: boolean;
  /** Leave out `where` on data comparisons, whose result jumps when rounding moves a value across the threshold (default false). */
  continuous?: boolean;
  /**
   * Graphs for inputs with special values (seededInputs' `edgeValues`): no bound is kept (NaN
   * and ±Infinity are the point), log, sqrt, rsqrt, div and pow take exact operands as they
   * are, the unary steps also draw sin and cos, a cast step converts f32 to i32 or bool and
   * back, and there are no matmul, attention or layer steps (default false).
   */
  edgeValues?: boolean;
  /** The largest size of an input's last axis (default MAX_DIM). */
  maxInner?: number;
}

/** Largest magnitude a value may reach; far inside f32 and f16 range. */
const BOUND = 1e4;
/** The size assumed for N when bounding sums; arbitraryDims binds N to at most this. */
const MAX_DIM = 5;
const MAX_RANK = 4;
const MAX_ELEMENTS = 2000;

const UNARY = ["neg", "abs", "tanh", "sigmoid", "relu", "gelu", "gelu_tanh", "silu", "exp"] as const;
/** What the unary steps draw from with edge values: their argument's range is not kept. */
const EDGE_UNARY = [...UNARY, "sin", "cos"] as const;
/** The largest |x| edge-value graphs give sin and cos. */
const SIN_COS_RANGE = 1e9;
const OF_POSITIVE = ["log", "sqrt", "rsqrt"] as const;
const BINARY = ["add", "sub", "mul", "maximum", "minimum"] as const;
const REDUCTIONS = ["sum", "mean", "max", "min"] as const;
const COMPARISONS = ["eq", "ne", "lt", "le", "gt", "ge"] as const;
const STEPS = ["unary", "binary", "const", "reduce", "softmax", "transpose", "reshape", "matmul", "slice", "concat", "where", "ofPositive", "div", "pow", "broadcast", "attention", "layer", "cast"] as const;
/** The steps of edgeValues graphs: elementwise ops, reductions and softmax, over a few layouts. */
const EDGE_STEPS: readonly StepKind[] = ["unary", "binary", "const", "reduce", "softmax", "transpose", "broadcast", "where", "ofPositive", "div", "pow", "cast"];
const LAYERS = ["linear", "linearBias", "rmsnorm", "swiglu", "attentionBlock"] as const;
/** Weights are uniform in [-WEIGHT, WEIGHT]. */
const WEIGHT = 0.5;
/**
 * The forms the attention step builds: the ops, hand-written attention and diff attention, and
 * hand-written diff attention with one flaw each (the softmax over queries, λ inside the
 * softmax, two different scales, λ varying along the keys, the two maps over different keys).
 */
const ATTENTION_FORMS = ["op", "diffOp", "hand", "handDiff", "axisFlaw", "lambdaInside", "twoScales", "lambdaPerKey", "otherKeys"] as const;
const FLAWS = ATTENTION_FORMS.slice(4);

type StepKind = (typeof STEPS)[number];
interface Step {
  kind: StepKind;
  seed: number;
  value: number;
}

interface Value {
  id: number;
  /** |value| <= bound elementwise. */
  bound: number;
}

const sizeOf = (d: Dim) => (typeof d === "number" ? d : MAX_DIM);
const elements = (shape: readonly Dim[]) => shape.reduce<number>((n, d) => n * sizeOf(d), 1);

class RandomGraph {
  readonly b = new GraphBuilder("random");
  readonly values: Value[] = [];
  private rng = new Rng(0);
  private params = 0;

  constructor(
    readonly maxNodes: number,
    /** RandomGraphOptions.edgeValues. */
    private readonly edgeValues = false,
  ) {}

  /** Whether a value of this bound may join the pool: any value, for edge values. */
  private fits(bound: number): boolean {
    return this.edgeValues || bound <= BOUND;
  }

  type(v: Value): TensorType {
    return this.b.type(v.id);
  }

  /** The result type, or undefined when the op does not accept these operands. */
  private infer(op: string, operands: number[], attrs: Attrs): TensorType | undefined {
    const def = getOp(op);
    if (!def) return undefined;
    try {
      return def.infer(
        operands.map((o) => this.b.type(o)),
        normalizeAttrs(def, attrs),
      );
    } catch (e) {
      if (e instanceof OpError) return undefined;
      throw e;
    }
  }

  /** Adds the node when its op accepts the operands and its result is small enough. */
  private add(op: string, operands: number[], attrs: Attrs = {}): number | undefined {
    const t = this.infer(op, operands, attrs);
    if (!t || t.shape.length > MAX_RANK || elements(t.shape) > MAX_ELEMENTS) return undefined;
    return this.b.add(op, operands, attrs);
  }

  /** Adds a value to the pool if its bound is acceptable. */
  private keep(id: number | undefined, bound: number): void {
    if (id !== undefined && this.fits(bound)) this.values.push({ id, bound });
  }

  input(name: string, shape: Dim[]): void {
    for (const d of shape) if (typeof d === "string") this.b.dim(d);
    this.keep(this.b.add("input", [], { name, dtype: "f32", shape }), 2);
  }

  /** A random value, favouring recent ones so that chains form. */
  private pick(): Value {
    const n = this.values.length;
    return this.values[n - 1 - Math.min(this.rng.int(n), this.rng.int(n))];
  }
  private choose<T>(xs: readonly T[]): T {
    return xs[this.rng.int(xs.length)];
  }
  private constant(value: number): Value {
    return { id: this.b.add("const", [], { value, dtype: "f32" }), bound: Math.abs(value) };
  }
  /**
   * Whether every backend computes node `id` bit for bit as the interpreter does (inputs,
   * consts, copies, casts, integer results, and ops exact in their dtype, of such values). With
   * edge values only these are compared and cast to integers: those results jump where rounding
   * moves a value across a threshold (an f32 exp that overflows where the interpreter's float64
   * one does not makes a subnormal sigmoid 0, which cast to bool turns 1 into 0).
   */
  private exactValue(id: number): boolean {
    const node = this.b.nodes[id];
    if (node.op === "input" || node.op === "const") return true;
    const def = getOp(node.op);
    const operandsExact = node.operands.every((o) => this.exactValue(o));
    const dtype = node.operands.length ? this.b.type(node.operands[0]).dtype : node.type.dtype;
    const exactOp = node.op === "cast" || def?.pattern === "injective" || node.op === "max" || node.op === "min" || isInteger(node.type.dtype) || def?.exact?.(dtype) === true;
    return exactOp && operandsExact;
  }

  /**
   * x with finite magnitudes above BOUND made ±Infinity, for sums of edge values: a sum in
   * another order than the interpreter's cancels huge terms another way ([1e30, 2, -1e30, 2]
   * is 2 in order and 0 in pairs), an error relative to the terms' magnitudes, which no
   * tolerance relative to the result covers; infinities sum alike in any order.
   */
  private hugeToInfinity(x: Value): number | undefined {
    const abs = this.add("abs", [x.id]);
    const huge = abs === undefined ? undefined : this.add("gt", [abs, this.constant(BOUND).id]);
    const infinite = this.add("mul", [x.id, this.constant(Infinity).id]);
    return huge === undefined || infinite === undefined ? undefined : this.add("where", [huge, infinite, x.id]);
  }

  /** x held to [-limit, limit] (NaN stays NaN). */
  private clamp(x: Value, limit: number): number | undefined {
    const below = this.add("minimum", [x.id, this.constant(limit).id]);
    return below === undefined ? undefined : this.add("maximum", [below, this.constant(-limit).id]);
  }

  /**
   * |x| + 1: a positive operand for log, sqrt, rsqrt, a divisor, a base of pow. With edge
   * values, x itself where it is exact: near 0 these ops amplify a rounding without bound (the
   * interpreter's subnormal sigmoid is f32's 0 within an ulp, and log makes that -Infinity).
   */
  private absPlusOne(x: Value): Value | undefined {
    if (this.edgeValues && this.exactValue(x.id)) return x;
    const abs = this.add("abs", [x.id]);
    if (abs === undefined) return undefined;
    const sum = this.add("add", [abs, this.constant(1).id]);
    return sum === undefined ? undefined : { id: sum, bound: x.bound + 1 };
  }

  /** Takes one step, undoing it if the graph would pass maxNodes. */
  step(step: Step): void {
    const before = this.b.nodes.length;
    this.tryStep(step);
    if (this.b.nodes.length > this.maxNodes) {
      this.b.nodes.length = before;
      while (this.values.length && this.values[this.values.length - 1].id >= before) this.values.pop();
    }
  }

  private tryStep({ kind, seed, value }: Step): void {
    this.rng = new Rng(seed);
    const a = this.pick();
    const t = this.type(a);
    const rank = t.shape.length;
    switch (kind) {
      case "unary": {
        const op = this.choose(this.edgeValues ? EDGE_UNARY : UNARY);
        const bound = op === "exp" ? Math.exp(a.bound) : op === "tanh" || op === "sigmoid" || op === "sin" || op === "cos" ? 1 : a.bound;
        // sin and cos of f32 take |x| <= 1e9: past 3.37e9 the JS backend's f32 kernels reduce x
        // by π/2 without the bits that need (backends/js/wasm-math.ts says so).
        // exp multiplies its argument's error by |x|: with edge values, an argument that carries
        // a rounding of its own is held to log(BOUND), as bounds hold it otherwise.
        const x = op === "sin" || op === "cos" ? this.clamp(a, SIN_COS_RANGE) : op === "exp" && this.edgeValues && !this.exactValue(a.id) ? this.add("minimum", [a.id, this.constant(Math.log(BOUND)).id]) : a.id;
        if (this.fits(bound) && x !== undefined) this.keep(this.add(op, [x]), bound);
        return;
      }
      case "ofPositive": {
        const x = this.absPlusOne(a);
        const op = this.choose(OF_POSITIVE);
        if (x) this.keep(this.add(op, [x.id]), op === "log" ? Math.log(x.bound) : op === "sqrt" ? Math.sqrt(x.bound) : 1);
        return;
      }
      case "binary": {
        const op = this.choose(BINARY);
        let b = this.pick();
        if (!this.infer(op, [a.id, b.id], {})) b = this.constant(value);
        const bound = op === "mul" ? a.bound * b.bound : op === "add" || op === "sub" ? a.bound + b.bound : Math.max(a.bound, b.bound);
        if (this.fits(bound)) this.keep(this.add(op, [a.id, b.id]), bound);
        return;
      }
      case "div": {
        const b = this.pick();
        if (!this.infer("div", [a.id, b.id], {})) return;
        const divisor = this.absPlusOne(b);
        if (divisor) this.keep(this.add("div", [a.id, divisor.id]), a.bound);
        return;
      }
      case "pow": {
        const bound = (a.bound + 1) ** Math.abs(value);
        if (!this.fits(bound)) return;
        const base = this.absPlusOne(a);
        if (base) this.keep(this.add("pow", [base.id, this.constant(value).id]), bound);
        return;
      }
      case "const":
        this.values.push(this.constant(value));
        return;
      case "reduce": {
        const op = this.choose(REDUCTIONS);
        // A random subset of the axes; none means all of them.
        const axes = [...t.shape.keys()].filter(() => this.rng.int(2) === 1).map((ax) => (this.rng.int(2) ? ax - rank : ax));
        const reduced = axes.length ? axes.map((ax) => t.shape.at(ax)!) : t.shape;
        const bound = op === "sum" ? a.bound * elements(reduced) : a.bound;
        const x = this.edgeValues && (op === "sum" || op === "mean") ? this.hugeToInfinity(a) : a.id;
        if (x !== undefined) this.keep(this.add(op, [x], { axes, keepdims: this.rng.int(2) === 1 }), bound);
        return;
      }
      case "softmax":
        if (rank > 0) this.keep(this.add("softmax", [a.id], { axis: this.rng.int(2 * rank) - rank }), 1);
        return;
      case "transpose": {
        const perm = [...t.shape.keys()];
        for (let i = perm.length - 1; i > 0; i--) {
          const j = this.rng.int(i + 1);
          [perm[i], perm[j]] = [perm[j], perm[i]];
        }
        // Sometimes the default, which swaps the last two axes.
        this.keep(this.add("transpose", [a.id], { perm: rank >= 2 && this.rng.int(3) === 0 ? [] : perm }), a.bound);
        return;
      }
      case "reshape": {
        this.keep(this.add("reshape", [a.id], { shape: this.factorization(t.shape) }), a.bound);
        return;
      }
      case "matmul": {
        // Any value whose shape fits, else a @ a^T, which always does from rank 2.
        const fits = this.values.filter((b) => this.infer("matmul", [a.id, b.id], {}));
        let b: Value | undefined = fits.length ? this.choose(fits) : undefined;
        if (!b && rank >= 2) {
          const at = this.add("transpose", [a.id]);
          if (at !== undefined) b = { id: at, bound: a.bound };
        }
        if (!b) return;
        const inner = sizeOf(t.shape.at(-1) ?? 1);
        const bound = a.bound * b.bound * inner;
        if (bound <= BOUND) this.keep(this.add("matmul", [a.id, b.id]), bound);
        return;
      }
      case "slice": {
        const axes = [...t.shape.keys()].filter((ax) => typeof t.shape[ax] === "number" && (t.shape[ax] as number) > 1);
        if (!axes.length) return;
        const axis = this.choose(axes);
        const size = t.shape[axis] as number;
        const step = this.rng.int(4) === 0 ? -1 : 1 + this.rng.int(2);
        const start = this.rng.int(2 * size) - size;
        const end = this.rng.int(2 * size + 2) - size - 1;
        const attrs = { axis: this.rng.int(2) ? axis - rank : axis, start, end, step };
        const out = this.infer("slice", [a.id], attrs);
        // Zero-size results are legal but make for dull tests.
        if (out && elements(out.shape) > 0) this.keep(this.add("slice", [a.id], attrs), a.bound);
        return;
      }
      case "concat": {
        if (rank === 0) return;
        const axis = this.rng.int(rank);
        const others = this.values.filter((b) => this.infer("concat", [a.id, b.id], { axis }));
        const parts = [a, ...Array.from({ length: 1 + this.rng.int(2) }, () => (others.length ? this.choose(others) : a))];
        this.keep(
          this.add(
            "concat",
            parts.map((p) => p.id),
            { axis },
          ),
          Math.max(...parts.map((p) => p.bound)),
        );
        return;
      }
      case "where": {
        let b = this.pick();
        if (!this.infer("add", [a.id, b.id], {})) b = this.constant(value);
        const comparison = this.choose(COMPARISONS);
        const c = this.rng.int(2) ? b : this.constant(value);
        if (this.edgeValues && !(this.exactValue(a.id) && this.exactValue(c.id))) return;
        const cond = this.add(comparison, [a.id, c.id]);
        if (cond !== undefined) this.keep(this.add("where", [cond, a.id, b.id]), Math.max(a.bound, b.bound));
        return;
      }
      case "attention":
        this.attention(a, value);
        return;
      case "layer":
        this.layer(a);
        return;
      case "broadcast": {
        const shape = [1 + this.rng.int(3), ...t.shape.map((d) => (d === 1 ? 1 + this.rng.int(4) : d))];
        this.keep(this.add("broadcast", [a.id], { shape }), a.bound);
        return;
      }
      case "cast": {
        if (t.dtype === "f32" && !this.exactValue(a.id)) return;
        // f32 to i32 (saturating) or bool (x != 0); i32 and bool back to f32.
        const dtype = t.dtype === "f32" ? this.choose(["i32", "bool"] as const) : "f32";
        this.keep(this.add("cast", [a.id], { dtype }), t.dtype === "f32" ? 2 ** 31 : a.bound);
        return;
      }
    }
  }

  /**
   * Attention with a as the queries [..., N, d] and keys [..., M, d] picked from the pool;
   * `value` is λ. The result is bounded by (1 + |λ|) max |v| (λ per key: by its bound).
   */
  private attention(a: Value, value: number): void {
    const t = this.type(a);
    const d = t.shape.at(-1);
    // A symbolic head width only reaches the hand-written forms, which the passes must then leave alone.
    if (t.shape.length < 2 || d === undefined || (typeof d === "number" && d > 8)) return;
    const keysLike = this.values.filter((b) => {
      const s = this.type(b).shape;
      return s.length >= 2 && s.at(-1) === d;
    });
    const k = this.choose(keysLike);
    // The fusable forms as often as all the flawed ones together.
    const form = this.rng.int(2) ? this.choose(ATTENTION_FORMS.slice(0, 4)) : this.choose(FLAWS);
    const lam = this.constant(value);
    const scale = 0.25 + this.rng.int(4) / 4;
    const causal = this.rng.int(2) === 1;
    const bound = (weight: number, ...vs: Value[]) => (1 + weight) * Math.max(...vs.map((x) => x.bound));
    if (form === "op") {
      // One head, or two of half width; k doubles as v.
      if (typeof d !== "number") return;
      const heads = d % 2 === 0 && this.rng.int(2) ? 2 : 1;
      this.keep(this.add("attention", [a.id, k.id, k.id], { heads, causal, scale: this.rng.int(2) ? 0 : scale }), k.bound);
      return;
    }
    if (form === "diffOp") {
      // One head: subheads of width d/2, values of width d.
      if (typeof d === "number" && d % 2 === 0) this.keep(this.add("diffattn", [a.id, k.id, k.id, lam.id], { heads: 1, causal, scale: this.rng.int(2) ? 0 : scale }), bound(Math.abs(value), k));
      return;
    }
    const [n, m] = [t.shape.at(-2)!, this.type(k).shape.at(-2)!];
    const scores = (q: Value, keys: Value, s: number) => {
      const kt = this.add("transpose", [keys.id], { perm: [] });
      const product = kt === undefined ? undefined : this.add("matmul", [q.id, kt]);
      // The scale as a product, or as a quotient by its inverse.
      const divide = this.rng.int(2) === 1;
      const scaled = product === undefined ? undefined : this.add(divide ? "div" : "mul", [product, this.constant(divide ? 1 / s : s).id]);
      if (scaled === undefined || !causal) return scaled;
      // Key j is visible to query i when j <= i + M - N, as the decompositions write it.
      const rows = this.b.add("iota", [], { shape: [n, m], axis: 0 });
      const cols = this.b.add("iota", [], { shape: [n, m], axis: 1 });
      const offset = this.b.add("sub", [this.b.add("numel", [], { shape: [m] }), this.b.add("numel", [], { shape: [n] })]);
      const mask = this.b.add("le", [cols, this.b.add("add", [rows, offset])]);
      return this.add("where", [mask, scaled, this.constant(-Infinity).id]);
    };
    const softmax = (x: number | undefined, axis = -1) => (x === undefined ? undefined : this.add("softmax", [x], { axis }));
    if (form === "hand") {
      const p = softmax(scores(a, k, scale));
      if (p !== undefined) this.keep(this.add("matmul", [p, k.id]), k.bound);
      return;
    }
    const q2 = this.choose(this.values.filter((b) => sameType(this.type(b), t)));
    const sameKeys = keysLike.filter((b) => sameType(this.type(b), this.type(k)));
    const k2 = this.choose(form === "otherKeys" ? keysLike : sameKeys);
    // Values of width 2d, as diffattn's.
    const v = this.add("concat", [k.id, this.choose(sameKeys).id], { axis: -1 });
    const p1 = softmax(scores(a, k, scale), form === "axisFlaw" ? -2 : -1);
    let p2: number | undefined;
    if (form === "lambdaInside") {
      const s2 = scores(q2, k2, scale);
      p2 = softmax(s2 === undefined ? undefined : this.add("mul", [s2, lam.id]));
    } else {
      p2 = softmax(scores(q2, k2, form === "twoScales" ? scale + 0.125 : scale));
    }
    // λ per key: a [M] vector, the first column of k.
    const column = form === "lambdaPerKey" ? this.add("slice", [k.id], { axis: -1, start: 0, end: 1, step: 1 }) : undefined;
    const weight = column === undefined ? lam.id : this.add("reshape", [column], { shape: [m] });
    if (v === undefined || p1 === undefined || p2 === undefined || weight === undefined) return;
    const weighted = this.add("mul", [weight, p2]);
    const diff = weighted === undefined ? undefined : this.add("sub", [p1, weighted]);
    // Over the queries, the weights of one key sum to at most N per map.
    const rows = form === "axisFlaw" ? sizeOf(n) : 1;
    if (diff !== undefined) this.keep(this.add("matmul", [diff, v]), rows * bound(Math.max(Math.abs(value), k.bound), ...sameKeys));
  }

  /** A weight of `shape`, uniform in [-WEIGHT, WEIGHT], named as a submodule's param. */
  private param(shape: number[], init: "uniform" | "constant" = "uniform"): number {
    const name = `layers.${this.params++}.weight`;
    return this.b.add("param", [], { name, dtype: "f32", shape, init, init_args: init === "uniform" ? [-WEIGHT, WEIGHT] : [1] });
  }

  /** Linear(in, out) on x, as the standard library writes it: x @ transpose(weight) (+ bias). */
  private linear(x: Value, out: number, bias = false): Value | undefined {
    const inner = this.type(x).shape.at(-1);
    if (typeof inner !== "number" || this.type(x).shape.length < 2) return undefined;
    const w = this.add("transpose", [this.param([out, inner])]);
    const y = w === undefined ? undefined : this.add("matmul", [x.id, w]);
    if (y === undefined) return undefined;
    const bound = x.bound * WEIGHT * inner;
    if (!bias) return { id: y, bound };
    const sum = this.add("add", [y, this.param([out])]);
    return sum === undefined ? undefined : { id: sum, bound: bound + WEIGHT };
  }

  /** One of the standard library's layers on a, its weights drawn as params. */
  private layer(a: Value): void {
    const width = this.type(a).shape.at(-1);
    if (typeof width !== "number") return;
    const out = 1 + this.rng.int(4);
    const kind = this.choose(LAYERS);
    const keep = (v: Value | undefined) => v && this.keep(v.id, v.bound);
    switch (kind) {
      case "linear":
      case "linearBias":
        return keep(this.linear(a, out, kind === "linearBias"));
      case "rmsnorm":
        // |x / rms(x)| <= sqrt(width), times a weight of 1.
        return this.keep(this.add("rmsnorm", [a.id, this.param([width], "constant")]), Math.sqrt(width));
      case "swiglu": {
        const gate = this.linear(a, out);
        const up = this.linear(a, out);
        const g = gate && this.add("silu", [gate.id]);
        const h = g === undefined || !up ? undefined : this.add("mul", [g, up.id]);
        if (h === undefined || gate!.bound * up!.bound > BOUND) return;
        return keep(this.linear({ id: h, bound: gate!.bound * up!.bound }, width));
      }
      case "attentionBlock": {
        const [q, k, v] = [this.linear(a, out), this.linear(a, out), this.linear(a, out)];
        if (!q || !k || !v) return;
        const y = this.add("attention", [q.id, k.id, v.id], { heads: 1, causal: this.rng.int(2) === 1 });
        const flat = y === undefined ? undefined : this.add("reshape", [y], { shape: this.type(q).shape });
        if (flat !== undefined) keep(this.linear({ id: flat, bound: v.bound }, width));
        return;
      }
    }
  }

  /** The same size as `shape` under a random shape: static sizes re-factored, symbols kept. */
  private factorization(shape: readonly Dim[]): Dim[] {
    let rest = shape.reduce<number>((n, d) => (typeof d === "number" ? n * d : n), 1);
    const out: Dim[] = [];
    while (rest > 1) {
      const divisors = [...Array(rest).keys()].slice(2).filter((k) => rest % k === 0);
      const f = this.choose([...divisors, rest]);
      out.push(f);
      rest /= f;
    }
    for (const d of shape) if (typeof d === "string") out.splice(this.rng.int(out.length + 1), 0, d);
    for (let ones = this.rng.int(3) - 1; ones > 0 && out.length < MAX_RANK; ones--) out.splice(this.rng.int(out.length + 1), 0, 1);
    return out;
  }

  finish(outputPicks: number[]): Graph {
    const n = this.values.length;
    // The last value first, so that most steps are live.
    const chosen = [this.values[n - 1], ...outputPicks.slice(1).map((p) => this.values[n - 1 - (p % n)])];
    chosen.forEach((v, i) => this.b.output(`y${i}`, v.id));
    return this.b.finish();
  }
}

/** Well-typed random graphs of f32 inputs and elementwise, reduction, shape and matmul ops. */
export function arbitraryGraph(options: RandomGraphOptions = {}): fc.Arbitrary<Graph> {
  const maxNodes = options.maxNodes ?? 24;
  const size = options.dims
    ? fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 1, max: MAX_DIM }) }, { weight: 1, arbitrary: fc.constant("N") })
    : fc.integer({ min: 1, max: MAX_DIM });
  const inner = fc.integer({ min: 1, max: options.maxInner ?? MAX_DIM });
  const shape =
    options.maxInner === undefined
      ? fc.array<Dim>(size, { maxLength: 3 })
      : fc.tuple(fc.array<Dim>(size, { maxLength: 2 }), fc.option(inner, { freq: 4 })).map(([outer, last]) => (last === null ? outer : [...outer, last]));
  const kinds = options.edgeValues ? EDGE_STEPS : STEPS.filter((kind) => (kind !== "attention" || options.attention) && (kind !== "layer" || options.layers) && kind !== "cast");
  const step = fc.record({
    kind: fc.constantFrom(...kinds.filter((kind) => kind !== "where" || !options.continuous)),
    seed: fc.nat(),
    value: fc.double({ min: -2, max: 2, noNaN: true }),
  });
  return fc
    .tuple(fc.array(shape, { minLength: 1, maxLength: 3 }), fc.array(step, { maxLength: maxNodes, size: "medium" }), fc.array(fc.nat(), { minLength: 1, maxLength: 3 }))
    .map(([inputs, steps, outputs]) => {
      const g = new RandomGraph(maxNodes, options.edgeValues);
      inputs.forEach((s, i) => g.input(`x${i}`, s));
      for (const s of steps) g.step(s);
      return g.finish(outputs);
    });
}

/** Sizes 1..5 for the graph's symbolic dims. */
export function arbitraryDims(graph: Graph): fc.Arbitrary<Map<string, number>> {
  return fc
    .array(fc.integer({ min: 1, max: MAX_DIM }), { minLength: graph.dims.length, maxLength: graph.dims.length })
    .map((sizes) => new Map(graph.dims.map((d, i) => [d, sizes[i]])));
}

/**
 * The special values edge-value inputs mix in: NaN, the infinities, signed zeros, huge
 * magnitudes (far past what exp and products keep finite, but no sum of MAX_ELEMENTS of them
 * overflows f32 as a float64 sum would not), exp's overflow and underflow edges, tiny
 * magnitudes, and subnormals (the least one included).
 */
export const EDGE_VALUES = [NaN, Infinity, -Infinity, 0, -0, 1e30, -1e30, -1e20, 88.8, -104, 1e-30, -1e-20, 1e-40, -1e-39, 2 ** -149];

/**
 * Inputs for the graph, uniform in [-2, 2] and rounded to their dtype (meant for the float
 * inputs random graphs have), each drawn from its own stream of `seed`; with `edgeValues`,
 * about one element in three is one of EDGE_VALUES instead.
 */
export function seededInputs(graph: Graph, dims: ReadonlyMap<string, number>, seed: number, edgeValues = false): Map<string, HostTensor> {
  const inputs = new Map<string, HostTensor>();
  for (const node of inputNodes(graph)) {
    const name = nodeName(node);
    const t = tensor(node.type.dtype, resolveShape(node.type.shape, dims));
    const rng = Rng.forKey(seed, `input:${name}`);
    for (let i = 0; i < t.data.length; i++) {
      const special = edgeValues && rng.int(3) === 0;
      t.data[i] = roundScalar(t.dtype, special ? EDGE_VALUES[rng.int(EDGE_VALUES.length)] : 4 * rng.uniform() - 2);
    }
    inputs.set(name, t);
  }
  return inputs;
}

export function arbitraryInputs(graph: Graph, dims: ReadonlyMap<string, number>, edgeValues = false): fc.Arbitrary<Map<string, HostTensor>> {
  return fc.nat().map((seed) => seededInputs(graph, dims, seed, edgeValues));
}

export interface GraphCase {
  graph: Graph;
  dims: Map<string, number>;
  inputs: Map<string, HostTensor>;
  /** The weights of its params, drawn as each param's initialiser says (empty without `layers`). */
  params: Map<string, HostTensor>;
}

/** A random graph with sizes for its dims, inputs and weights: what an equivalence test needs. */
export function arbitraryGraphCase(options: RandomGraphOptions = {}): fc.Arbitrary<GraphCase> {
  return arbitraryGraph(options).chain((graph) =>
    arbitraryDims(graph).chain((dims) =>
      fc.tuple(arbitraryInputs(graph, dims, options.edgeValues), fc.nat()).map(([inputs, seed]) => ({ graph, dims, inputs, params: initWeights(graph, seed) })),
    ),
  );
}

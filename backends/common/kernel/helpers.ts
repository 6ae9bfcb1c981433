// Helper functions written once in the kernel IR and rendered by every language that has no
// native spelling for them: 16-bit float conversions, rounding, quantisation, saturation,
// integer power and division, erf. Each computes bit for bit what the interpreter's
// definition computes (compiler/ir/numeric.ts, compiler/ir/scalar.ts's MATH); the tests run
// the rendered JS of each against that definition.
import { bin, call, cast, lit, ref, type ScalarExpr, type ScalarType, select } from "../../../compiler/ir/scalar.ts";
import { INT_RANGE } from "../../../compiler/ir/numeric.ts";
import { type HelperFunction, I, int, StmtBuilder } from "./ir.ts";

const U = (value: number) => lit(value, "u32");
const F = (value: number) => lit(value, "f64");
const u = (name: string) => ref(name, "u32");
const f = (name: string) => ref(name, "f64");
const apply = (fn: string, type: ScalarType, ...args: ScalarExpr[]): ScalarExpr => ({ kind: "apply", fn, args, type });
const and = (a: ScalarExpr, b: ScalarExpr) => bin("&", a, b);
const or = (a: ScalarExpr, b: ScalarExpr) => bin("|", a, b);
const shr = (a: ScalarExpr, b: ScalarExpr) => bin(">>", a, b);
const shl = (a: ScalarExpr, b: ScalarExpr) => bin("<<", a, b);
const eq = (a: ScalarExpr, b: ScalarExpr) => bin("==", a, b);
const isOdd = (x: ScalarExpr) => bin("!=", and(x, U(1)), U(0));

function helper(name: string, params: [string, ScalarType][], returns: ScalarType, body: (b: StmtBuilder) => void): HelperFunction {
  const b = new StmtBuilder();
  body(b);
  return { name, params: params.map(([n, type]) => ({ name: n, type })), returns, body: b.statements };
}

/** The f32 bits of a value: the value rounded to f32 first, as hardware conversions do. */
const f32BitsOf = (x: ScalarExpr): ScalarExpr => ({ kind: "bitcast", to: "u32", a: cast("f32", x) });

/** IEEE half bits of x, round to nearest even (x first rounded to f32). */
const f16Bits = helper("f16Bits", [["x", "f64"]], "u32", (b) => {
  const bits = b.let("bits", "u32", f32BitsOf(f("x")));
  const sign = b.let("sign", "u32", and(shr(bits, U(16)), U(0x8000)));
  const exponent = b.let("exponent", "u32", and(shr(bits, U(23)), U(0xff)));
  const mant = b.var("mant", "u32", and(bits, U(0x7fffff)));
  b.if(eq(exponent, U(0xff)), () => b.return(or(or(sign, U(0x7c00)), select(bin("!=", mant, U(0)), U(0x200), U(0)))));
  const e = b.var("e", "i32", bin("-", cast("i32", exponent), int(127 - 15)));
  b.if(bin(">=", e, int(0x1f)), () => b.return(or(sign, U(0x7c00))));
  b.if(bin("<=", e, int(0)), () => {
    // A subnormal half (or zero): shift the implicit bit in and round.
    b.if(bin("<", e, int(-10)), () => b.return(sign));
    b.assign("mant", or(mant, U(0x800000)));
    const shift = b.let("shift", "u32", cast("u32", bin("-", int(14), e)));
    const half = b.let("half", "u32", shl(U(1), bin("-", shift, U(1))));
    const rest = b.let("rest", "u32", and(mant, bin("-", shl(U(1), shift), U(1))));
    const m = b.var("m", "u32", shr(mant, shift));
    b.if(bin("||", bin(">", rest, half), bin("&&", eq(rest, half), isOdd(m))), () => b.assign("m", bin("+", m, U(1))));
    b.return(or(sign, m));
  });
  const rest = b.let("rest", "u32", and(mant, U(0x1fff)));
  const m = b.var("m", "u32", shr(mant, U(13)));
  b.if(bin("||", bin(">", rest, U(0x1000)), bin("&&", eq(rest, U(0x1000)), isOdd(m))), () => {
    b.assign("m", bin("+", m, U(1)));
    b.if(eq(m, U(0x400)), () => {
      b.assign("m", U(0));
      b.assign("e", bin("+", e, int(1)));
      b.if(bin(">=", e, int(0x1f)), () => b.return(or(sign, U(0x7c00))));
    });
  });
  b.return(or(or(sign, shl(cast("u32", e), U(10))), m));
});

const f16FromBits = helper("f16FromBits", [["h", "u32"]], "f64", (b) => {
  const h = u("h");
  const sign = b.let("sign", "f64", select(bin("!=", and(h, U(0x8000)), U(0)), F(-1), F(1)));
  const exponent = b.let("exponent", "u32", and(shr(h, U(10)), U(0x1f)));
  const mant = b.let("mant", "f64", cast("f64", and(h, U(0x3ff))));
  b.if(eq(exponent, U(0)), () => b.return(bin("*", bin("*", sign, mant), F(2 ** -24))));
  b.if(eq(exponent, U(0x1f)), () => b.return(select(bin("!=", mant, F(0)), F(NaN), bin("*", sign, F(Infinity)))));
  b.return(bin("*", bin("*", sign, bin("+", F(1), bin("/", mant, F(1024)))), call("pow", F(2), cast("f64", bin("-", cast("i32", exponent), int(15))))));
});

/** bfloat16 bits of x: the top half of its f32 bits, round to nearest even; NaN stays a quiet NaN. */
const bf16Bits = helper("bf16Bits", [["x", "f64"]], "u32", (b) => {
  const bits = b.let("bits", "u32", f32BitsOf(f("x")));
  b.if(bin("&&", eq(and(bits, U(0x7f800000)), U(0x7f800000)), bin("!=", and(bits, U(0x7fffff)), U(0))), () => b.return(or(shr(bits, U(16)), U(0x40))));
  const rounded = b.let("rounded", "u32", bin("+", bin("+", bits, U(0x7fff)), and(shr(bits, U(16)), U(1))));
  b.return(and(shr(rounded, U(16)), U(0xffff)));
});

const bf16FromBits = helper("bf16FromBits", [["b", "u32"]], "f64", (b) =>
  b.return(cast("f64", { kind: "bitcast", to: "f32", a: shl(and(u("b"), U(0xffff)), U(16)) })),
);

/** Nearest integer, ties to the even one (2.5 -> 2, 3.5 -> 4, -2.5 -> -2); NaN and ±inf unchanged. */
const roundHalfEven = helper("roundHalfEven", [["x", "f64"]], "f64", (b) => {
  const r = b.let("r", "f64", call("floor", f("x")));
  const frac = b.let("frac", "f64", bin("-", f("x"), r));
  const odd = bin("!=", bin("-", r, bin("*", F(2), call("floor", bin("/", r, F(2))))), F(0));
  b.return(select(bin("||", bin(">", frac, F(0.5)), bin("&&", eq(frac, F(0.5)), odd)), bin("+", r, F(1)), r));
});


const saturating = (dtype: "i32" | "i8" | "u8") =>
  helper(`saturate_${dtype}`, [["x", "f64"]], "i32", (b) => {
    const [lo, hi] = INT_RANGE[dtype]!;
    const x = f("x");
    b.return(select(call("isnan", x), int(0), cast("i32", call("min", F(hi), call("max", F(lo), call("trunc", x))))));
  });

const quantizing = (dtype: "i8" | "u8") =>
  helper(`quantize_${dtype}`, [["x", "f64"], ["scale", "f64"], ["zeroPoint", "i32"]], "i32", (b) => {
    const [lo, hi] = INT_RANGE[dtype]!;
    const zeroPoint = I("zeroPoint");
    const v = b.let("v", "f64", bin("+", apply("roundHalfEven", "f64", bin("/", f("x"), f("scale"))), cast("f64", zeroPoint)));
    b.if(call("isnan", v), () => b.return(zeroPoint));
    b.return(cast("i32", select(bin("<", v, F(lo)), F(lo), select(bin(">", v, F(hi)), F(hi), v))));
  });

/** i32 power by squaring with wrapping products; a negative exponent truncates 1/a^-b. */
const ipow = helper("ipow", [["a", "i32"], ["b", "i32"]], "i32", (b) => {
  b.if(bin("<", I("b"), int(0)), () => b.return(cast("i32", call("trunc", call("pow", cast("f64", I("a")), cast("f64", I("b")))))));
  const result = b.var("result", "i32", int(1));
  const base = b.var("base", "i32", I("a"));
  const e = b.var("e", "i32", I("b"));
  b.while(bin(">", e, int(0)), () => {
    b.if(eq(bin("&", e, int(1)), int(1)), () => b.assign("result", call("imul", result, base)));
    b.assign("base", call("imul", base, base));
    b.assign("e", bin(">>", e, int(1)));
  });
  b.return(result);
});

/** Integer division truncating toward zero; by zero gives 0 (the quotient is exact in float64). */
const idiv = helper("idiv", [["a", "i32"], ["b", "i32"]], "i32", (b) =>
  b.return(select(eq(I("b"), int(0)), int(0), cast("i32", call("trunc", bin("/", cast("f64", I("a")), cast("f64", I("b"))))))),
);

/** erf to float64 accuracy: a series for small |x|, a continued fraction for the tail of erfc. */
const erf = helper("erf", [["x", "f64"]], "f64", (b) => {
  const x = f("x");
  const ax = b.let("ax", "f64", call("abs", x));
  const sign = select(bin(">", x, F(0)), F(1), select(bin("<", x, F(0)), F(-1), x));
  b.if(bin("<", ax, F(2.5)), () => {
    const term = b.var("term", "f64", x);
    const total = b.var("total", "f64", x);
    const x2 = b.let("x2", "f64", bin("*", x, x));
    b.loop("n", int(200), "serial", (n) => {
      const nf = cast("f64", n);
      b.assign("term", bin("*", term, bin("/", { kind: "unary", op: "neg", a: x2 }, nf)));
      const add = b.let("add", "f64", bin("/", term, bin("+", bin("*", F(2), nf), F(1))));
      b.assign("total", bin("+", total, add));
      b.if(bin("<", call("abs", add), bin("*", F(1e-17), call("abs", total))), () => b.break());
    }, int(1));
    b.return(bin("*", F(2 / Math.sqrt(Math.PI)), total));
  });
  b.if(bin(">", ax, F(6)), () => b.return(sign));
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))), n from 60 down to 1.
  const frac = b.var("frac", "f64", ax);
  b.loop("k", int(60), "serial", (k) => b.assign("frac", bin("+", ax, bin("/", bin("/", cast("f64", bin("-", int(60), k)), F(2)), frac))));
  const erfc = b.let("erfc", "f64", bin("/", bin("/", call("exp", bin("*", { kind: "unary", op: "neg", a: ax }, ax)), F(Math.sqrt(Math.PI))), frac));
  b.return(bin("*", sign, bin("-", F(1), erfc)));
});

/**
 * sin and cos of an f32, for languages whose own are not accurate (WGSL's are promised to
 * 2^-11 absolute error in [-π, π] only): x = k·π/2 + r with π/2 split in three parts
 * (Cody-Waite) so that r is exact for |x| up to about 10^5, then the minimax polynomials of
 * Cephes' sinf and cosf on [-π/4, π/4], the quadrant k mod 4 choosing which and its sign.
 */
const trig = (name: "sinAccurate" | "cosAccurate") =>
  helper(name, [["x", "f64"]], "f64", (b) => {
    const x = f("x");
    const k = b.let("k", "f64", call("floor", bin("+", bin("*", x, F(0.6366197723675814)), F(0.5))));
    const r = b.let("r", "f64", bin("-", bin("-", bin("-", x, bin("*", k, F(1.5703125))), bin("*", k, F(4.837512969970703125e-4))), bin("*", k, F(7.549789948768648e-8))));
    const r2 = b.let("r2", "f64", bin("*", r, r));
    const sinR = b.let("sinR", "f64", bin("+", r, bin("*", bin("*", r, r2), bin("+", F(-1.6666654611e-1), bin("*", r2, bin("+", F(8.3321608736e-3), bin("*", r2, F(-1.9515295891e-4))))))));
    const cosR = b.let("cosR", "f64", bin("+", bin("-", F(1), bin("*", F(0.5), r2)), bin("*", bin("*", r2, r2), bin("+", F(4.166664568298827e-2), bin("*", r2, bin("+", F(-1.388731625493765e-3), bin("*", r2, F(2.443315711809948e-5))))))));
    // The quadrant: k mod 4, for negative k too; cos(x) = sin(x + π/2) is quadrant + 1.
    const q = b.let("q", "i32", bin("&", bin("+", cast("i32", k), int(name === "cosAccurate" ? 1 : 0)), int(3)));
    const value = select(eq(bin("&", q, int(1)), int(0)), sinR, cosR);
    b.return(select(bin(">=", q, int(2)), { kind: "unary", op: "neg", a: value }, value));
  });

const LIBRARY: HelperFunction[] = [f16Bits, f16FromBits, bf16Bits, bf16FromBits, roundHalfEven, saturating("i32"), saturating("i8"), saturating("u8"), quantizing("i8"), quantizing("u8"), ipow, idiv, erf, trig("sinAccurate"), trig("cosAccurate")];
const BY_NAME = new Map(LIBRARY.map((h) => [h.name, h]));

/** The helper function called `name`, or undefined if it is not in the library. */
export function helperFunction(name: string): HelperFunction | undefined {
  return BY_NAME.get(name);
}

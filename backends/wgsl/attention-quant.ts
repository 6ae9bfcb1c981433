// The WGSL quantised attention rows (qflash_attention, qflash_diffattn; what they compute is
// stated once, in compiler/ir/ops/attention-quant.ts, and the level rule is rendered from there).
// The flash kernel's invocation per query row keeps its q in registers and reads K and V from
// their buffers, no tiles and no barriers: a group's logit step needs the whole group's scores,
// the probabilities need the row's final max and sum, and a block is skipped on its largest
// probability, so scores are computed again where they are used (the CUDA kernel does the same).
// Walks: (0) logits per row: each map's largest |logit|; (1) each map's online max and sum of
// the logits' levels; (2) per key block, the block's steps, the skip rule, then every kept key's
// weight Σ_p ±λ_p · level(p_j) times V's levels into one accumulator. Everything in f32, so a
// value on a near-tie of the rounding may take the neighbouring level (test/harness/tolerance.ts).
//
// Integer dot products: only where both factors of the P·V product are levels, target "probs"
// with v_bits > 0. A probability level (0..2^bits - 1) and a V level (±(2^(v_bits-1) - 1)) are
// integers; with one step per group (a row, or a key block) and one per V column,
// Σ_j (l_j·step)(u_jc·vStep_c) = step·vStep_c·Σ_j l_j·u_jc, and the integer sum is exact (kept
// under 2^31: at most CHUNK keys of 255·127 before it is added to the f32 accumulator). Four
// keys at a time: dot4I8Packed where the device has the language feature
// packed_4x8_integer_dot_product, else dot() of vec4<i32>; the same integers either way. 8-bit
// probability levels reach 255, past i8: the packed form takes l - 128 and adds 128·Σ u. The
// logits (the paper's target) are never integer products: q and k are not quantised, and the
// softmax of levels is not a level; a V column whose largest |v| is not finite has no levels,
// so such a row takes the f32 product.
import { type AttentionQuant, quantizeValue, quantLevel, quantLevels, type QuantArith } from "../../compiler/ir/ops/attention-quant.ts";
import { wgslLanguage } from "./language.ts";

/** Keys whose integer products one i32 sum holds: 16384 · 255 · 127 < 2^31. */
const CHUNK = 16384;

export interface QuantRowContext {
  maps: number;
  d4: number;
  dv4: number;
  /** The index of map p's k subhead at key j (j clamped to the keys), as code of the kernel. */
  kAt(p: number, j: string): string;
  /** vec4 t of the k subhead starting at index `at` (zeros past the head width). */
  k(at: string, t: number): string;
  /** vec4 c of the head's v at key j (zeros past dv; j clamped to the keys). */
  v(j: string, c: number): string;
  scale: string;
  /** λ of the row (diffattn), as code. */
  lambda?: string;
  /** Spell the integer dot of four levels with dot4I8Packed (the language feature). */
  packedDot: boolean;
}

const f32 = (x: number) => wgslLanguage.literal(x, "f32");
const INF = "bitcast<f32>(F32_INF)";

/** The level rule over f32 scalars; WGSL's round() rounds half to even. */
const SCALAR: QuantArith<string> = {
  num: f32,
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b) => `(${a} / ${b})`,
  min: (a, b) => `min(${a}, ${b})`,
  max: (a, b) => `max(${a}, ${b})`,
  sqrt: (a) => `sqrt(${a})`,
  roundHalfEven: (a) => `round(${a})`,
};
/** The same over vec4<f32> (V's four columns at once). */
const VECTOR: QuantArith<string> = { ...SCALAR, num: (c) => `vec4<f32>(${f32(c)})` };

/** Whether the row's P·V product is over integer levels (see the file comment). */
export function integerProducts(quant: AttentionQuant): boolean {
  return quant.target === "probs" && quant.vBits > 0;
}

/**
 * The row's statements (after q is in registers, `seen` and `keys` known), leaving what the
 * flash kernel's epilogue reads: acc (the row's Σ_j w_j v_j, λ and 1/l applied) and each map's
 * sum (0: the map saw no key).
 */
export function quantizedRow(quant: AttentionQuant, r: QuantRowContext): string[] {
  const L: string[] = [];
  const maps = Array.from({ length: r.maps }, (_, p) => p);
  const columns = Array.from({ length: r.dv4 }, (_, c) => c);
  const logits = quant.target === "logits";
  const probs = quant.target === "probs";
  const logitLevels = quantLevels(quant.bits, true);
  const probLevels = quantLevels(quant.bits, false);
  const vLevels = quantLevels(quant.vBits, true);
  const stepOf = (amax: string, levels: number) => `select(0.0, ${amax} / ${f32(levels)}, ${amax} > 0.0 && ${amax} < ${INF})`;
  /** x at its level, or as it is where the group's step is 0. */
  const level = (x: string, step: string, levels: number, signed: boolean) => `select(${x}, ${quantizeValue(SCALAR, x, step, levels, signed)}, ${step} > 0.0)`;
  const score = (p: number, j: string) => `score${p}(${r.kAt(p, j)})`;
  const logit = (p: number, j: string) => (logits ? level(score(p, j), `step[${p}]`, logitLevels, true) : score(p, j));
  const prob = (p: number, j: string) => `(exp(${logit(p, j)} - mx[${p}]) * inv[${p}])`;
  /** A group's largest |x| over keys [from, to), NaN sticking as in the interpreter. */
  const largest = (name: string, from: string, to: string, x: (p: number, j: string) => string) => {
    L.push(`var ${name} = array<f32, ${r.maps}>();`);
    L.push(`for (var j = ${from}; j < ${to}; j++) {`);
    maps.forEach((p) => L.push(`  { let a = abs(${x(p, "j")}); ${name}[${p}] = select(${name}[${p}], a, a > ${name}[${p}] || a != a); }`));
    L.push("}");
  };
  const blockSteps = () => {
    if (!(logits && quant.granularity === "block")) return;
    largest("amax", "j0", "j1", score);
    maps.forEach((p) => L.push(`step[${p}] = ${stepOf(`amax[${p}]`, logitLevels)};`));
  };
  const blocks = (body: () => void) => {
    L.push(`for (var j0 = 0i; j0 < seen; j0 += ${quant.block}i) {`);
    L.push(`let j1 = min(j0 + ${quant.block}i, seen);`);
    blockSteps();
    body();
    L.push("}");
  };

  // V's levels per column over all the keys of the batch entry; vExact: every column has levels.
  if (quant.vBits > 0) {
    L.push(`var vStep = array<vec4<f32>, ${r.dv4}>();`);
    L.push("var vExact = true;");
    columns.forEach((c) => {
      L.push(`{ var amax = vec4<f32>(0.0); for (var j = 0i; j < keys; j++) { let a = abs(${r.v("j", c)}); amax = select(amax, a, (a > amax) | (a != a)); }`);
      L.push(`  vStep[${c}] = select(vec4<f32>(0.0), amax / ${VECTOR.num(vLevels)}, (amax > vec4<f32>(0.0)) & (amax < vec4<f32>(${INF}))); vExact = vExact && all(amax < vec4<f32>(${INF})); }`);
    });
  }
  const value = (j: string, c: number) =>
    quant.vBits > 0 ? `select(${r.v(j, c)}, ${quantizeValue(VECTOR, r.v(j, c), `vStep[${c}]`, vLevels, true)}, vStep[${c}] > vec4<f32>(0.0))` : r.v(j, c);

  // (0) Logit steps per row.
  L.push(`var step = array<f32, ${r.maps}>();`);
  if (logits && quant.granularity === "row") {
    largest("rowMax", "0i", "seen", score);
    maps.forEach((p) => L.push(`step[${p}] = ${stepOf(`rowMax[${p}]`, logitLevels)};`));
  }
  // (1) Each map's max and sum over the logits (levels), online.
  L.push(`var mx = array<f32, ${r.maps}>(${maps.map(() => `-${INF}`).join(", ")});`);
  L.push(`var sum = array<f32, ${r.maps}>();`);
  blocks(() => {
    L.push("for (var j = j0; j < j1; j++) {");
    maps.forEach((p) => {
      L.push(`  { let s = ${logit(p, "j")}; let next = max(mx[${p}], s);`);
      L.push(`    sum[${p}] = select(sum[${p}] * exp(mx[${p}] - next) + exp(s - next), 0.0, next == -${INF}); mx[${p}] = next; }`);
    });
    L.push("}");
  });
  // (2) The weights: probabilities (the row's largest is exp(0)/l), skipped blocks, levels.
  L.push(`var inv = array<f32, ${r.maps}>(${maps.map((p) => `select(0.0, 1.0 / sum[${p}], sum[${p}] > 0.0)`).join(", ")});`);
  const sign = (p: number) => (p === 0 ? "" : `-${r.lambda!} * `);
  L.push(`var pStep = array<f32, ${r.maps}>();`);
  if (probs && quant.granularity === "row") maps.forEach((p) => L.push(`pStep[${p}] = ${stepOf(`inv[${p}]`, probLevels)};`));
  L.push(`var acc = array<vec4<f32>, ${r.dv4}>();`);
  const floatProducts = () => {
    L.push("for (var j = j0; j < j1; j++) {");
    L.push(`  let w = ${maps.map((p) => `${sign(p)}${probs ? level(prob(p, "j"), `pStep[${p}]`, probLevels, false) : prob(p, "j")}`).join(" + ")};`);
    columns.forEach((c) => L.push(`  acc[${c}] = fma(vec4<f32>(w), ${value("j", c)}, acc[${c}]);`));
    L.push("}");
  };
  const integers = () => {
    // Integer levels of four keys (0 past the block, where their factors meet nothing).
    const intLevel = (x: string, step: string, levels: number, signed: boolean, vector: boolean) => {
      const A = vector ? VECTOR : SCALAR;
      const zero = vector ? "vec4<i32>(0i)" : "0i";
      return `select(${zero}, ${vector ? "vec4<i32>" : "i32"}(${quantLevel(A, x, step, levels, signed)}), ${step} > ${vector ? "vec4<f32>(0.0)" : "0.0"})`;
    };
    const idot = (a: string, b: string) => {
      if (!r.packedDot) return `dot(${a}, ${b})`;
      return quant.bits === 8 ? `(dot4I8Packed(pack4xI8(${a} - vec4<i32>(128i)), pack4xI8(${b})) + 128i * dot4I8Packed(pack4xI8(${b}), 0x01010101u))` : `dot4I8Packed(pack4xI8(${a}), pack4xI8(${b}))`;
    };
    L.push(`for (var c0 = j0; c0 < j1; c0 += ${CHUNK}i) {`);
    L.push(`  let c1 = min(c0 + ${CHUNK}i, j1);`);
    L.push(`  var dots = array<vec4<i32>, ${r.maps * r.dv4}>();`);
    L.push("  for (var j = c0; j < c1; j += 4i) {");
    const keys = [0, 1, 2, 3].map((e) => `(j + ${e}i)`);
    maps.forEach((p) => L.push(`    let l${p} = vec4<i32>(${keys.map((j) => `select(0i, ${intLevel(prob(p, j), `pStep[${p}]`, probLevels, false, false)}, ${j} < c1)`).join(", ")});`));
    columns.forEach((c) => {
      L.push("    {");
      keys.forEach((j, e) => L.push(`      let u${e} = select(vec4<i32>(0i), ${intLevel(r.v(j, c), `vStep[${c}]`, vLevels, true, true)}, ${j} < c1);`));
      // The column-major 4×4 of V's levels: column x of the four keys.
      const column = (x: string) => `vec4<i32>(u0.${x}, u1.${x}, u2.${x}, u3.${x})`;
      maps.forEach((p) => L.push(`      dots[${p * r.dv4 + c}] += vec4<i32>(${["x", "y", "z", "w"].map((x) => idot(`l${p}`, column(x))).join(", ")});`));
      L.push("    }");
    });
    L.push("  }");
    columns.forEach((c) => L.push(`  acc[${c}] += (${maps.map((p) => `vec4<f32>(dots[${p * r.dv4 + c}]) * (${sign(p)}pStep[${p}])`).join(" + ")}) * vStep[${c}];`));
    L.push("}");
  };
  blocks(() => {
    const sparse = quant.threshold > 0 || (probs && quant.granularity === "block");
    if (sparse) largest("pmax", "j0", "j1", prob);
    // Skipped: every map's probabilities in the block are under the threshold (NaN is not).
    if (quant.threshold > 0) L.push(`if (${maps.map((p) => `pmax[${p}] < ${f32(quant.threshold)}`).join(" && ")}) { continue; }`);
    if (probs && quant.granularity === "block") maps.forEach((p) => L.push(`pStep[${p}] = ${stepOf(`pmax[${p}]`, probLevels)};`));
    if (integerProducts(quant)) {
      L.push("if (vExact) {");
      integers();
      L.push("} else {");
      floatProducts();
      L.push("}");
    } else floatProducts();
  });
  return L;
}

/**
 * The module-scope declarations the row needs: the row's q (`qName`, private: per invocation,
 * filled by the kernel) and map p's score function, q·k · scale for the k subhead at `at`.
 */
export function scoreFunctions(r: QuantRowContext, qName: string): string[] {
  return [
    `var<private> ${qName}: array<vec4<f32>, ${r.maps * r.d4}>;`,
    ...Array.from({ length: r.maps }, (_, p) =>
      [
        `fn score${p}(at: i32) -> f32 {`,
        "  var dots = vec4<f32>(0.0);",
        ...Array.from({ length: r.d4 }, (_, t) => `  dots = fma(${qName}[${p * r.d4 + t}], ${r.k("at", t)}, dots);`),
        `  return ((dots.x + dots.y) + (dots.z + dots.w)) * ${r.scale};`,
        "}",
      ].join("\n"),
    ),
  ];
}

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
// under 2^31: at most CHUNK keys of 255·127 before it is added to the f32 accumulator).
// dot4I8Packed, four keys' levels packed in the bytes of a word, where the device has the
// language feature packed_4x8_integer_dot_product, else key by key in vec4<i32>; the same
// integers either way. 8-bit
// probability levels reach 255, past i8: the packed form takes l - 128 and adds 128·Σ u. The
// logits (the paper's target) are never integer products: q and k are not quantised, and the
// softmax of levels is not a level; a V column whose largest |v| is not finite has no levels,
// so such a row takes the f32 product.
import { WGSL_FLOATS } from "./arith.ts";
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
const SCALAR: QuantArith<string> = { ...WGSL_FLOATS, roundHalfEven: (a) => `round(${a})` };
/** The same over vec4<f32> (V's four columns at once). */
const VECTOR: QuantArith<string> = { ...SCALAR, num: (c) => `vec4<f32>(${f32(c)})` };

/** Whether the row's P·V product is over integer levels (see the file comment). */
export function integerProducts(quant: AttentionQuant): boolean {
  return quant.target === "probs" && quant.vBits > 0;
}

/** The quantities with levels: the logits (signed), the probabilities (unsigned), V (signed, four columns at once). */
const KINDS = [
  { name: "logit", type: "f32", signed: true, A: SCALAR, bits: (q: AttentionQuant) => (q.target === "logits" ? q.bits : 0) },
  { name: "prob", type: "f32", signed: false, A: SCALAR, bits: (q: AttentionQuant) => (q.target === "probs" ? q.bits : 0) },
  { name: "value", type: "vec4<f32>", signed: true, A: VECTOR, bits: (q: AttentionQuant) => q.vBits },
] as const;

/**
 * The module-scope declarations the row needs: the row's q (`qName`, private: per invocation,
 * filled by the kernel), map p's score function (q·k · scale for the k subhead at `at`), and
 * per quantity with levels its level rule, `<kind>Level(x, step)` (the integer, as a float) and
 * `<kind>Quantized(x, step)` (x at its level, or as it is where the step is 0).
 */
export function rowDeclarations(quant: AttentionQuant, r: QuantRowContext, qName: string): string[] {
  const scores = Array.from({ length: r.maps }, (_, p) =>
    [
      `fn score${p}(at: i32) -> f32 {`,
      "  var dots = vec4<f32>(0.0);",
      ...Array.from({ length: r.d4 }, (_, t) => `  dots = fma(${qName}[${p * r.d4 + t}], ${r.k("at", t)}, dots);`),
      `  return ((dots.x + dots.y) + (dots.z + dots.w)) * ${r.scale};`,
      "}",
    ].join("\n"),
  );
  const rules = KINDS.filter((k) => k.bits(quant) > 0).flatMap(({ name, type, signed, A, bits }) => {
    const levels = quantLevels(bits(quant), signed);
    const zero = type === "f32" ? "0.0" : "vec4<f32>(0.0)";
    return [
      // The integers only where the integer products use them (probabilities and V).
      ...(integerProducts(quant) && name !== "logit" ? [`fn ${name}Level(x: ${type}, step: ${type}) -> ${type} { return ${quantLevel(A, "x", "step", levels, signed)}; }`] : []),
      `fn ${name}Quantized(x: ${type}, step: ${type}) -> ${type} { return select(x, ${quantizeValue(A, "x", "step", levels, signed)}, step > ${zero}); }`,
    ];
  });
  return [`var<private> ${qName}: array<vec4<f32>, ${r.maps * r.d4}>;`, ...scores, ...rules];
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
  const stepOf = (amax: string, levels: number) => `select(0.0, ${amax} / ${f32(levels)}, ${amax} > 0.0 && ${amax} < ${INF})`;
  const score = (p: number, j: string) => `score${p}(${r.kAt(p, j)})`;
  const logit = (p: number, j: string) => (logits ? `logitQuantized(${score(p, j)}, step[${p}])` : score(p, j));
  const prob = (p: number, j: string) => `exp(${logit(p, j)} - mx[${p}]) * inv[${p}]`;
  /** A group's largest |x| over keys [from, to), NaN sticking as in the interpreter. */
  const largest = (name: string, from: string, to: string, x: (p: number, j: string) => string) => {
    L.push(`var ${name} = array<f32, ${r.maps}>();`);
    L.push(`for (var j = ${from}; j < ${to}; j++) {`);
    maps.forEach((p) => L.push(`  { let a = abs(${x(p, "j")}); ${name}[${p}] = select(${name}[${p}], a, a > ${name}[${p}] || a != a); }`));
    L.push("}");
  };
  const logitLevels = quantLevels(quant.bits, true);
  const probLevels = quantLevels(quant.bits, false);
  // The walks go block by block where a block has its own step or may be skipped, else the
  // row is one block (fewer nested loops, which llvmpipe compiles much faster).
  const blockwise = quant.granularity === "block" && quant.target !== "none";
  const blocks = (body: () => void, byBlock = blockwise) => {
    if (!byBlock) {
      L.push("{ let j0 = 0i; let j1 = seen;");
      body();
      L.push("}");
      return;
    }
    L.push(`for (var j0 = 0i; j0 < seen; j0 += ${quant.block}i) {`);
    L.push(`  let j1 = min(j0 + ${quant.block}i, seen);`);
    if (logits && quant.granularity === "block") {
      largest("amax", "j0", "j1", score);
      maps.forEach((p) => L.push(`step[${p}] = ${stepOf(`amax[${p}]`, logitLevels)};`));
    }
    body();
    L.push("}");
  };

  // V's steps per column over all the keys of the batch entry; vExact: every column has levels.
  if (quant.vBits > 0) {
    L.push(`var vStep = array<vec4<f32>, ${r.dv4}>();`);
    L.push("var vExact = true;");
    columns.forEach((c) => {
      L.push(`{ var amax = vec4<f32>(0.0); for (var j = 0i; j < keys; j++) { let a = abs(${r.v("j", c)}); amax = select(amax, a, (a > amax) | (a != a)); }`);
      L.push(`  vStep[${c}] = select(vec4<f32>(0.0), amax / ${VECTOR.num(quantLevels(quant.vBits, true))}, (amax > vec4<f32>(0.0)) & (amax < vec4<f32>(${INF}))); vExact = vExact && all(amax < vec4<f32>(${INF})); }`);
    });
  }
  const value = (j: string, c: number) => (quant.vBits > 0 ? `valueQuantized(${r.v(j, c)}, vStep[${c}])` : r.v(j, c));

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
  const signed = (p: number, x: string) => (p === 0 ? x : `-${r.lambda!} * ${x}`);
  L.push(`var pStep = array<f32, ${r.maps}>();`);
  if (probs && quant.granularity === "row") maps.forEach((p) => L.push(`pStep[${p}] = ${stepOf(`inv[${p}]`, probLevels)};`));
  L.push(`var acc = array<vec4<f32>, ${r.dv4}>();`);
  const floatProducts = () => {
    L.push("for (var j = j0; j < j1; j++) {");
    maps.forEach((p) => L.push(`  let p${p} = ${probs ? `probQuantized(${prob(p, "j")}, pStep[${p}])` : prob(p, "j")};`));
    L.push(`  let w = vec4<f32>(${maps.map((p) => signed(p, `p${p}`)).join(" + ")});`);
    columns.forEach((c) => L.push(`  acc[${c}] = fma(w, ${value("j", c)}, acc[${c}]);`));
    L.push("}");
  };
  const integers = () => {
    // 8-bit probability levels reach 255, past i8: packed, they are l - 128, and 128·Σ u is added back.
    const offset = r.packedDot && quant.bits === 8;
    // A block of more than CHUNK keys adds its integer sums to acc every CHUNK keys.
    const chunked = quant.block > CHUNK;
    const [from, to] = chunked ? ["c0", "c1"] : ["j0", "j1"];
    if (chunked) L.push(`for (var c0 = j0; c0 < j1; c0 += ${CHUNK}i) {`, `  let c1 = min(c0 + ${CHUNK}i, j1);`);
    L.push(`  var dots = array<vec4<i32>, ${r.maps * r.dv4}>();`);
    // Without the packed dots, key by key; with them, four keys' levels packed into words first.
    if (r.packedDot) {
      L.push(`  for (var j4 = ${from}; j4 < ${to}; j4 += 4i) {`);
      L.push(`    var lWords = array<u32, ${r.maps}>();`, `    var uWords = array<vec4<u32>, ${r.dv4}>();`);
      L.push(`    for (var e = 0u; e < u32(min(4i, ${to} - j4)); e++) {`);
      L.push("      let j = j4 + i32(e);");
    } else L.push(`  for (var j = ${from}; j < ${to}; j++) {`);
    maps.forEach((p) => L.push(`      let l${p} = select(0i, i32(probLevel(${prob(p, "j")}, pStep[${p}])), pStep[${p}] > 0.0);`));
    columns.forEach((c) => {
      L.push(`      { let u = select(vec4<i32>(0i), vec4<i32>(valueLevel(${r.v("j", c)}, vStep[${c}])), vStep[${c}] > vec4<f32>(0.0));`);
      if (r.packedDot) L.push(`        uWords[${c}] |= (bitcast<vec4<u32>>(u) & vec4<u32>(0xffu)) << vec4<u32>(8u * e); }`);
      else L.push(`        ${maps.map((p) => `dots[${p * r.dv4 + c}] += l${p} * u;`).join(" ")} }`);
    });
    if (r.packedDot) {
      maps.forEach((p) => L.push(`      lWords[${p}] |= (bitcast<u32>(l${p}${offset ? " - 128i" : ""}) & 0xffu) << (8u * e);`));
      L.push("    }");
      const xyzw = ["x", "y", "z", "w"];
      columns.forEach((c) => {
        maps.forEach((p) => L.push(`    dots[${p * r.dv4 + c}] += vec4<i32>(${xyzw.map((x) => `dot4I8Packed(lWords[${p}], uWords[${c}].${x})`).join(", ")});`));
        if (offset) {
          L.push(`    { let uSum = 128i * vec4<i32>(${xyzw.map((x) => `dot4I8Packed(uWords[${c}].${x}, 0x01010101u)`).join(", ")});`);
          L.push(`      ${maps.map((p) => `dots[${p * r.dv4 + c}] += uSum;`).join(" ")} }`);
        }
      });
    }
    L.push("  }");
    // Σ_j (l_j·step)(u_jc·vStep_c) = step·vStep_c·Σ_j l_j·u_jc, per map.
    columns.forEach((c) => L.push(`  acc[${c}] += (${maps.map((p) => signed(p, `vec4<f32>(dots[${p * r.dv4 + c}]) * pStep[${p}]`)).join(" + ")}) * vStep[${c}];`));
    if (chunked) L.push("}");
  };
  blocks(() => {
    if (quant.threshold > 0 || (probs && quant.granularity === "block")) largest("pmax", "j0", "j1", prob);
    // Skipped: every map's probabilities in the block are under the threshold (NaN is not).
    if (quant.threshold > 0) L.push(`if (${maps.map((p) => `pmax[${p}] < ${f32(quant.threshold)}`).join(" && ")}) { continue; }`);
    if (probs && quant.granularity === "block") maps.forEach((p) => L.push(`pStep[${p}] = ${stepOf(`pmax[${p}]`, probLevels)};`));
    if (!integerProducts(quant)) return floatProducts();
    L.push("if (vExact) {");
    integers();
    L.push("} else {");
    floatProducts();
    L.push("}");
  }, blockwise || quant.threshold > 0);
  return L;
}

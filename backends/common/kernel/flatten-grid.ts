// The legalisation every GPU target needs: a kernel's outermost nest of grid loops becomes ONE
// grid loop over the product of their sizes, each original index recovered from the flat one
// by division and modulo (onnxruntime-web's indicesFromOffset). A GPU then maps that one loop
// onto a one-dimensional launch (a grid-stride loop over global thread ids), whatever the rank
// of the tensor, and kernel.grid is the one size the runtime launches.
import { bin, call, type ScalarExpr } from "../../../compiler/ir/scalar.ts";
import { covers, type Monomial, monomialOf } from "../../../common/size.ts";
import { scale, times } from "../layout.ts";
import { dimParam, I, int, type Kernel, product, type Stmt } from "./ir.ts";

type Loop = Extract<Stmt, { kind: "loop" }>;
const isGrid = (s: Stmt): s is Loop => s.kind === "loop" && s.scope === "grid";

/** A loop size as a monomial over the kernel's dims: literals, dim parameters and their products. */
function sizeOf(e: ScalarExpr, dims: readonly string[]): Monomial | undefined {
  if (e.kind === "literal" && Number.isInteger(e.value) && e.value >= 0) return monomialOf([], e.value);
  if (e.kind === "ref") {
    const i = dims.findIndex((_, k) => dimParam(k) === e.name);
    return i < 0 ? undefined : monomialOf([dims[i]]);
  }
  if (e.kind === "binary" && e.op === "*") {
    const [a, b] = [sizeOf(e.a, dims), sizeOf(e.b, dims)];
    return a && b ? times(a, b) : undefined;
  }
  return undefined;
}

/**
 * Statements that may move from between two grid loops into the flat loop's body, where each
 * thread runs them again: they compute locals, branch, or record an error (first writer wins,
 * and every thread records the same values). A store, a loop or a barrier there would run
 * once per inner iteration instead of once, so the nest ends above it.
 */
const movable = (s: Stmt): boolean =>
  s.kind === "let" || s.kind === "assign" || s.kind === "fail" || (s.kind === "if" && s.then.every(movable) && s.else.every(movable));

function declared(list: readonly Stmt[], into = new Set<string>()): Set<string> {
  for (const s of list) {
    if (s.kind === "let" || s.kind === "shared" || s.kind === "combine") into.add(s.name);
    if (s.kind === "loop") into.add(s.index);
    if (s.kind === "loop" || s.kind === "while") declared(s.body, into);
    if (s.kind === "if") declared([...s.then, ...s.else], into);
  }
  return into;
}

function assigned(list: readonly Stmt[], into = new Set<string>()): Set<string> {
  for (const s of list) {
    if (s.kind === "assign") into.add(s.name);
    if (s.kind === "loop" || s.kind === "while") assigned(s.body, into);
    if (s.kind === "if") assigned([...s.then, ...s.else], into);
  }
  return into;
}

/** One nest of grid loops as one grid loop named `flat`, and its size. */
function flattenNest(outer: Loop, dims: readonly string[], flat: string, kernel: string): { loop: Loop; size: Monomial } {
  const levels: { loop: Loop; prefix: Stmt[]; size: Monomial }[] = [];
  for (let loop: Loop | undefined = outer; loop; ) {
    const size = sizeOf(loop.end, dims);
    if (!size || loop.start.kind !== "literal" || loop.start.value !== 0 || loop.step !== 1) {
      if (levels.length === 0) throw new Error(`flattenGrid: the grid loop ${loop.index} of ${kernel} is not over [0, size of dims) by 1`);
      break;
    }
    const last: Stmt | undefined = loop.body[loop.body.length - 1];
    const prefix = loop.body.slice(0, -1);
    const inner: Loop | undefined = last && isGrid(last) && prefix.every(movable) && sizeOf(last.end, dims) ? last : undefined;
    levels.push({ loop, prefix: inner ? prefix : loop.body, size });
    loop = inner;
  }
  // Grid iterations are independent: an inner one may not change what an outer level computed.
  levels.forEach(({ prefix }, d) => {
    const own = declared(prefix);
    const later = assigned(levels.slice(d + 1).flatMap((l) => l.prefix));
    const clash = [...later].find((n) => own.has(n));
    if (clash) throw new Error(`flattenGrid: ${kernel} assigns ${clash} in an inner grid loop, but it belongs to an outer one (a bug in the lowering)`);
  });
  const seen = new Set<string>();
  for (const { loop, prefix } of levels) {
    for (const n of [loop.index, ...declared(prefix)]) {
      if (seen.has(n)) throw new Error(`flattenGrid: ${n} is declared at two levels of ${kernel}'s grid nest; merged into one body they would clash`);
      seen.add(n);
    }
  }
  const size = levels.map((l) => l.size).reduce(times);
  if (levels.length === 1) return { loop: outer, size };
  // The index of level d is flat / (product of the sizes inside d) mod (size of d).
  const ends = levels.map((l) => l.loop.end);
  const body: Stmt[] = levels.flatMap(({ loop, prefix }, d) => {
    const inside = ends.slice(d + 1).reduce((a, b) => product(a, b), int(1));
    const quotient = d === levels.length - 1 ? I(flat) : call("idiv", I(flat), inside);
    const index = d === 0 ? quotient : bin("%", quotient, loop.end);
    return [{ kind: "let", name: loop.index, type: "i32", value: index, mutable: false } satisfies Stmt, ...prefix];
  });
  const end = ends.reduce((a, b) => product(a, b));
  return { loop: { kind: "loop", index: flat, start: int(0), end, step: 1, scope: "grid", body }, size };
}

/**
 * The kernel with each top-level nest of grid loops flattened into one grid loop, and
 * `grid` the one size a launch must cover. A kernel without grid loops (numel) becomes one
 * grid iteration, so that one thread, not every thread, runs it. Where a kernel has several
 * top-level nests (concat: one per operand), the grid is the largest, which must cover the
 * others; each thread then runs its iterations of every nest.
 */
export function flattenGrid(kernel: Kernel): Kernel {
  const names = declared(kernel.body);
  let flat = "flat";
  for (let n = 1; names.has(flat); n++) flat = `flat${n}`;
  if (!kernel.body.some(isGrid)) {
    const body: Stmt[] = [{ kind: "loop", index: flat, start: int(0), end: int(1), step: 1, scope: "grid", body: kernel.body }];
    return { ...kernel, body, grid: [monomialOf([])] };
  }
  const sizes: Monomial[] = [];
  const body = kernel.body.map((s) => {
    if (isGrid(s)) {
      const { loop, size } = flattenNest(s, kernel.dims, flat, kernel.name);
      sizes.push(size);
      return loop;
    }
    // A local every thread computes alike is harmless; anything else would run once per thread.
    if (s.kind !== "let") throw new Error(`flattenGrid: a ${s.kind} beside the grid loops of ${kernel.name} would run once per thread`);
    return s;
  });
  const grid = sizes.find((m) => sizes.every((other) => covers(m, other)));
  if (!grid) throw new Error(`flattenGrid: no grid nest of ${kernel.name} covers the others, so no one launch size fits them all`);
  // A cooperative kernel launches a workgroup per grid iteration.
  return { ...kernel, body, grid: [kernel.workgroupSize ? scale(grid, kernel.workgroupSize) : grid] };
}

/**
 * Throws unless every grid loop of the kernel is at its top level, and its workgroup loops and
 * combines are where a cooperative kernel may have them (directly in the grid loop's body; a
 * workgroup loop holds no barrier, combine or other workgroup loop): what a language that maps
 * grid loops onto threads, or onto workgroups, can print (run flattenGrid first).
 */
export function assertFlatGrid(kernel: Kernel, language: string): void {
  const cooperative = kernel.workgroupSize !== undefined;
  /** depth: 0 at the top, 1 in the grid loop's body, 2 below; inWorkgroup: inside a workgroup loop. */
  const visit = (list: readonly Stmt[], depth: number, inWorkgroup: boolean) => {
    for (const s of list) {
      if (s.kind === "loop" && s.scope === "workgroup") {
        if (!cooperative) throw new Error(`${language}: ${kernel.name} has a workgroup loop (${s.index}) but is not a cooperative kernel (no workgroupSize)`);
        if (depth !== 1) throw new Error(`${language}: ${kernel.name}'s workgroup loop ${s.index} is not directly in its grid loop, where every thread of the workgroup reaches it`);
      }
      if ((s.kind === "combine" || s.kind === "barrier") && (!cooperative || depth !== 1 || inWorkgroup))
        throw new Error(`${language}: ${kernel.name} has a ${s.kind} where not every thread of a workgroup reaches it (only directly in a cooperative kernel's grid loop)`);
      if (s.kind === "loop" && s.scope === "grid" && depth > 0) throw new Error(`${language}: ${kernel.name} has a nested grid loop (${s.index}); run flattenGrid first`);
      const within = inWorkgroup || (s.kind === "loop" && s.scope === "workgroup");
      if (s.kind === "loop" || s.kind === "while") visit(s.body, depth + 1, within);
      if (s.kind === "if") visit([...s.then, ...s.else], depth + 1, within);
    }
  };
  visit(kernel.body, 0, false);
  if (!kernel.body.some(isGrid)) throw new Error(`${language}: ${kernel.name} has no grid loop, so every thread would run it; run flattenGrid first`);
}

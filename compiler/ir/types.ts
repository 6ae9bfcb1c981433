// Tensor types of the graph IR: `dtype[shape]`, where a size is a static integer or a named
// symbolic size (a `dim` of the model) bound from the inputs at run time.

export const DTYPES = ["f32", "f16", "bf16", "i32", "i8", "u8", "bool"] as const;
export type DType = (typeof DTYPES)[number];

export function isDType(s: string): s is DType {
  return (DTYPES as readonly string[]).includes(s);
}
export function isFloat(d: DType): boolean {
  return d === "f32" || d === "f16" || d === "bf16";
}
export function isInteger(d: DType): boolean {
  return d === "i32" || d === "i8" || d === "u8";
}

/** A static size, or the name of a symbolic size. */
export type Dim = number | string;
export type Shape = Dim[];

export interface TensorType {
  dtype: DType;
  shape: Shape;
}

export function formatShape(shape: readonly Dim[]): string {
  return `[${shape.join(", ")}]`;
}
export function formatType(t: TensorType): string {
  return `${t.dtype}${formatShape(t.shape)}`;
}

export function sameShape(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
export function sameType(a: TensorType, b: TensorType): boolean {
  return a.dtype === b.dtype && sameShape(a.shape, b.shape);
}
export function isStatic(shape: readonly Dim[]): shape is number[] {
  return shape.every((d) => typeof d === "number");
}

/**
 * The product of a shape as `coefficient * symbols`, so that reshapes between shapes with
 * symbolic sizes can be checked: [N, 4, 8] and [N, 32] have the same size.
 */
export interface SymbolicSize {
  coefficient: number;
  symbols: string[]; // sorted
}
export function symbolicSize(shape: readonly Dim[]): SymbolicSize {
  let coefficient = 1;
  const symbols: string[] = [];
  for (const d of shape) {
    if (typeof d === "number") coefficient *= d;
    else symbols.push(d);
  }
  symbols.sort();
  return { coefficient, symbols };
}
export function sameSize(a: readonly Dim[], b: readonly Dim[]): boolean {
  const x = symbolicSize(a);
  const y = symbolicSize(b);
  // A zero-size tensor is zero-size whatever its symbols are.
  if (x.coefficient === 0 || y.coefficient === 0) return x.coefficient === y.coefficient;
  return x.coefficient === y.coefficient && x.symbols.join(",") === y.symbols.join(",");
}

/** Substitutes bound sizes for symbols; throws on an unbound symbol. */
export function resolveShape(shape: readonly Dim[], dims: ReadonlyMap<string, number>): number[] {
  return shape.map((d) => {
    if (typeof d === "number") return d;
    const v = dims.get(d);
    if (v === undefined) throw new Error(`symbolic size ${d} is not bound`);
    return v;
  });
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Normalises a possibly negative axis; returns -1 when out of range. */
export function normalizeAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  return a >= 0 && a < rank ? a : -1;
}

/** NumPy broadcasting of two shapes; undefined when they do not broadcast. */
export function broadcastShapes(a: readonly Dim[], b: readonly Dim[]): Dim[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x === y || y === 1) out.push(x);
    else if (x === 1) out.push(y);
    else return undefined;
  }
  return out;
}

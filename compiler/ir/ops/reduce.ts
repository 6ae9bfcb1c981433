// Reductions over a set of axes, with keepdims.
import type { Attrs } from "../graph.ts";
import { OpError, registerOp } from "../registry.ts";
import { type Dim, formatType, normalizeAxis, stridesOf, type TensorType } from "../types.ts";

/** The reduced axes, sorted and normalised; [] in the attribute means every axis. */
export function reducedAxes(op: string, t: TensorType, axes: number[]): number[] {
  const rank = t.shape.length;
  if (axes.length === 0) return [...Array(rank).keys()];
  const out = axes.map((a) => {
    const n = normalizeAxis(a, rank);
    if (n < 0) throw new OpError(`${op}: axis ${a} is out of range for ${formatType(t)}`);
    return n;
  });
  if (new Set(out).size !== out.length) throw new OpError(`${op}: axes [${axes.join(", ")}] repeat an axis`);
  return out.sort((a, b) => a - b);
}

function reduction(name: string, doc: string, init: number, step: (acc: number, x: number) => number, finish: (acc: number, count: number) => number, emptyAllowed: boolean) {
  registerOp({
    name,
    doc,
    operands: ["x"],
    attrs: { axes: { type: "ints", default: [] }, keepdims: { type: "bool", default: false } },
    pattern: "reduction",
    infer: (types, a: Attrs) => {
      const t = types[0];
      const axes = reducedAxes(name, t, a.axes as number[]);
      if (!emptyAllowed && axes.some((ax) => t.shape[ax] === 0))
        throw new OpError(`${name} over an empty axis of ${formatType(t)} has no value`);
      const shape: Dim[] = [];
      t.shape.forEach((d, i) => {
        if (!axes.includes(i)) shape.push(d);
        else if (a.keepdims) shape.push(1);
      });
      return { dtype: t.dtype, shape };
    },
    interpret: (args, a) => {
      const x = args[0];
      const axes = reducedAxes(name, x, a.axes as number[]);
      // Output strides laid over the input's axes: 0 along reduced axes.
      const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      const keptStrides = stridesOf(keptShape).map((s, i) => (axes.includes(i) ? 0 : s));
      let outSize = 1;
      for (const d of keptShape) outSize *= d;
      let count = 1;
      for (const ax of axes) count *= x.shape[ax];
      const acc = new Float64Array(outSize).fill(init);
      const rank = x.shape.length;
      const counter = new Array<number>(rank).fill(0);
      let o = 0;
      for (let i = 0; i < x.data.length; i++) {
        acc[o] = step(acc[o], x.data[i]);
        for (let ax = rank - 1; ax >= 0; ax--) {
          counter[ax]++;
          o += keptStrides[ax];
          if (counter[ax] < x.shape[ax]) break;
          o -= keptStrides[ax] * counter[ax];
          counter[ax] = 0;
        }
      }
      for (let i = 0; i < outSize; i++) acc[i] = finish(acc[i], count);
      return acc;
    },
  });
}

const nanMax = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a > b ? a : b);
const nanMin = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a < b ? a : b);

reduction("sum", "Sum over `axes` (all when empty); an empty sum is 0.", 0, (s, x) => s + x, (s) => s, true);
reduction("mean", "Arithmetic mean over `axes` (all when empty).", 0, (s, x) => s + x, (s, n) => s / n, false);
reduction("max", "Maximum over `axes` (all when empty); NaN propagates.", -Infinity, nanMax, (s) => s, false);
reduction("min", "Minimum over `axes` (all when empty); NaN propagates.", Infinity, nanMin, (s) => s, false);

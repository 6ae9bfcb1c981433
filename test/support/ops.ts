// Applying one op directly through its registry entry: shape rule, then interpreter rule.
import { expect } from "vitest";
import type { Attrs } from "../../compiler/ir/graph.ts";
import { getOp, normalizeAttrs, OpError } from "../../compiler/ir/registry.ts";
import type { HostTensor } from "../../compiler/ir/tensor.ts";
import type { TensorType } from "../../compiler/ir/types.ts";
import "../../compiler/ir/ops/index.ts";

/** Runs an op's shape rule and interpreter rule (float64, unrounded). */
export function apply(op: string, args: HostTensor[], attrs: Attrs = {}): HostTensor {
  const def = getOp(op)!;
  const a = normalizeAttrs(def, attrs);
  const type = def.infer(args, a);
  const shape = type.shape as number[];
  return { dtype: type.dtype, shape, data: def.interpret(args, a, { dtype: type.dtype, shape }) };
}

/** The message of the OpError an op's shape rule raises for these operands. */
export function inferError(op: string, types: TensorType[], attrs: Attrs = {}): string {
  const def = getOp(op)!;
  try {
    def.infer(types, normalizeAttrs(def, attrs));
  } catch (e) {
    expect(e).toBeInstanceOf(OpError);
    return (e as Error).message;
  }
  throw new Error(`expected ${op} to reject its operands`);
}

// When a reduction runs cooperatively: one workgroup per output row, its threads striding over
// the reduced axis and merging their partial results (Stmt "combine"), instead of one thread per
// row walking the whole axis. A GPU target that can print cooperative kernels offers its
// workgroup size; the lowering of each reduction asks `cooperates` for its rows and length.
import type { Monomial } from "../../../common/size.ts";

/** How a reduction's rows map onto a GPU: a thread per row, or a workgroup per row. */
export type ReductionMapping = "per-row" | "cooperative";

/** What a target offers the shared lowering for reductions. */
export interface Cooperation {
  /** Threads per workgroup of the target's cooperative kernels. */
  workgroupSize: number;
  /** Forces one mapping for every reduction (benchmarks and tests compare them); by default `cooperates` decides. */
  reductions?: ReductionMapping;
}

const isStatic = (m: Monomial) => m.symbols.length === 0;

/**
 * Whether `rows` reductions of `length` elements each run cooperatively. A workgroup per row
 * pays when a row is at least a workgroup long, so that every thread has elements to add and
 * neighbouring threads read neighbouring elements (a thread per row strides across rows, which
 * a CPU driver turns into gathers); or when there are fewer rows than a workgroup has threads,
 * so that a thread per row would leave most of the one workgroup idle. A length known only at
 * run time counts as long: run-time sizes are sequence lengths. Otherwise (many short rows) a
 * thread per row keeps every thread busy without the merge and its barriers.
 */
export function cooperates(offer: Cooperation | undefined, rows: Monomial, length: Monomial): boolean {
  if (!offer) return false;
  if (offer.reductions) return offer.reductions === "cooperative";
  const long = !isStatic(length) || length.coefficient >= offer.workgroupSize;
  const fewRows = isStatic(rows) && rows.coefficient < offer.workgroupSize && length.coefficient > 1;
  return long || fewRows;
}

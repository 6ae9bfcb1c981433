// A per-kernel profile of one forward as a table: where the time goes, slowest kernel first,
// then the same summed per op (all the matmuls, all the fused chains).
import type { KernelTime } from "./adapters/adapter.ts";

export function formatProfile(times: readonly KernelTime[], runs: number): string {
  const total = times.reduce((s, t) => s + t.ms, 0);
  const row = (name: string, ms: number, extra = "") => `  ${ms.toFixed(3).padStart(9)} ms  ${((100 * ms) / (total || 1)).toFixed(1).padStart(5)}%  ${name}${extra}`;
  const byOp = new Map<string, { ms: number; kernels: number }>();
  for (const t of times) {
    const o = byOp.get(t.op) ?? { ms: 0, kernels: 0 };
    byOp.set(t.op, { ms: o.ms + t.ms, kernels: o.kernels + 1 });
  }
  return [
    `profile: ${times.length} kernels, ${total.toFixed(3)} ms per forward (mean of ${runs} run${runs === 1 ? "" : "s"} after a warm-up)`,
    ...[...times].sort((a, b) => b.ms - a.ms).map((t) => row(t.kernel, t.ms)),
    "by op:",
    ...[...byOp].sort((a, b) => b[1].ms - a[1].ms).map(([op, o]) => row(op, o.ms, ` (${o.kernels} kernel${o.kernels === 1 ? "" : "s"})`)),
  ].join("\n");
}

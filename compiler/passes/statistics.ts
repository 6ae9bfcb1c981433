// Pass statistics, after LLVM's STATISTIC and `-stats`: named counters a pass bumps as it
// works (each rewrite rule's firings, the nodes a fusion absorbed), collected per pass by the
// pipeline and printed with `--stats`. Counting goes to whoever is collecting; with no
// collector it costs a lookup and is dropped, so passes count unconditionally.

/** Counter name -> count, in the order the counters first moved. */
export type Statistics = Map<string, number>;

let active: Statistics | undefined;

/** Adds `n` to the counter `name` of the collection in progress, if any. */
export function count(name: string, n = 1): void {
  if (active && n !== 0) active.set(name, (active.get(name) ?? 0) + n);
}

/** Runs `work` and returns what it returned with the counters it moved (nested collections see only their own). */
export function collectStatistics<T>(work: () => T): { result: T; statistics: Statistics } {
  const outer = active;
  const statistics: Statistics = new Map();
  active = statistics;
  try {
    return { result: work(), statistics };
  } finally {
    active = outer;
    // What an inner collection counted also happened inside the outer one.
    if (outer) for (const [k, v] of statistics) outer.set(k, (outer.get(k) ?? 0) + v);
  }
}

/** The counters as aligned lines under a heading, largest first; nothing when no counter moved. */
export function formatStatistics(heading: string, statistics: Statistics): string {
  if (statistics.size === 0) return "";
  const rows = [...statistics].sort((a, b) => b[1] - a[1]);
  const width = Math.max(...rows.map(([, v]) => String(v).length));
  return `${heading}\n${rows.map(([k, v]) => `  ${String(v).padStart(width)}  ${k}`).join("\n")}\n`;
}

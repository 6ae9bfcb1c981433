// Helpers for tests that compile DSL source.
import { Diagnostic } from "../../common/diagnostic.ts";
import { parseProgram } from "../../dsl/parse.ts";
import { elaborate, type ElaborateOptions } from "../../compiler/elaborate/index.ts";
import type { Graph } from "../../compiler/ir/graph.ts";

export function compileSource(source: string, options: ElaborateOptions = {}, file = "test.dt"): Graph {
  return elaborate(parseProgram(source, file), options).graph;
}

/** Compiles source that must fail, and returns where and why. */
export function diagnose(source: string, options: ElaborateOptions = {}): { line: number; col: number; message: string; text: string } {
  try {
    compileSource(source, options);
  } catch (e) {
    if (!(e instanceof Diagnostic)) throw e;
    const loc = e.location;
    return { line: loc?.line ?? 0, col: loc?.col ?? 0, message: e.message, text: e.format() };
  }
  throw new Error("expected a diagnostic, but the program compiled");
}

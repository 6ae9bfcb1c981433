// The loaders in this folder are ES modules (the tests import them); an artifact carries their
// source instead, in one module that imports nothing: their exports become local names, and
// their imports of wasm-instance.js go, the artifact carrying that file once (WASM_INSTANCE).
import { readFileSync } from "node:fs";

/** A template of this folder as an artifact carries it. */
export function templateSource(file: string): string {
  return readFileSync(new URL(`./${file}`, import.meta.url), "utf8")
    .replace(/^import \{[^}]*\} from "\.\/wasm-instance\.js";\n/m, "")
    .replace(/^export function /gm, "function ");
}

/** What every loader calls: the choice of a module's variant, and memory growth. */
export const WASM_INSTANCE = templateSource("wasm-instance.js");

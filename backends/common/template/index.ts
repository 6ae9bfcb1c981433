// The host-side runtime that every JS-facing artifact (JS, WebGPU) carries: the shared artifact
// runtime, with copies of the plain-JS pieces difftc itself imports, so that the artifact and the
// compiler apply the same rules: the duplicate-key check of safetensors headers, and how a
// checkpoint's tensors bind to params (common/weights.js). Their exports become local names.
import { readFileSync } from "node:fs";

const read = (url: URL) => readFileSync(url, "utf8");

export const ARTIFACT_RUNTIME = [
  read(new URL("../../../common/json-keys.js", import.meta.url)).replace("export function firstDuplicateKey", "function firstDuplicateKey"),
  read(new URL("../../../common/weights.js", import.meta.url)).replace(/^export /gm, ""),
  read(new URL("./artifact-runtime.js", import.meta.url)),
].join("\n");

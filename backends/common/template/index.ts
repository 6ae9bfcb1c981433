// The host-side runtime that every JS-facing artifact (JS, WebGPU) carries: the shared artifact
// runtime, with a copy of the duplicate-key check that difftc's own safetensors reader imports.
import { readFileSync } from "node:fs";

const read = (url: URL) => readFileSync(url, "utf8");

export const ARTIFACT_RUNTIME = [
  read(new URL("../../../common/json-keys.js", import.meta.url)).replace("export function firstDuplicateKey", "function firstDuplicateKey"),
  read(new URL("./artifact-runtime.js", import.meta.url)),
].join("\n");

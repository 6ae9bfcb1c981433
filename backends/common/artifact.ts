// An artifact: the files a backend writes, with its manifest.
import { mkdirSync, renameSync, rmSync, writeFileSync, mkdtempSync, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { Diagnostic } from "../../common/diagnostic.ts";
import { dirname, join, resolve, basename } from "node:path";
import type { Manifest } from "../../common/manifest.ts";

/**
 * The host side every JS-facing artifact (the JS module, the WebGPU loader) embeds: the
 * weights-binding rules the compiler uses too (common/weights.js, its exports made local to
 * the artifact), then artifact-runtime.js.
 */
export const HOST_RUNTIME = [
  readFileSync(new URL("../../common/weights.js", import.meta.url), "utf8").replace(/^export /gm, ""),
  readFileSync(new URL("./template/artifact-runtime.js", import.meta.url), "utf8"),
].join("\n");

export interface Artifact {
  target: string;
  manifest: Manifest;
  files: Map<string, string | Uint8Array>;
}

/**
 * Writes an artifact directory: the files go to a fresh sibling directory that replaces the
 * target only when complete, so a failed write never leaves half an artifact.
 */
export function writeArtifact(artifact: Artifact, dir: string): void {
  const target = resolve(dir);
  if (existsSync(target) && !statSync(target).isDirectory()) throw new Diagnostic(`${dir} is a file; -o takes a directory for the artifact`);
  mkdirSync(dirname(target), { recursive: true });
  const staging = mkdtempSync(join(dirname(target), `.${basename(target)}.tmp-`));
  try {
    for (const [name, content] of artifact.files) writeFileSync(join(staging, name), content);
    if (existsSync(target)) {
      if (!existsSync(join(target, "manifest.json")) && readdirSync(target).length > 0)
        throw new Diagnostic(`${dir} exists and is not a difftc artifact; refusing to replace it`);
      rmSync(target, { recursive: true, force: true });
    }
    renameSync(staging, target);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  }
}

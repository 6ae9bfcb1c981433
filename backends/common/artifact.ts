// An artifact: the files a backend writes, with its manifest; and the directory that holds
// them on disk. An artifact is code (model.js runs with the full rights of whoever imports it),
// so the directory is written as one unit and checked before anything in it is run: its
// manifest.json records the SHA-256 of every other file, and a directory holding anything else
// was not written by difftc, so it is neither replaced nor run.
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { Diagnostic } from "../../common/diagnostic.ts";
import { readRegularFile, withSignalsDeferred } from "../../common/files.ts";
import { type Manifest, MANIFEST_FORMAT } from "../../common/manifest.ts";

export interface Artifact {
  target: string;
  manifest: Manifest;
  files: Map<string, string | Uint8Array>;
}

/** The largest artifact file read back (kernels and sources; weights are never in an artifact). */
const MAX_ARTIFACT_FILE_BYTES = 256 * 1024 * 1024;

function sha256(content: string | Uint8Array): string {
  return `sha256-${createHash("sha256").update(content).digest("hex")}`;
}

/** Why a file system call failed, in words. */
function reason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EROFS") return "read-only file system";
  if (code === "ENOSPC") return "no space left on the device";
  if (code === "ENOTDIR") return "a part of the path is a file";
  return (e as Error).message;
}

/**
 * Why `dir`, which exists, is not an artifact directory that difftc wrote (a manifest.json of
 * ours listing every other entry, each a plain file), or undefined when it is one or is empty.
 */
function foreignContent(dir: string): string | undefined {
  const entries = readdirSync(dir);
  if (entries.length === 0) return undefined;
  let listed: Record<string, unknown> | undefined;
  try {
    const manifest = JSON.parse(readRegularFile(join(dir, "manifest.json"), MAX_ARTIFACT_FILE_BYTES, "manifest").toString("utf8"));
    if (manifest?.format === MANIFEST_FORMAT && typeof manifest.files === "object" && manifest.files !== null) listed = manifest.files;
  } catch {
    // No readable manifest of ours: nothing in the directory is known to be difftc's.
  }
  const foreign = entries.filter((e) => e !== "manifest.json" && !(listed && Object.hasOwn(listed, e) && lstatSync(join(dir, e)).isFile()));
  if (!listed) return `it holds ${describeEntries(entries)} and no difftc manifest`;
  if (foreign.length) return `it holds ${describeEntries(foreign)}, which difftc did not write`;
  return undefined;
}

function describeEntries(names: string[]): string {
  const shown = names.slice(0, 3).join(", ");
  return names.length > 3 ? `${shown} and ${names.length - 3} more` : shown;
}

/** Siblings of `target` that an interrupted write left: staging copies and set-aside old artifacts. */
function leftovers(target: string): string[] {
  const prefix = `.${basename(target)}.difftc-`;
  return readdirSync(dirname(target))
    .filter((e) => e.startsWith(prefix) && /^(tmp|old)-[0-9a-f]{16}$/.test(e.slice(prefix.length)))
    .map((e) => join(dirname(target), e));
}

/**
 * Writes an artifact directory. Its files go to a fresh sibling directory (created with the
 * umask's permissions) that is renamed into place when complete; an existing artifact is set
 * aside first and removed after, so an error leaves the old artifact as it was. A directory
 * that is not empty and not an artifact difftc wrote is refused, never deleted.
 */
export function writeArtifact(artifact: Artifact, dir: string): void {
  const target = resolve(dir);
  const fail = (e: unknown): never => {
    if (e instanceof Diagnostic) throw e;
    throw new Diagnostic(`cannot write the artifact to ${dir}: ${reason(e)}`);
  };
  withSignalsDeferred(() => {
    let staging: string | undefined;
    let old: string | undefined;
    try {
      if (existsSync(target)) {
        if (!statSync(target).isDirectory()) throw new Diagnostic(`${dir} is a file; -o takes a directory for the artifact`);
        const why = foreignContent(target);
        if (why) throw new Diagnostic(`${dir} exists and is not an artifact difftc wrote (${why}); refusing to replace it: choose another directory or empty this one`);
      }
      mkdirSync(dirname(target), { recursive: true });
      for (const stale of leftovers(target)) rmSync(stale, { recursive: true, force: true });
      const suffix = () => randomBytes(8).toString("hex");
      staging = join(dirname(target), `.${basename(target)}.difftc-tmp-${suffix()}`);
      mkdirSync(staging, { mode: 0o777 });
      const files: Record<string, string> = {};
      for (const [name, content] of artifact.files) {
        if (name === "manifest.json") continue;
        writeFileSync(join(staging, name), content);
        files[name] = sha256(content);
      }
      writeFileSync(join(staging, "manifest.json"), `${JSON.stringify({ ...artifact.manifest, files }, null, 2)}\n`);
      if (existsSync(target)) {
        old = join(dirname(target), `.${basename(target)}.difftc-old-${suffix()}`);
        renameSync(target, old);
      }
      try {
        renameSync(staging, target);
      } catch (e) {
        if (old) renameSync(old, target);
        old = undefined;
        throw e;
      }
      staging = undefined;
    } catch (e) {
      if (staging) rmSync(staging, { recursive: true, force: true });
      fail(e);
    } finally {
      if (old) rmSync(old, { recursive: true, force: true });
    }
  });
}

/** Whether `path` is a directory with a manifest.json: what `difftc run` treats as an artifact. */
export function isArtifactDir(path: string): boolean {
  return existsSync(join(path, "manifest.json")) && statSync(path).isDirectory();
}

/**
 * Reads an artifact directory back, checking that difftc wrote it and that no file changed
 * since: every file the manifest lists is present with its recorded hash, and nothing else is
 * there. What it returns is exactly what was checked, so what runs is what was verified.
 */
export function readArtifact(dir: string): Artifact {
  const fail = (why: string) => new Diagnostic(`${dir} is not an artifact difftc wrote, or it changed since: ${why} (recompile with difftc compile)`);
  let manifest: Manifest & { files?: unknown };
  try {
    manifest = JSON.parse(readRegularFile(join(dir, "manifest.json"), MAX_ARTIFACT_FILE_BYTES, "manifest").toString("utf8"));
  } catch (e) {
    throw fail(e instanceof Diagnostic ? e.message : "manifest.json is not valid JSON");
  }
  if (manifest === null || typeof manifest !== "object" || manifest.format !== MANIFEST_FORMAT) throw fail(`manifest.json does not say format "${MANIFEST_FORMAT}"`);
  const listed = manifest.files;
  if (listed === null || typeof listed !== "object" || Array.isArray(listed)) throw fail("manifest.json records no file hashes");
  const files = new Map<string, string | Uint8Array>();
  for (const [name, hash] of Object.entries(listed)) {
    if (name.includes("/") || name.includes("\\") || name === ".." || name === ".") throw fail(`manifest.json lists the path ${JSON.stringify(name)}`);
    const content = readRegularFile(join(dir, name), MAX_ARTIFACT_FILE_BYTES, "artifact file");
    if (sha256(content) !== hash) throw fail(`${name} does not match the hash in manifest.json`);
    files.set(name, content.toString("utf8"));
  }
  const extra = readdirSync(dir).filter((e) => e !== "manifest.json" && !files.has(e));
  if (extra.length) throw fail(`it holds ${describeEntries(extra)}, which the manifest does not list`);
  const { files: _hashes, ...contract } = manifest;
  files.set("manifest.json", `${JSON.stringify(contract, null, 2)}\n`);
  return { target: contract.target, manifest: contract, files };
}

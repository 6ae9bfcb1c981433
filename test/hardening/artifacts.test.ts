// Artifact directories as a careless user and an attacker meet them, each in a fresh temporary
// directory: compile -o never deletes what difftc did not write, replaces an old artifact as
// one unit with the umask's permissions and no leftovers, and run checks what it executes.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Artifact, readArtifact, writeArtifact } from "../../backends/common/artifact.ts";
import { compileJs } from "../../backends/js/index.ts";
import { loadJs } from "../../runtime/adapters/js/index.ts";
import { compileSource } from "../support/dsl.ts";

const BIN = new URL("../../bin/difftc.mjs", import.meta.url).pathname;
const MODEL = "model M { input x: f32[4] param w: f32[4] output y = x * w }\n";

function difftc(cwd: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync("sh", ["-c", `umask 022 && exec "${process.execPath}" "${BIN}" "$@"`, "sh", ...args], { cwd, encoding: "utf8" });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), "difftc-artifacts-"));
  writeFileSync(join(dir, "m.dt"), MODEL);
  return dir;
}

const artifact = (source = MODEL): Artifact => compileJs(compileSource(source));

describe("compile -o", () => {
  it("refuses a web app's folder that holds a manifest.json, and leaves every file in it", () => {
    const dir = scratch();
    const site = join(dir, "site");
    mkdirSync(join(site, "img"), { recursive: true });
    writeFileSync(join(site, "manifest.json"), "{}");
    writeFileSync(join(site, "index.html"), "hi");
    const r = difftc(dir, "compile", "m.dt", "-o", "site");
    expect(r.stderr).toBe("error: site exists and is not an artifact difftc wrote (it holds img, index.html, manifest.json and no difftc manifest); refusing to replace it: choose another directory or empty this one\n");
    expect(r.code).toBe(1);
    expect(readdirSync(site).sort()).toEqual(["img", "index.html", "manifest.json"]);
    expect(readFileSync(join(site, "index.html"), "utf8")).toBe("hi");
  });

  it("refuses the folder holding the model being compiled", () => {
    const dir = scratch();
    writeArtifact(artifact(), join(dir, "out"));
    writeFileSync(join(dir, "out", "m.dt"), MODEL);
    expect(() => writeArtifact(artifact(), join(dir, "out"))).toThrow(/it holds m\.dt, which difftc did not write/);
    expect(readFileSync(join(dir, "out", "m.dt"), "utf8")).toBe(MODEL);
  });

  it("replaces an artifact difftc wrote, honours the umask and leaves no temporary files", () => {
    const dir = scratch();
    expect(difftc(dir, "compile", "m.dt", "-o", "out").code).toBe(0);
    expect(difftc(dir, "compile", "m.dt", "-o", "out").code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(["m.dt", "out"]);
    expect(statSync(join(dir, "out")).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, "out", "model.js")).mode & 0o777).toBe(0o644);
    expect(readArtifact(join(dir, "out")).manifest.model).toBe("M");
  });

  it("a write that fails midway leaves the old artifact whole and no staging directory", () => {
    const dir = scratch();
    const out = join(dir, "out");
    writeArtifact(artifact(), out);
    const before = readFileSync(join(out, "model.js"), "utf8");
    const broken = artifact("model M { input x: f32[4] output y = x + 1 }");
    broken.files.set("no-such-dir/file", "x");
    expect(() => writeArtifact(broken, out)).toThrow(/^cannot write the artifact to .*: ENOENT/);
    expect(readFileSync(join(out, "model.js"), "utf8")).toBe(before);
    expect(readdirSync(dir).sort()).toEqual(["m.dt", "out"]);
  });

  it("removes what an interrupted write left beside the target", () => {
    const dir = scratch();
    mkdirSync(join(dir, ".out.difftc-tmp-0123456789abcdef"));
    mkdirSync(join(dir, ".out.difftc-old-fedcba9876543210"));
    mkdirSync(join(dir, ".out.mine"));
    writeArtifact(artifact(), join(dir, "out"));
    expect(readdirSync(dir).sort()).toEqual([".out.mine", "m.dt", "out"]);
  });

  it("a SIGTERM during a write lets the write finish, then terminates the process", () => {
    const marker = join(scratch(), "marker");
    const fixture = new URL("./fixtures/interrupted-write.ts", import.meta.url).pathname;
    const r = spawnSync(process.execPath, ["--import", "tsx", fixture, marker], { encoding: "utf8" });
    expect(r.signal).toBe("SIGTERM");
    expect(readFileSync(marker, "utf8")).toBe("complete");
  });

  it("into a directory it cannot write is a diagnostic", () => {
    let parent = "/sys";
    if (process.getuid?.() !== 0) {
      parent = join(scratch(), "ro");
      mkdirSync(parent, { mode: 0o555 });
      chmodSync(parent, 0o555);
    }
    expect(() => writeArtifact(artifact(), join(parent, "difftc-out"))).toThrow(/^cannot write the artifact to .*difftc-out: permission denied$/);
    expect(existsSync(join(parent, "difftc-out"))).toBe(false);
  });
});

describe("init -o and run -o", () => {
  it("init -o the model's own source is refused and the source kept", () => {
    const dir = scratch();
    const r = difftc(dir, "init", "m.dt", "-o", "./m.dt");
    expect(r.stderr).toBe("error: -o ./m.dt is the model source; refusing to overwrite it\n");
    expect(readFileSync(join(dir, "m.dt"), "utf8")).toBe(MODEL);
  });
});

describe("run DIR checks what it runs", () => {
  it("an artifact whose model.js changed is refused before it is imported", () => {
    const dir = scratch();
    expect(difftc(dir, "compile", "m.dt", "-o", "out").code).toBe(0);
    writeFileSync(join(dir, "out", "model.js"), "process.exit(42); export async function load() {}");
    const r = difftc(dir, "run", "out");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: out is not an artifact difftc wrote, or it changed since: model.js does not match the hash in manifest.json (recompile with difftc compile)\n");
  });

  it("an artifact directory with an extra file, or a manifest without hashes, is refused", () => {
    const dir = scratch();
    const out = join(dir, "out");
    writeArtifact(artifact(), out);
    writeFileSync(join(out, "evil.js"), "");
    expect(() => readArtifact(out)).toThrow(/it holds evil\.js, which the manifest does not list/);
    writeFileSync(join(out, "manifest.json"), JSON.stringify({ ...artifact().manifest }));
    expect(() => readArtifact(out)).toThrow(/manifest\.json records no file hashes/);
  });

  it("a model.js with a syntax error, a wrong export or from another model is a diagnostic", async () => {
    const weights = new Map();
    const withModule = (source: string): Artifact => {
      const a = artifact();
      a.files.set("model.js", source);
      return a;
    };
    await expect(loadJs(withModule("export const = ;"), weights)).rejects.toThrow(/^model\.js cannot be loaded: SyntaxError/);
    await expect(loadJs(withModule("export const run = 1;"), weights)).rejects.toThrow("model.js does not export load() and manifest, as a difftc artifact's module does");
    const other = String(artifact("model Other { input x: f32[4] output y = x + 1 }").files.get("model.js"));
    await expect(loadJs(withModule(other), weights)).rejects.toThrow("model.js was compiled for another model or target than its manifest.json describes");
  });
});

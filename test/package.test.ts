// The package as a user gets it: `npm pack` (which builds it), `npm install` of the tarball
// into an empty folder, then the difftc command there, the API from Node, and the README's
// snippets, run as written and type-checked with the README's tsconfig.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

/** The README's code blocks in a language, in order. */
function readmeBlocks(lang: string): string[] {
  return [...README.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]);
}

function run(command: string, args: string[], cwd: string, timeout = 120_000) {
  const r = spawnSync(command, args, { cwd, encoding: "utf8", timeout, env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("the packed package installed into an empty folder", () => {
  let app: string;
  let packed: { path: string }[];

  beforeAll(() => {
    const packDir = mkdtempSync(join(tmpdir(), "difftc-pack-"));
    // prepack builds dist/ first; --json lists what the tarball holds.
    const out = execFileSync(NPM, ["pack", "--json", "--pack-destination", packDir], { cwd: ROOT, encoding: "utf8", timeout: 120_000, stdio: ["ignore", "pipe", "pipe"] });
    const info = JSON.parse(out.slice(out.indexOf("[")))[0];
    packed = info.files;
    app = mkdtempSync(join(tmpdir(), "difftc-app-"));
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    // The registry (or npm's cache) serves difftc's own dependencies and @types/node for tsc.
    execFileSync(NPM, ["install", join(packDir, info.filename), "@types/node@20", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: app, timeout: 120_000, stdio: "pipe" });
  }, 300_000);

  it("holds the build, the command and the examples; no sources to compile, no tests, benchmarks or CI files", () => {
    const paths = packed.map((f) => f.path);
    expect(paths).toContain("dist/api/index.js");
    expect(paths).toContain("dist/api/index.d.ts");
    expect(paths).toContain("dist/dsl/stdlib/std.dt");
    expect(paths).toContain("bin/difftc.mjs");
    expect(paths).toContain("examples/diff_lm.dt");
    expect(paths.filter((p) => /^(test|bench|\.ci|cli|api|dsl|compiler|backends|runtime|common)\//.test(p))).toEqual([]);
    expect(paths.filter((p) => p.endsWith(".ts") && !p.endsWith(".d.ts"))).toEqual([]);
  });

  it("installs only what difftc needs at run time: no benchmark peers, no TypeScript compiler, no tsx", () => {
    const installed = (name: string) => existsSync(join(app, "node_modules", name));
    expect(installed("ohm-js")).toBe(true);
    for (const name of ["onnxruntime-node", "@tensorflow", "tsx", "typescript", "vitest", "webgpu"]) expect(installed(name), name).toBe(false);
  });

  it("runs `npx difftc` on an example, with no npm warning", () => {
    expect(run(NPM, ["exec", "--", "difftc", "--version"], app).stdout.trim()).toMatch(/^difftc \d+\.\d+\.\d+$/);
    const r = run(NPM, ["exec", "--", "difftc", "run", "node_modules/difftc/examples/diff_attention.dt", "--set", "D=64", "--set", "N=8", "--backend", "js"], app);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^y: f32\[8, 64\]/);
    // The pass template is for a checkout: installed, new-pass writes nothing and says so.
    const template = run(NPM, ["exec", "--", "difftc", "new-pass", "my-pass"], app);
    expect(template.code).toBe(1);
    expect(template.stderr).toMatch(/new-pass writes a pass into a difftc checkout .* is an installed package/);
  });

  it("compiles and runs an example through the API from `node -e`", () => {
    const script = `import("difftc").then(async (d) => {
      const m = d.elaborateModel("node_modules/difftc/examples/diff_attention.dt", { set: { D: 64, N: 8 } });
      const w = d.initWeights(m.graph, 0), x = d.randomInputs(m.graph, m.dims, 0);
      const s = await d.loadSession(d.compile(m.graph, { target: "js" }), w);
      const y = (await s.run(x)).get("y"), e = d.evaluate(m.graph, x, w).get("y");
      console.log(d.VERSION, y.dtype, JSON.stringify(y.shape), Math.max(...y.data.map((v, i) => Math.abs(v - e.data[i]))) < 1e-4);
    })`;
    const r = run(process.execPath, ["-e", script], app);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+ f32 \[8,64\] true$/);
  });

  it("runs the README's snippets in Node as written, and type-checks them with the README's tsconfig", () => {
    const [api, artifact] = readmeBlocks("js");
    writeFileSync(join(app, "api.mjs"), api);
    writeFileSync(join(app, "artifact.mjs"), artifact);
    const first = run(process.execPath, ["api.mjs"], app);
    expect(first.stderr).toBe("");
    expect(first.stdout).toMatch(/^-?\d\.\d+(e-\d+)? -?\d\.\d+(e-\d+)?\n$/);
    const second = run(process.execPath, ["artifact.mjs"], app);
    expect(second.stderr).toBe("");
    expect(second.stdout).toBe("[ 3, 64 ] 192\n");
    // The same code as TypeScript against the package's and the artifact's typings.
    writeFileSync(join(app, "tsconfig.json"), readmeBlocks("json")[0]);
    writeFileSync(join(app, "api.ts"), api);
    writeFileSync(join(app, "artifact.ts"), artifact);
    writeFileSync(join(app, "wrong.ts"), `import { elaborateModel } from "difftc";\nexport const m: string = elaborateModel("x.dt").graph;\n`);
    const tsc = run(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "."], app);
    // The typings are real: the one wrong program fails, the README's pass.
    expect(tsc.stdout.trim().split("\n")).toEqual([expect.stringMatching(/^wrong\.ts\(2,14\): error TS2322: Type 'Graph' is not assignable to type 'string'\./)]);
  });
});

// `npm run build`: the package as users install it. tsc emits JavaScript and .d.ts for the
// stages (tsconfig.build.json) into dist/; the files the stages read at run time (the grammar,
// the standard library, templates, headers, common/weights.js with its declarations) are
// copied beside them. Plain JavaScript, so that it runs before anything is built.
import { execFileSync } from "node:child_process";
import { cpSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const STAGES = ["api", "common", "dsl", "compiler", "backends", "runtime", "cli"];

rmSync(join(root, "dist"), { recursive: true, force: true });
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });

/** TypeScript sources are compiled; every other file a stage holds (and hand-written .d.ts) is data it reads. */
const isAsset = (name) => !name.endsWith(".ts") || name.endsWith(".d.ts");

function copyAssets(dir) {
  for (const name of readdirSync(join(root, dir))) {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) copyAssets(path);
    else if (isAsset(name)) cpSync(join(root, path), join(root, "dist", path));
  }
}
for (const stage of STAGES) copyAssets(stage);

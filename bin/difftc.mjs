#!/usr/bin/env node
// The difftc command. An installed package runs its build (dist/, JavaScript emitted by
// `npm run build`); a checkout of the repository, which has the TypeScript sources and tsx
// among its dev dependencies, runs the sources, so that an edit needs no rebuild.
import { existsSync } from "node:fs";

const checkout = existsSync(new URL("../cli/run.ts", import.meta.url));
if (checkout) (await import("tsx/esm/api")).register();
const { runCli } = await import(checkout ? "../cli/run.ts" : "../dist/cli/run.js");
process.exitCode = await runCli(process.argv.slice(2));

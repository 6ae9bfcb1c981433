#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so the package needs no build step.
import { register } from "tsx/esm/api";

register();
const { runCli } = await import("../cli/run.ts");
process.exitCode = await runCli(process.argv.slice(2));

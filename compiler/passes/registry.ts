// Every pass, by name. Registering a pass is one line here.
import { decomposePass } from "./decompose.ts";
import type { Pass } from "./pass.ts";

export const PASSES: Pass[] = [decomposePass];

/** The optimising pipeline `compile` and `run` use unless told otherwise (`--passes none`). */
export const DEFAULT_PIPELINE: string[] = [];

// Every pass, by name. Registering a pass is one line here.
import { canonicalizePass } from "./canonicalize.ts";
import { constantFoldPass } from "./constant-fold.ts";
import { csePass } from "./cse.ts";
import { dcePass } from "./dce.ts";
import { decomposePass } from "./decompose.ts";
import { foldReshapesPass } from "./fold-reshapes.ts";
import { fuseAttentionPass } from "./fuse-attention.ts";
import { fuseDualSoftmaxPass } from "./fuse-dual-softmax.ts";
import { fuseElementwisePass } from "./fuse-elementwise.ts";
import type { Pass } from "./pass.ts";
import { recognizeAttentionPass } from "./recognize-attention.ts";

export const PASSES: Pass[] = [
  decomposePass,
  canonicalizePass,
  constantFoldPass,
  foldReshapesPass,
  csePass,
  dcePass,
  fuseElementwisePass,
  recognizeAttentionPass,
  fuseDualSoftmaxPass,
  fuseAttentionPass,
];

/** The optimising pipeline `compile` and `run` use unless told otherwise (`--passes none`). */
export const DEFAULT_PIPELINE: string[] = [
  "canonicalize",
  "constant-fold",
  "fold-reshapes",
  "cse",
  "dce",
  // fuse-elementwise pays off only on decomposed graphs (RMSNorm chains), and decompose would
  // undo the attention fusions: it stays opt-in (--passes ...,decompose,fuse-elementwise).
  "fuse-dual-softmax",
  "fuse-attention",
];

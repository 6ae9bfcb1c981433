// Every pass, by name. Registering a pass is one line here.
import { canonicalizePass } from "./canonicalize.ts";
import { constantFoldPass } from "./constant-fold.ts";
import { csePass } from "./cse.ts";
import { dcePass } from "./dce.ts";
import { decomposePass } from "./decompose.ts";
import { foldMatmulTransposesPass } from "./fold-matmul-transposes.ts";
import { foldReshapesPass } from "./fold-reshapes.ts";
import { fuseAttentionPass } from "./fuse-attention.ts";
import { fuseDualSoftmaxPass } from "./fuse-dual-softmax.ts";
import { fuseElementwisePass } from "./fuse-elementwise.ts";
import type { Pass } from "./pass.ts";
import { quantizeAttentionPass } from "./quantize-attention.ts";
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
  foldMatmulTransposesPass,
  quantizeAttentionPass,
];

const CLEANUPS = ["canonicalize", "constant-fold", "fold-reshapes", "cse", "dce"];

/**
 * The optimising pipeline `compile` and `run` use unless told otherwise (`--passes none`):
 * cleanups; the attention fusions, while attention is still one op; the rest into primitives
 * and cleaned again (RMSNorm, SwiGLU and residual chains are elementwise only then); weight
 * transposes read in place, once attention no longer needs to find q k^T; then elementwise
 * fusion into chains, prologues and epilogues.
 */
export const DEFAULT_PIPELINE: string[] = [...CLEANUPS, "fuse-dual-softmax", "fuse-attention", "decompose", ...CLEANUPS, "fold-matmul-transposes", "fuse-elementwise"];

// Attention fusion: `attention` becomes `flash_attention`, one kernel that streams over key
// blocks with an online softmax and never materialises the N×M map. Attention written by hand
// with primitives is recognised first (recognize-attention.ts).
import type { Pass } from "./pass.ts";
import { rebuild } from "./pass.ts";
import { recognizeAttention } from "./recognize-attention.ts";
import { count } from "./statistics.ts";

export const fuseAttentionPass: Pass = {
  name: "fuse-attention",
  description: "attention, or the same written by hand -> flash_attention: online softmax over key blocks, no N×M map",
  run: (graph) =>
    rebuild(recognizeAttention(graph), (node, r) => {
      if (node.op !== "attention") return r.copy(node);
      count("attention -> flash_attention");
      return r.add("flash_attention", node.operands.map((o) => r.value(o)), { ...node.attrs });
    }),
};

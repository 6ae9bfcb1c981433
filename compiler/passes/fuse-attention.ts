// Attention fusion: `attention` becomes `flash_attention`, one kernel that streams over key
// blocks with an online softmax and never materialises the N×M map.
import type { Pass } from "./pass.ts";
import { rebuild } from "./pass.ts";

export const fuseAttentionPass: Pass = {
  name: "fuse-attention",
  description: "attention -> flash_attention: online softmax over key blocks, no N×M map",
  run: (graph) =>
    rebuild(graph, (node, r) => {
      if (node.op !== "attention") return r.copy(node);
      return r.add("flash_attention", node.operands.map((o) => r.value(o)), { ...node.attrs });
    }),
};

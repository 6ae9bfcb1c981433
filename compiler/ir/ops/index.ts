// Importing this module registers every op.
import "./source.ts";
import "./elementwise.ts";
import "./reduce.ts";
import "./shape.ts";
import "./matmul.ts";
import "./nn.ts";
import "./attention.ts";
import "./flash.ts";
import "./quant.ts";
import "./fused.ts";

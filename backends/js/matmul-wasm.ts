// The JS backend's f32 matmul micro-kernel as WebAssembly SIMD (GotoBLAS's register blocking):
// a tile of TILE_ROWS rows × TILE_VECTORS v128s of columns of the product accumulates in v128
// locals while k runs, reading a row-major (one splat per row and k) and b packed in panels of
// the tile's width (panel[q][p][c] = b[p][q · width + c], zero past the last column). Lanes run
// across output columns, never across k, so every output's sum runs over k in increasing order
// with each product and sum rounded to f32: bit for bit a scalar loop with Math.fround after
// each product and sum. In F32X4_FMA lanes it accumulates with relaxed SIMD's relaxed_madd
// instead, which the engine may fuse (one rounding per term: not those bits, but as close or
// closer). Sizes are parameters: one module serves every kernel of an artifact.
import { Body, F32X4, I32, I32_ADD, I32_MUL, type Lanes, mem, V128, V128_LOAD, V128_STORE, wasmModule } from "./wasm-encoder.ts";

/** Rows of the product per tile (a's rows read together). */
export const TILE_ROWS = 4;
/** v128s of columns per tile: the panel width of packed b is TILE_VECTORS · lanes. */
export const TILE_VECTORS = 2;

/**
 * matmul(a, b, c, rows, k, panels) (byte offsets): c[i][j] = sum_p a[i][p] b[p][j] for rows
 * i < rows (a multiple of TILE_ROWS; a row-major, k per row) and columns j < panels · width,
 * b packed in `panels` panels, c row-major with panels · width per row. Panel by panel, each
 * read from cache by every tile of rows.
 */
export function matmulFunction(L: Lanes, tileRows = TILE_ROWS, tileVectors = TILE_VECTORS): Body {
  const f = new Body([["a", I32], ["b", I32], ["c", I32], ["rows", I32], ["k", I32], ["panels", I32]]);
  const rowIndices = Array.from({ length: tileRows }, (_, r) => r);
  const vectorIndices = Array.from({ length: tileVectors }, (_, v) => v);
  const acc = (r: number, v: number) => `acc${r}_${v}`;
  const stepBytes = 16 * tileVectors;
  f.get("k").i32(L.bytes).op(I32_MUL).set("rowBytes");
  f.get("panels").i32(stepBytes).op(I32_MUL).set("cRowBytes");
  f.get("k").i32(stepBytes).op(I32_MUL).set("panelBytes");
  f.i32(0).set("q");
  f.ifBelow("q", "panels", () =>
    f.loopWhileBelow("q", "panels", () => {
      f.i32(0).set("i");
      f.ifBelow("i", "rows", () =>
        f.loopWhileBelow("i", "rows", () => {
          for (const r of rowIndices) for (const v of vectorIndices) f.op(...L.constant(0)).set(acc(r, v), V128);
          f.get("a").get("i").get("rowBytes").op(I32_MUL, I32_ADD).set("x0");
          for (const r of rowIndices.slice(1)) f.get(`x${r - 1}`).get("rowBytes").op(I32_ADD).set(`x${r}`);
          f.get("x0").get("rowBytes").op(I32_ADD).set("xEnd");
          f.get("b").get("q").get("panelBytes").op(I32_MUL, I32_ADD).set("y");
          f.ifBelow("x0", "xEnd", () =>
            f.loopWhileBelow("x0", "xEnd", () => {
              for (const v of vectorIndices) f.get("y").simd(V128_LOAD, ...mem(16 * v)).set(`b${v}`, V128);
              for (const r of rowIndices) {
                f.get(`x${r}`).simd(L.loadSplat, ...mem(0, L.splatAlign)).set("x", V128);
                for (const v of vectorIndices) f.mulAdd(L, acc(r, v), "x", `b${v}`);
              }
              for (const r of rowIndices) f.bump(`x${r}`, L.bytes);
              f.bump("y", stepBytes);
            }),
          );
          // The tile's rows of c: row i + r at ci + r · cRowBytes.
          f.get("c").get("i").get("cRowBytes").op(I32_MUL, I32_ADD).get("q").i32(stepBytes).op(I32_MUL, I32_ADD).set("ci");
          for (const r of rowIndices) {
            for (const v of vectorIndices) f.get("ci").get(acc(r, v), V128).simd(V128_STORE, ...mem(16 * v));
            f.get("ci").get("cRowBytes").op(I32_ADD).set("ci");
          }
          f.bump("i", tileRows);
        }),
      );
      f.bump("q", 1);
    }),
  );
  return f;
}

/**
 * A module exporting `memory` and `matmul` in `lanes`: F32X4, or F32X4_FMA, which only engines
 * with relaxed SIMD accept (Node 20 behind --experimental-wasm-relaxed-simd).
 */
export function matmulModule(lanes: Lanes = F32X4): Uint8Array<ArrayBuffer> {
  return wasmModule([["matmul", matmulFunction(lanes)]]);
}

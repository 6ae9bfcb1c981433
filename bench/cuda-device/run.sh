#!/usr/bin/env bash
# The GPU benchmark, as one command on a machine with nvcc, an NVIDIA GPU and PyTorch (no Node,
# no network): builds the CUDA artifacts prepared by prepare.ts, checks them against the
# interpreter's outputs, runs compute-sanitizer, and times the fused diff attention kernel
# against PyTorch computing the same layer with two scaled_dot_product_attention calls.
set -euo pipefail
cd "$(dirname "$0")"
nvidia-smi -L
for dtype in f32 f16 bf16; do
  make -s -C "difftc-$dtype" runner ARCH="-arch=native" >/dev/null
done
echo "== check against the interpreter (N = 1024)"
python3 bench.py check
if command -v compute-sanitizer >/dev/null; then
  echo "== compute-sanitizer (memcheck, racecheck) on f32 at N = 1024"
  compute-sanitizer --tool memcheck --error-exitcode 1 difftc-f32/runner weights.safetensors inputs-f32-1024.safetensors /tmp/difftc-sanitized.safetensors | tail -2
  compute-sanitizer --tool racecheck --error-exitcode 1 difftc-f32/runner weights.safetensors inputs-f32-1024.safetensors /tmp/difftc-sanitized.safetensors | tail -2
else
  echo "compute-sanitizer not found: skipped"
fi
echo "== timing: difftc fused kernel vs PyTorch SDPA x2"
python3 bench.py time

"""The device side of the CUDA benchmark (run by run.sh): checks the difftc runner's outputs
against the interpreter's reference, and times the runner's kernels against PyTorch computing
the same diff attention layer (H = 8, d = 64, stripe pairing, lambda = 0.5, non-causal) with
two scaled_dot_product_attention calls, at N = 1024, 4096 and 16384, in f32, f16 and bf16."""
import json, os, struct, subprocess, sys, tempfile

import torch

H, D, LAMBDA = 8, 64, 0.5
DTYPES = {"f32": (torch.float32, "F32"), "f16": (torch.float16, "F16"), "bf16": (torch.bfloat16, "BF16")}
NAMES = {v[1]: k for k, v in DTYPES.items()}


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        raw = bytearray(data[8 + n + begin : 8 + n + end])
        out[name] = torch.frombuffer(raw, dtype=DTYPES[NAMES[e["dtype"]]][0]).reshape(e["shape"]) if end > begin else torch.zeros(e["shape"])
    return out


def write(path, tensors):
    header, blobs, at = {}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().cpu().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        dtype = next(k for k, v in DTYPES.items() if v[0] == t.dtype)
        header[name] = {"dtype": DTYPES[dtype][1], "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def runner(dtype, inputs, outputs, repeat=0):
    env = dict(os.environ, DIFFTC_REPEAT=str(repeat)) if repeat else os.environ
    r = subprocess.run([f"difftc-{dtype}/runner", "weights.safetensors", inputs, outputs], env=env, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"difftc-{dtype} runner failed: {r.stderr}")
    return r.stdout


def rel_l2(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def check():
    limits = {"f32": 1e-5, "f16": 2e-3, "bf16": 1.5e-2}
    failed = False
    for dtype in DTYPES:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.safetensors")
            runner(dtype, f"inputs-{dtype}-1024.safetensors", out)
            got, want = read(out)["y"], read(f"reference-{dtype}-1024.safetensors")["y"]
            err = rel_l2(got, want)
            ok = err <= limits[dtype] and torch.isfinite(got.float()).all().item()
            failed |= not ok
            print(f"{dtype}: relative L2 error {err:.2e} against the interpreter (limit {limits[dtype]:.0e}): {'ok' if ok else 'FAIL'}")
    if failed:
        sys.exit(1)


def torch_layer(q, k, v):
    n = q.shape[0]
    # Stripe pairing: heads 2h and 2h+1 of q and k form head h's two maps; v is 2d wide per head.
    q = q.view(n, H, 2, D).permute(2, 1, 0, 3)
    k = k.view(n, H, 2, D).permute(2, 1, 0, 3)
    v = v.view(n, H, 2 * D).permute(1, 0, 2)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    return (sdpa(q[0], k[0], v) - LAMBDA * sdpa(q[1], k[1], v)).permute(1, 0, 2)


def cuda_time(f, repeat):
    f()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        f()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def time():
    print(f"GPU: {torch.cuda.get_device_name()}, PyTorch {torch.__version__}")
    print(f"{'dtype':6} {'N':>6} {'difftc ms':>10} {'torch ms':>9} {'torch/difftc':>12} {'difftc TFLOP/s':>14} {'rel L2 vs torch':>15}")
    for n in (1024, 4096, 16384):
        for dtype, (tdtype, _) in DTYPES.items():
            g = torch.Generator(device="cuda").manual_seed(n)
            q, k, v = (torch.randn(n, 2 * H * D, generator=g, device="cuda", dtype=tdtype) for _ in range(3))
            with tempfile.TemporaryDirectory() as tmp:
                inputs, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
                write(inputs, {"q": q, "k": k, "v": v})
                repeat = 20 if n < 16384 else 5
                line = runner(dtype, inputs, out, repeat)
                ours = float(line.split("median ")[1].split(" ms")[0])
                got = read(out)["y"].cuda()
            with torch.no_grad():
                theirs = cuda_time(lambda: torch_layer(q, k, v), 20)
                err = rel_l2(got, torch_layer(q, k, v))
            flops = 12 * n * n * D * H  # two maps: q k^T (2 N^2 d each) and P V (2 N^2 2d each)
            print(f"{dtype:6} {n:>6} {ours:>10.3f} {theirs:>9.3f} {theirs / ours:>11.2f}x {flops / ours / 1e9:>14.2f} {err:>15.2e}")


if __name__ == "__main__":
    {"check": check, "time": time}[sys.argv[1]]()

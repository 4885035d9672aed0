#!/usr/bin/env python
"""Checks the CUDA kernels of kernel-fused-ops on a machine with a GPU: every operator against its
pure-PyTorch reference in ``kernel/fused.py``, forward and backward (through the ``kernel.fused``
functions, so the registered autograd formulas are exercised too), over shapes that reach each
kernel's code paths (vectorised and not, warp and block per row, channel and image groups, empty
inputs), plus bitwise determinism of the backward passes. Prints a table of max errors with
PASS/FAIL, then timings against eager PyTorch on the same device, and exits 1 on any failure.

Not a pytest file (the suite's tests cover CUDA through ``kernel_fused_ops.testing.devices``); run it
by hand where a GPU is, after ``pip install contrib/fused-ops``:

    python contrib/fused-ops/tests/gpu_check.py            # all checks and timings
    python contrib/fused-ops/tests/gpu_check.py --no-time  # checks only
    python contrib/fused-ops/tests/gpu_check.py --device cpu  # the same checks on the CPU kernels

Tolerances: float64 to ~1e-10 relative (only the summation order differs); float32 to 1e-5..1e-4
relative, since the CUDA kernels are built with --use_fast_math (exp/log to a few ulp, more for large
arguments) and sum in a different order than ATen; half/bfloat16 to their own precision.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from kernel import fused

OPERATORS = ["image_batch", "cross_entropy", "cross_entropy_backward", "bias_gelu", "bias_gelu_backward",
             "masked_mean_embedding", "masked_mean_embedding_backward"]

rows: list[tuple[str, str, str, str, bool]] = []  # operator, case, max error, tolerance, passed
timings: list[tuple[str, str, float, float]] = []  # operator, case, fused ms, eager ms


def record(op: str, case: str, got, want, rtol: float, atol: float) -> None:
    """Compares tensors (or a tuple of them) and adds a row to the table."""
    got = got if isinstance(got, (tuple, list)) else (got,)
    want = want if isinstance(want, (tuple, list)) else (want,)
    ok, worst = True, 0.0
    for g, w in zip(got, want, strict=True):
        if g is None or w is None:
            ok = ok and g is None and w is None
            continue
        if g.shape != w.shape or g.dtype != w.dtype:
            ok = False
            worst = float("inf")
            case += f" [shape/dtype {tuple(g.shape)} {g.dtype} vs {tuple(w.shape)} {w.dtype}]"
            continue
        if g.numel() == 0:
            continue
        gd, wd = g.detach().double().cpu(), w.detach().double().cpu()
        ok = ok and torch.allclose(gd, wd, rtol=rtol, atol=atol, equal_nan=True)
        both_nan = gd.isnan() & wd.isnan()
        same_inf = (gd == wd)
        diff = (gd - wd).abs().masked_fill(both_nan | same_inf, 0)
        worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
    rows.append((op, case, f"{worst:.2e}", f"r{rtol:.0e} a{atol:.0e}", ok))


def record_bool(op: str, case: str, ok: bool, detail: str = "") -> None:
    rows.append((op, case, detail or ("equal" if ok else "differs"), "exact", ok))


def grads_of(fn, inputs: list[torch.Tensor], grad_out_seed: int = 0):
    """fn(*inputs) and the gradients of (output * fixed random weights).sum() w.r.t. the float inputs."""
    leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    out = fn(*leaves)
    g = torch.Generator(device="cpu").manual_seed(grad_out_seed)
    weights = torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.device, out.dtype)
    wanted = [t for t in leaves if t.requires_grad]
    grads = torch.autograd.grad((out * weights).sum(), wanted, allow_unused=True) if out.numel() else \
        [torch.zeros_like(t) for t in wanted]
    return out.detach(), [None if gr is None else gr.detach() for gr in grads]


def timed(fn, sync, repeat: int = 20) -> float:
    """Median milliseconds of fn() after a warm-up."""
    for _ in range(3):
        fn()
    sync()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def tolerance(dtype: torch.dtype, loose: bool = False) -> tuple[float, float]:
    if dtype == torch.float64:
        return (1e-10, 1e-12)
    if dtype in (torch.float16, torch.bfloat16):
        return (2e-2, 2e-2) if dtype == torch.bfloat16 else (5e-3, 5e-3)
    return (1e-4, 1e-5) if loose else (1e-5, 1e-6)


# -- image_batch ---------------------------------------------------------------------------------------------
def check_image_batch(dev: str, gen: torch.Generator) -> None:
    op = "image_batch"

    def images(n, h, w, c, layout):
        if layout == "nchw-memory":  # CHW tensors stacked, viewed as NHWC
            return torch.randint(0, 256, (n, c, h, w), generator=gen, dtype=torch.uint8).to(dev).permute(0, 2, 3, 1)
        if layout == "sliced":  # a crop of a larger batch: every stride unusual
            big = torch.randint(0, 256, (n, h + 3, w + 5, c + 1), generator=gen, dtype=torch.uint8).to(dev)
            return big[:, 1:h + 1, 2:w + 2, :c]
        return torch.randint(0, 256, (n, h, w, c), generator=gen, dtype=torch.uint8).to(dev)

    cases = [((4, 32, 48, 3), "nhwc"), ((4, 32, 48, 3), "nchw-memory"), ((3, 17, 31, 3), "sliced"),
             ((2, 5, 7, 1), "nhwc"), ((2, 9, 11, 4), "nchw-memory"), ((2, 6, 10, 20), "nhwc"),
             ((0, 8, 8, 3), "nhwc"), ((3, 0, 8, 3), "nhwc"), ((16, 224, 224, 3), "nhwc")]
    for (n, h, w, c), layout in cases:
        x = images(n, h, w, c, layout)
        mean = [0.1 * (k + 1) for k in range(c)]
        std = [0.2 + 0.05 * k for k in range(c)]
        for flip in (None, torch.rand(n, generator=gen).lt(0.5).to(dev)):
            got = fused.image_batch(x, mean, std, flip)
            want = fused.image_batch_reference(x, mean, std, flip)
            record(op, f"{(n, h, w, c)} {layout} flip={flip is not None}", got, want, 1e-5, 1e-5)
    # one mean/std for all channels
    x = images(2, 8, 8, 3, "nhwc")
    record(op, "single mean/std", torch.ops.kernel_fused.image_batch(x, [0.5], [0.25], None),
           fused.image_batch_reference(x, [0.5] * 3, [0.25] * 3), 1e-5, 1e-5)
    # the list overload: 40 images (more than one launch group), each with its own strides
    imgs = [images(1, 20, 24, 3, ["nhwc", "nchw-memory", "sliced"][k % 3])[0] for k in range(40)]
    flip = torch.rand(40, generator=gen).lt(0.5).to(dev)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    record(op, "list of 40, mixed strides, flip", fused.image_batch(imgs, mean, std, flip),
           fused.image_batch_reference(torch.stack(imgs), mean, std, flip), 1e-5, 1e-5)
    record(op, "list of 1", fused.image_batch(imgs[:1], mean, std),
           fused.image_batch_reference(torch.stack(imgs[:1]), mean, std), 1e-5, 1e-5)


# -- cross_entropy -------------------------------------------------------------------------------------------
def check_cross_entropy(dev: str, gen: torch.Generator) -> None:
    op = "cross_entropy"
    shapes = [(0, 10), (1, 1), (64, 10), (257, 1000), (33, 1025), (8, 32000), (2048, 128)]
    for n, c in shapes:
        for dtype in (torch.float32, torch.float64):
            logits = (torch.randn(n, c, generator=gen, dtype=torch.float64) * 3).to(dev, dtype)
            target = torch.randint(0, c, (n,), generator=gen).to(dev)
            if n > 2:
                target[::5] = -100  # some ignored rows
            weight = torch.rand(c, generator=gen, dtype=torch.float64).add(0.1).to(dev, dtype)
            rtol, atol = tolerance(dtype, loose=True)
            for w in (None, weight):
                for smoothing in (0.0, 0.1):
                    for reduction in ("none", "mean", "sum"):
                        def ours(x, w=w, smoothing=smoothing, reduction=reduction):
                            return fused.cross_entropy(x, target, w, -100, smoothing, reduction)

                        def ref(x, w=w, smoothing=smoothing, reduction=reduction):
                            return fused.cross_entropy_reference(x, target, w, -100, smoothing, reduction)

                        got, got_grads = grads_of(ours, [logits])
                        want, want_grads = grads_of(ref, [logits])
                        case = (f"({n},{c}) {str(dtype)[6:]} w={w is not None} ls={smoothing} {reduction}")
                        record(op, case, (got, *got_grads), (want, *want_grads), rtol, atol)
    # every target ignored: mean is NaN, gradients zero
    logits = torch.randn(6, 5, generator=gen).to(dev)
    target = torch.full((6,), -100, device=dev)
    for reduction in ("mean", "sum", "none"):
        got, gg = grads_of(lambda x: fused.cross_entropy(x, target, reduction=reduction), [logits])
        want, wg = grads_of(lambda x: fused.cross_entropy_reference(x, target, reduction=reduction), [logits])
        record(op, f"all ignored {reduction}", (got, *gg), (want, *wg), 1e-6, 1e-6)
    # another ignore_index, a non-contiguous logits view
    logits = torch.randn(40, 30, generator=gen).to(dev).t()
    target = torch.randint(0, 40, (30,), generator=gen).to(dev)
    target[3] = 7
    got, gg = grads_of(lambda x: fused.cross_entropy(x, target, ignore_index=7, label_smoothing=0.2), [logits])
    want, wg = grads_of(lambda x: fused.cross_entropy_reference(x, target, ignore_index=7, label_smoothing=0.2),
                        [logits])
    record(op, "transposed logits, ignore_index=7", (got, *gg), (want, *wg), 1e-4, 1e-5)
    # determinism of forward and backward
    logits = torch.randn(4096, 1000, generator=gen).to(dev)
    target = torch.randint(0, 1000, (4096,), generator=gen).to(dev)
    a = grads_of(lambda x: fused.cross_entropy(x, target, label_smoothing=0.1), [logits])
    b = grads_of(lambda x: fused.cross_entropy(x, target, label_smoothing=0.1), [logits])
    record_bool(op, "deterministic (4096,1000)", torch.equal(a[0], b[0]) and torch.equal(a[1][0], b[1][0]))


# -- bias_gelu -----------------------------------------------------------------------------------------------
def check_bias_gelu(dev: str, gen: torch.Generator) -> None:
    op = "bias_gelu"
    shapes = [(0, 8), (7,), (3, 5), (64, 768), (4, 33, 3072), (1000, 33), (5, 0)]
    for shape in shapes:
        for dtype in (torch.float32, torch.float64):
            x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2).to(dev, dtype)
            bias = torch.randn(shape[-1], generator=gen, dtype=torch.float64).to(dev, dtype)
            rows = max(1, x.numel() // max(1, shape[-1]))
            rtol, atol = tolerance(dtype)
            for approximate in ("none", "tanh"):
                got, gg = grads_of(lambda a, b: fused.bias_gelu(a, b, approximate), [x, bias])
                want, wg = grads_of(lambda a, b: fused.bias_gelu_reference(a, b, approximate), [x, bias])
                # grad_bias sums `rows` terms in another order
                record(op, f"{shape} {str(dtype)[6:]} {approximate}", (got, *gg), (want, *wg), rtol,
                       atol * max(1.0, rows ** 0.5))
    # non-contiguous x (a transposed view), and a misaligned one (an offset slice: the unvectorised path)
    x = torch.randn(256, 64, generator=gen).to(dev).t()
    bias = torch.randn(256, generator=gen).to(dev)
    got, gg = grads_of(lambda a, b: fused.bias_gelu(a, b), [x, bias])
    want, wg = grads_of(lambda a, b: fused.bias_gelu_reference(a, b), [x, bias])
    record(op, "transposed x", (got, *gg), (want, *wg), 1e-5, 1e-5)
    base = torch.randn(64 * 129 + 1, generator=gen).to(dev)
    x = base[1:].view(64, 129)[:, :128]
    bias = torch.randn(128, generator=gen).to(dev)
    record(op, "misaligned x", torch.ops.kernel_fused.bias_gelu(x, bias, "none"),
           fused.bias_gelu_reference(x, bias), 1e-5, 1e-6)
    # half and bfloat16 (the CUDA kernels take them, computing in float), against the float32 reference
    if dev == "cuda":
        for dtype in (torch.float16, torch.bfloat16):
            x = torch.randn(32, 1024, generator=gen).to(dev, dtype)
            bias = torch.randn(1024, generator=gen).to(dev, dtype)
            got = torch.ops.kernel_fused.bias_gelu(x, bias, "tanh")
            want = fused.bias_gelu_reference(x.float(), bias.float(), "tanh").to(dtype)
            rtol, atol = tolerance(dtype)
            record(op, f"(32,1024) {str(dtype)[6:]} tanh", got, want, rtol, atol)
            g = torch.randn(32, 1024, generator=gen).to(dev, dtype)
            gx, gb = torch.ops.kernel_fused.bias_gelu_backward(g, x, bias, "none")
            xf = x.float().requires_grad_()
            bf = bias.float().requires_grad_()
            fused.bias_gelu_reference(xf, bf).backward(g.float())
            record(op, f"backward (32,1024) {str(dtype)[6:]}", (gx, gb), (xf.grad.to(dtype), bf.grad.to(dtype)),
                   rtol, atol * 8)
    x = torch.randn(8192, 1024, generator=gen).to(dev)
    bias = torch.randn(1024, generator=gen).to(dev)
    a = grads_of(lambda p, q: fused.bias_gelu(p, q), [x, bias])
    b = grads_of(lambda p, q: fused.bias_gelu(p, q), [x, bias])
    record_bool(op, "deterministic (8192,1024)", all(torch.equal(p, q) for p, q in zip(a[1], b[1])))


# -- masked_mean_embedding -----------------------------------------------------------------------------------
def check_embedding(dev: str, gen: torch.Generator) -> None:
    op = "masked_mean_embedding"
    cases = [(10, 4, 3, 5), (1000, 64, 32, 16), (5000, 768, 16, 128), (100, 3, 0, 5), (100, 1030, 4, 7),
             (5, 16, 64, 40), (20, 8, 6, 0)]
    for v, d, n, length in cases:
        for dtype in (torch.float32, torch.float64):
            weight = torch.randn(v, d, generator=gen, dtype=torch.float64).to(dev, dtype)
            indices = torch.randint(0, v, (n, length), generator=gen).to(dev)
            mask = torch.rand(n, length, generator=gen).lt(0.3).to(dev)
            if n > 1:
                mask[0] = True  # a row of padding only: zeros
                mask[1] = False  # a row without padding
                indices[0, :] = -1  # padding may hold any id
            rtol, atol = tolerance(dtype)
            got, gg = grads_of(lambda w: fused.masked_mean_embedding(w, indices, mask), [weight])
            want, wg = grads_of(lambda w: fused.masked_mean_embedding_reference(w, indices.clamp(min=0), mask),
                                [weight])
            record(op, f"V={v} D={d} N={n} L={length} {str(dtype)[6:]}", (got, *gg), (want, *wg), rtol,
                   atol * max(1.0, (n * length / max(v, 1)) ** 0.5))
    # weight a slice of a wider table (row stride != D), and every token the same id (one long run)
    wide = torch.randn(50, 40, generator=gen).to(dev)
    weight = wide[:, 4:36]
    indices = torch.full((64, 32), 3, device=dev)
    mask = torch.rand(64, 32, generator=gen).lt(0.5).to(dev)
    got, gg = grads_of(lambda w: fused.masked_mean_embedding(w, indices, mask), [weight])
    want, wg = grads_of(lambda w: fused.masked_mean_embedding_reference(w, indices, mask), [weight])
    record(op, "sliced weight, one repeated id", (got, *gg), (want, *wg), 1e-5, 1e-5)
    weight = torch.randn(30000, 256, generator=gen).to(dev)
    indices = torch.randint(0, 300, (512, 64), generator=gen).to(dev)
    mask = torch.rand(512, 64, generator=gen).lt(0.2).to(dev)
    a = grads_of(lambda w: fused.masked_mean_embedding(w, indices, mask), [weight])
    b = grads_of(lambda w: fused.masked_mean_embedding(w, indices, mask), [weight])
    record_bool(op, "deterministic backward", torch.equal(a[1][0], b[1][0]))


# -- timings -------------------------------------------------------------------------------------------------
def time_all(dev: str, gen: torch.Generator) -> None:
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def pair(op, case, ours, ref):
        timings.append((op, case, timed(ours, sync), timed(ref, sync)))

    x = torch.randint(0, 256, (128, 224, 224, 3), generator=gen, dtype=torch.uint8).to(dev)
    flip = torch.rand(128, generator=gen).lt(0.5).to(dev)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    pair("image_batch", "(128,224,224,3) nhwc flip", lambda: fused.image_batch(x, mean, std, flip),
         lambda: fused.image_batch_reference(x, mean, std, flip))
    xc = x.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
    pair("image_batch", "(128,224,224,3) nchw-memory", lambda: fused.image_batch(xc, mean, std),
         lambda: fused.image_batch_reference(xc, mean, std))

    for n, c in ((8192, 1000), (4096, 32000)):
        logits = torch.randn(n, c, generator=gen).to(dev).requires_grad_()
        target = torch.randint(0, c, (n,), generator=gen).to(dev)
        pair("cross_entropy", f"fwd ({n},{c})", lambda: fused.cross_entropy(logits.detach(), target, label_smoothing=0.1),
             lambda: fused.cross_entropy_reference(logits.detach(), target, label_smoothing=0.1))
        pair("cross_entropy", f"fwd+bwd ({n},{c})",
             lambda: fused.cross_entropy(logits, target, label_smoothing=0.1).backward(),
             lambda: fused.cross_entropy_reference(logits, target, label_smoothing=0.1).backward())

    x = torch.randn(8192, 4096, generator=gen).to(dev).requires_grad_()
    bias = torch.randn(4096, generator=gen).to(dev).requires_grad_()
    g = torch.randn(8192, 4096, generator=gen).to(dev)
    for approximate in ("none", "tanh"):
        pair("bias_gelu", f"fwd (8192,4096) {approximate}", lambda: fused.bias_gelu(x.detach(), bias.detach(), approximate),
             lambda: fused.bias_gelu_reference(x.detach(), bias.detach(), approximate))
        pair("bias_gelu", f"fwd+bwd (8192,4096) {approximate}",
             lambda: fused.bias_gelu(x, bias, approximate).backward(g),
             lambda: fused.bias_gelu_reference(x, bias, approximate).backward(g))

    weight = torch.randn(50000, 512, generator=gen).to(dev).requires_grad_()
    indices = torch.randint(0, 50000, (1024, 128), generator=gen).to(dev)
    mask = torch.rand(1024, 128, generator=gen).lt(0.3).to(dev)
    pair("masked_mean_embedding", "fwd V=50000 D=512 (1024,128)",
         lambda: fused.masked_mean_embedding(weight.detach(), indices, mask),
         lambda: fused.masked_mean_embedding_reference(weight.detach(), indices, mask))
    pair("masked_mean_embedding", "fwd+bwd V=50000 D=512 (1024,128)",
         lambda: fused.masked_mean_embedding(weight, indices, mask).sum().backward(),
         lambda: fused.masked_mean_embedding_reference(weight, indices, mask).sum().backward())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--no-time", action="store_true", help="skip the timings")
    args = parser.parse_args()
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible", file=sys.stderr)
        return 1
    if fused.op("bias_gelu") is None:
        print(f"gpu_check: kernel-fused-ops is not loaded ({fused.library_error() or 'not installed'})",
              file=sys.stderr)
        return 1
    import kernel_fused_ops

    print(f"torch {torch.__version__}, build {kernel_fused_ops.build_info()}, "
          f"device {torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}")
    for name in OPERATORS + ["image_batch.list"]:
        key = {"cuda": "CUDA", "cpu": "CPU"}[dev]
        registered = torch._C._dispatch_has_kernel_for_dispatch_key(f"kernel_fused::{name}", key)
        record_bool(name, f"has a {key} kernel", registered, "yes" if registered else "no")
    gen = torch.Generator().manual_seed(0)
    for check in (check_image_batch, check_cross_entropy, check_bias_gelu, check_embedding):
        try:
            check(dev, gen)
        except Exception as exc:  # a crash fails that operator's remaining checks; the others still run
            rows.append((check.__name__[6:], f"raised {type(exc).__name__}: {exc}"[:110], "-", "-", False))

    width = max(len(r[1]) for r in rows)
    print(f"\n{'operator':<24} {'case':<{width}} {'max err':>9} {'tolerance':>13}  result")
    for op, case, err, tol, ok in rows:
        print(f"{op:<24} {case:<{width}} {err:>9} {tol:>13}  {'PASS' if ok else 'FAIL'}")
    failures = sum(not r[4] for r in rows)
    print(f"\n{len(rows) - failures} passed, {failures} failed")

    if not args.no_time and failures == 0:
        time_all(dev, gen)
        print(f"\n{'operator':<24} {'case':<36} {'fused ms':>9} {'eager ms':>9} {'speedup':>8}")
        for op, case, ours, ref in timings:
            print(f"{op:<24} {case:<36} {ours:>9.3f} {ref:>9.3f} {ref / ours:>7.2f}x")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""contrib/fused-ops: each fused operator against eager PyTorch and torch.compile (issue 15).

Three paths per case, on the same inputs in this process:
- eager: the operator's pure-PyTorch reference in ``kernel.fused`` (``*_reference``), or the module
  a user would otherwise write (``nn.EmbeddingBag(mode="mean", padding_idx=0)`` on 2-D ids);
- compiled: ``torch.compile`` of that same function or module (``dynamic=False``), in steady state;
  its compile time (wall seconds of the first call, Inductor's cache in a fresh folder) beside it;
- fused: the operator of ``kernel-fused-ops`` (``torch.ops.kernel_fused.*``) through the functions
  of ``kernel.fused`` that the plugins call (``image_batch``, ``cross_entropy``, ``bias_gelu``,
  ``masked_mean_embedding``, ``EmbeddingBag``).
Cases: the image batch (uint8 (128, 32, 32, 3) to normalised float NCHW, half the samples flipped),
stored NHWC and stored NCHW (a permuted view, as the vision plugin's collated pixels are); cross-entropy
forward+backward at (N, C) = (128, 10), (256, 100), (1024, 1000), and (1024, 1000) with class weights
and label smoothing 0.1; bias+GELU forward+backward at (128, 512), (4096, 1024), exact and tanh; the
masked mean of embeddings forward+backward at (N, L, V, D) = (64, 50, 20000, 64), (256, 200, 30000, 128),
rows of random lengths 1..L padded with id 0.
Per 32x32 image besides: the vision plugin's per-sample path (a CIFAR-like split built by
``kernel.build.prepare`` with RandomHorizontalFlip and Normalize, its items read one by one, then
``default_collate``), its batch path (uint8 items, collate, the batch stage of ``kernel.data.batch_form``,
which calls ``kernel.fused.image_batch``), and a plain copy of the output into a new tensor (the floor).

The paths take turns ``--reps`` times (7); each turn calls one path as often as fills ``--min-time``
(0.2 s); the median turn counts, per call. On CPU the process's CPU time decides (one torch thread
unless ``--threads``: in training the data path runs in loader workers), the wall-time ratio beside it.
Where ``torch.cuda.is_available()`` the same cases run on the GPU, timed in wall time between
``torch.cuda.synchronize()`` calls. Without the library (not built, or ``KERNEL_DISABLE_PLUGINS=fused_ops``)
the script says so and times eager and compiled only.

Targets (issue 15, CPU): image batch at most 8 us per 32x32 image; cross-entropy fwd+bwd at least 1.5x eager.
Run: .venv/bin/python benchmarks/fused_ops.py [--reps N] [--min-time S] [--threads N] [--no-compile]
     [--only image,cross_entropy,bias_gelu,embedding] [--images N]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from vision_pipeline import MEAN, STD, write_cifar  # noqa: E402  (beside this script)

BATCH = 128
IMAGE_TARGET = 8.0  # us per 32x32 image, fused, CPU
CE_TARGET = 1.5  # eager / fused, cross-entropy forward+backward, CPU
OPERATORS = ("image", "cross_entropy", "bias_gelu", "embedding")


# -- timing -----------------------------------------------------------------------------------------
def per_call(fn, calls: int, sync=None) -> tuple[float, float]:
    """(cpu s, wall s) per call of ``fn`` from ``calls`` calls in a row (between two ``sync()``)."""
    if sync:
        sync()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    if sync:
        sync()
    return (time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls


def measure(paths: dict, reps: int, min_time: float, sync=None) -> dict:
    """``{path: (cpu s, wall s) per call}``: the median of ``reps`` interleaved turns, each calling
    the path as often as fills ``min_time`` (two calls before, untimed)."""
    calls = {}
    for name, fn in paths.items():
        fn()
        fn()
        calls[name] = max(1, math.ceil(min_time / max(per_call(fn, 1, sync)[1], 1e-7)))
    turns = {name: [] for name in paths}
    for _ in range(reps):
        for name, fn in paths.items():
            turns[name].append(per_call(fn, calls[name], sync))
    return {name: tuple(statistics.median(t[i] for t in ts) for i in (0, 1)) for name, ts in turns.items()}


# -- cases ------------------------------------------------------------------------------------------
class Case:
    """One row: ``eager(*args)`` and ``fused(*args)`` compute the same; with ``grads`` (leaf tensors
    among the inputs) each call also runs the backward of ``grad_out`` (or of the scalar loss)."""

    def __init__(self, group, label, op, eager, fused, args, grads=(), grad_out=None, images=0):
        self.group, self.label, self.op, self.eager, self.fused = group, label, op, eager, fused
        self.args, self.grads, self.grad_out, self.images = args, list(grads), grad_out, images

    def call(self, fn):
        """A closure running one forward (and backward) of ``fn``, returning the output and gradients."""
        def run():
            for t in self.grads:
                t.grad = None
            out = fn(*self.args)
            if self.grads:
                out.backward(self.grad_out)
            return [out.detach()] + [t.grad for t in self.grads]
        return run


def cases(only: set, device: str) -> list[Case]:
    import torch

    from kernel import fused

    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g).to(device)  # noqa: E731
    out = []
    if "image" in only:
        flip = (torch.rand(BATCH, generator=g) < 0.5).to(device)
        pixels = torch.randint(0, 256, (BATCH, 32, 32, 3), generator=g, dtype=torch.uint8).to(device)
        for label, images in (("NHWC memory, flip", pixels),
                              ("NCHW memory, flip", pixels.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1))):
            out.append(Case("image batch", f"(128, 32, 32, 3) {label}", "image_batch", fused.image_batch_reference,
                            fused.image_batch, (images, MEAN, STD, flip), images=BATCH))
    if "cross_entropy" in only:
        for n, c, smooth in ((128, 10, False), (256, 100, False), (1024, 1000, False), (1024, 1000, True)):
            weight = (torch.rand(c, generator=g) + 0.5).to(device) if smooth else None
            logits = rand(n, c).requires_grad_()
            target = torch.randint(0, c, (n,), generator=g).to(device)
            out.append(Case("cross-entropy fwd+bwd", f"({n}, {c})" + (" weight, smoothing 0.1" if smooth else ""),
                            "cross_entropy", fused.cross_entropy_reference, fused.cross_entropy,
                            (logits, target, weight, -100, 0.1 if smooth else 0.0), [logits]))
    if "bias_gelu" in only:
        for n, d in ((128, 512), (4096, 1024)):
            for approximate in ("none", "tanh"):
                x, bias = rand(n, d).requires_grad_(), rand(d).requires_grad_()
                out.append(Case("bias+GELU fwd+bwd", f"({n}, {d}) {approximate}", "bias_gelu",
                                fused.bias_gelu_reference, fused.bias_gelu, (x, bias, approximate), [x, bias],
                                rand(n, d)))
    if "embedding" in only:
        for n, length, vocab, dim in ((64, 50, 20000, 64), (256, 200, 30000, 128)):
            lengths = torch.randint(1, length + 1, (n, 1), generator=g)
            mask = torch.arange(length).view(1, -1) >= lengths  # True at padding
            ids = torch.randint(1, vocab, (n, length), generator=g).masked_fill(mask, 0).to(device)
            bag = torch.nn.EmbeddingBag(vocab, dim, mode="mean", padding_idx=0).to(device)
            ours = fused.EmbeddingBag(vocab, dim, mode="mean", padding_idx=0).to(device)
            ours.weight = bag.weight  # one parameter: the same gradient is compared
            shape, grad_out = f"({n}, {length}, {vocab}, {dim})", rand(n, dim)
            out.append(Case("masked mean embedding fwd+bwd", f"{shape} reference", "masked_mean_embedding",
                            fused.masked_mean_embedding_reference, fused.masked_mean_embedding,
                            (bag.weight, ids, mask.to(device)), [bag.weight], grad_out))
            out.append(Case("masked mean embedding fwd+bwd", f"{shape} nn.EmbeddingBag", "masked_mean_embedding",
                            bag, ours, (ids,), [bag.weight], grad_out))
    return out


def run_case(case: Case, args, has_fused: bool, sync) -> dict:
    """Times of the case's paths, the compile seconds, and the fused result's largest difference to eager."""
    import torch

    paths = {"eager": case.call(case.eager)}
    row = {"compile_s": None, "diff": None}
    if args.compile:
        torch._dynamo.reset()
        compiled = case.call(torch.compile(case.eager, dynamic=False))
        start = time.perf_counter()
        compiled()
        if sync:
            sync()
        row["compile_s"] = time.perf_counter() - start
        paths["compiled"] = compiled
    if has_fused:
        paths["fused"] = case.call(case.fused)
        row["diff"] = max(float((a - b).abs().max()) if a.numel() else 0.0
                          for a, b in zip(paths["eager"](), paths["fused"]()))
    row["times"] = measure(paths, args.reps, args.min_time, sync)
    if case.images:  # the floor: a plain copy of the output, into a new tensor as the operators make one
        result = paths["eager"]()[0]
        row["copy"] = measure({"copy": result.clone}, args.reps, args.min_time, sync)["copy"]
    return row


# -- the vision plugin's data path, per image ------------------------------------------------------------
def loader_paths(args) -> dict:
    """``{path: (cpu s, wall s) per image}`` for the vision plugin's per-sample path and its batch path,
    on a CIFAR-like split (``--images`` 32x32 images), batches of 128 in a shuffled order."""
    import torch
    from torch.utils.data import default_collate

    from kernel.build import prepare
    from kernel.data import batch_form
    from kernel.workflow import Workflow

    with tempfile.TemporaryDirectory() as tmp:
        n = write_cifar(Path(tmp), max(args.images, 2 * BATCH))
        dataset = {"use": "vision.CIFAR10", "root": tmp, "split": {"valid": 0.0},
                   "transforms": [{"use": "vision.RandomHorizontalFlip"},
                                  {"use": "vision.Normalize", "mean": MEAN, "std": STD}]}
        plan = prepare(Workflow(name="bench", dataset=dataset, models=[{"use": "vision.simple_cnn"}]))
        split = plan.data.splits["train"]
        pixels, stage = batch_form(split)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
        batches = [order[i:i + BATCH] for i in range(0, n - BATCH + 1, BATCH)]

        def cycling(read):
            state = {"i": 0}

            def call():
                state["i"] = (state["i"] + 1) % len(batches)
                return read(batches[state["i"]])
            return call

        paths = {"per-sample path": cycling(lambda idx: default_collate([split[i] for i in idx])),
                 "batch path": cycling(lambda idx: stage([pixels[i] for i in idx]))}
        return {name: (cpu / BATCH, wall / BATCH)
                for name, (cpu, wall) in measure(paths, args.reps, args.min_time).items()}


# -- report -----------------------------------------------------------------------------------------
def us(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:,.1f}"


def ratio(a, b) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def report(rows: list, clock: int):
    """The table of one device; ``clock`` 0: CPU time decides (wall-time ratio beside), 1: wall time."""
    print(f"| operator | case | eager us | compiled us | compile s | fused us | eager/fused | compiled/fused | "
          f"{'eager/fused (wall) | ' if clock == 0 else ''}max abs diff |")
    print("|---|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if clock == 0 else "") + "---:|")
    for case, row in rows:
        e, c, f = (row["times"].get(p, (None, None))[clock] for p in ("eager", "compiled", "fused"))
        wall = f"{ratio(row['times']['eager'][1], row['times'].get('fused', (0, None))[1])} | " if clock == 0 else ""
        compile_s = "-" if row["compile_s"] is None else f"{row['compile_s']:.1f}"
        diff = "-" if row["diff"] is None else f"{row['diff']:.1e}"
        print(f"| {case.group} | {case.label} | {us(e)} | {us(c)} | {compile_s} | {us(f)} | {ratio(e, f)} | "
              f"{ratio(c, f)} | {wall}{diff} |")


def image_lines(rows: list, loader: dict | None, has_fused: bool):
    """The image cases per 32x32 image (CPU time), beside the plugin's data paths and the copy floor."""
    rows = [(case, row) for case, row in rows if case.images]
    if loader:
        how = "kernel.fused.image_batch, " + ("fused" if has_fused else "reference: library not loaded")
        print(f"per 32x32 image, vision plugin (CPU time): per-sample path (items + default_collate) "
              f"{us(loader['per-sample path'][0])} us; batch path (uint8 items + collate + {how}) "
              f"{us(loader['batch path'][0])} us")
    for case, row in rows:
        t = {name: cpu / case.images for name, (cpu, _) in row["times"].items()}
        parts = [f"{name} {us(s)}" for name, s in t.items()]
        parts.append(f"copy of the output {us(row['copy'][0] / case.images)}")
        print(f"per 32x32 image, {case.label} (CPU time, us): " + ", ".join(parts))
    if not rows:
        return
    if not has_fused:
        print(f"target: image batch <= {IMAGE_TARGET:g} us per 32x32 image -> not measured (library not loaded)")
        return
    worst, label = max((row["times"]["fused"][0] / case.images, case.label) for case, row in rows)
    print(f"target: image batch <= {IMAGE_TARGET:g} us per 32x32 image -> "
          f"{'met' if worst <= IMAGE_TARGET else 'NOT met'} (fused, slowest case {label}: {worst * 1e6:.1f} us)")


def cross_entropy_line(rows: list, has_fused: bool):
    rows = [(case, row) for case, row in rows if case.op == "cross_entropy"]
    if not rows:
        return
    if not has_fused:
        print(f"target: cross-entropy fwd+bwd >= {CE_TARGET:g}x eager -> not measured (library not loaded)")
        return
    low, label = min((row["times"]["eager"][0] / row["times"]["fused"][0], case.label) for case, row in rows)
    print(f"target: cross-entropy fwd+bwd >= {CE_TARGET:g}x eager -> {'met' if low >= CE_TARGET else 'NOT met'} "
          f"(lowest eager/fused {low:.2f}, at {label})")


def section(device: str, args, library: str) -> None:
    import torch

    from kernel import fused

    sync = torch.cuda.synchronize if device == "cuda" else None
    rows = []
    for case in cases(args.only, device):
        has_fused = fused.has_kernel(case.op, device)
        rows.append((case, run_case(case, args, has_fused, sync)))
    has_fused = any("fused" in row["times"] for _, row in rows)
    clock = 0 if device == "cpu" else 1
    what = (f"CPU time of the process, {torch.get_num_threads()} torch thread(s)" if device == "cpu" else
            f"wall time with torch.cuda.synchronize, {torch.cuda.get_device_name()}")
    print(f"\n## {device.upper()}: us per call ({what}), median of {args.reps} interleaved turns of at least "
          f"{args.min_time} s; fused: {library if has_fused else 'not timed (' + library + ')'}")
    report(rows, clock)
    if device == "cpu":
        loader = loader_paths(args) if "image" in args.only and args.images else None
        image_lines(rows, loader, has_fused)
        cross_entropy_line(rows, has_fused)


def library_state() -> str:
    from kernel import fused
    from kernel.plugins import fused_ops_status

    status = fused_ops_status()
    if not status["installed"]:
        return "kernel-fused-ops not installed (pip install contrib/fused-ops)"
    if status["disabled"]:
        return "kernel-fused-ops turned off (KERNEL_DISABLE_PLUGINS=fused_ops)"
    if fused.op("image_batch") is None:
        return f"kernel-fused-ops not importable ({fused.library_error()})"
    kernels = [d for d in ("cpu", "cuda") if fused.has_kernel("image_batch", d)]
    return f"kernel-fused-ops {status['version']} (kernels: {', '.join(kernels) or 'none'})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7, help="interleaved turns per path; the median counts")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds of calls in each turn")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: as in a loader worker)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="leave out torch.compile")
    parser.add_argument("--only", default=",".join(OPERATORS), help=f"some of {','.join(OPERATORS)}")
    parser.add_argument("--images", type=int, default=10000,
                        help="CIFAR-like images for the plugin's data paths (0: leave them out)")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    if args.only - set(OPERATORS):
        parser.error(f"--only: unknown {', '.join(sorted(args.only - set(OPERATORS)))}")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # compile times from a cold cache
        import torch

        torch.set_num_threads(args.threads)
        library = library_state()
        print(f"fused operators: {library}; torch {torch.__version__}, {os.cpu_count()} CPU(s), "
              f"load average {os.getloadavg()[0]:.2f} at the start")
        if args.compile:  # Inductor's one-time start (compile workers, headers) is not any case's compile time
            start = time.perf_counter()
            torch.compile(lambda x: x * 2 + 1, dynamic=False)(torch.ones(8))
            print(f"torch.compile: first compile in the process (x * 2 + 1) {time.perf_counter() - start:.1f} s; "
                  f"compile s below: the first call of each case (forward and backward)")
        section("cpu", args, library)
        if torch.cuda.is_available():
            section("cuda", args, library)
        else:
            print(f"\nGPU section skipped: torch.cuda.is_available() is False (torch {torch.__version__}, "
                  f"built with CUDA {torch.version.cuda or 'none'}; no GPU visible here)")


if __name__ == "__main__":
    main()

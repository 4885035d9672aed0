"""plugin-interpretability: integrated gradients through the plugin against Captum called by hand.

A short real run of the quickstart's data (``vision.digits``, Resize 32, Normalize fitted on the
training split) trains each model given (``vision.simple_cnn`` and ``vision.resnet18``, one epoch,
in a temporary workspace and KERNEL_HOME); ``kernel.load`` loads it. For a batch of validation
images (32 and 128 by default) the paths below take turns ``--reps`` times (2); each one's best call
counts (CPU time of the process decides, wall time beside it):

- Captum by hand (the baseline): ``IntegratedGradients(model).attribute(x, baselines=zeros,
  target=targets, n_steps=50)``, Captum's default ``internal_batch_size=None`` (every step of every
  sample in one pass); the targets (the predicted classes) computed beforehand, not timed;
- Captum by hand with the internal batch size the plugin chose (the fairest hand-written variant);
- the plugin: ``kernel.load(run).explain(x, method="integrated_gradients", raw=False, n_steps=50)``,
  which finds the predicted classes itself and chooses the internal batch from the model's measured
  activation memory (``engine.auto_batch``, budget ``engine.MEMORY``).

Target: Captum by hand / plugin at least 0.95 (CPU time per call). The plugin's time is split
(its functions wrapped in this process, their files left as they are) into the API's own part
(building the method, the result objects), ``engine.auto_batch`` (one sample through the model
with hooks), Captum's work, and the engine's own (the forward pass for the predicted classes,
the baseline, copying out). The attributions of every path are compared with the baseline's (max
abs difference). Then each model's largest batch once more with the budget cut to ``--small-mib``
(64 MiB): the internal batch shrinks, the attributions stay those of the unbatched baseline.

Memory: torch's allocator is not seen by tracemalloc, so each configuration runs once more in a
fresh process of its own, which records how far its resident set's peak grows over its resident set
just before the call (Linux: VmHWM, reset before the call; ``ru_maxrss`` cannot be reset, and a child
inherits its parent's); beside it the engine's estimate (its measured activations
per sample, backward included, times the evaluations per pass).

Run: .venv/bin/python benchmarks/explain.py [--models USE ...] [--batches N ...] [--steps N]
     [--reps N] [--epochs N] [--small-mib N] [--memory-batches N ...] [--threads N]
The defaults take about 5 minutes on a 2-core machine (docs/benchmarks.md has the results).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

MIB = 1 << 20
BASE = "Captum by hand (baseline)"
SAME = "Captum by hand, plugin's internal batch"
PLUGIN = "plugin: kernel.load(run).explain"
SMALL = "plugin, budget {} MiB"


def workflow(args):
    import kernel

    return kernel.Workflow.from_dict({
        "name": "explain-bench", "seed": 0,
        "dataset": {"use": "vision.digits", "split": {"valid": 0.2},
                    "transforms": [{"use": "vision.Resize", "size": 32},
                                   {"use": "vision.Normalize", "mean": "auto", "std": "auto"}]},
        "models": [{"name": use.rsplit(".", 1)[-1], "use": use} for use in args.models],
        "trainer": {"use": "kernel.supervised", "epochs": args.epochs, "batch_size": 64,
                    "optimizer": {"use": "torch.optim.AdamW", "lr": 3e-3}, "metrics": ["kernel.accuracy"]},
    })


def valid_batch(loaded, size: int):
    import torch

    samples = loaded.samples("valid", size)
    if len(samples) < size:
        raise SystemExit(f"the validation split has {len(samples)} images, fewer than --batches {size}")
    return torch.stack([x for x, _ in samples])


def predicted(model, x):
    import torch

    with torch.no_grad():
        return model(x).argmax(1)


def by_hand(model, x, targets, steps: int, internal_batch_size=None):
    import torch
    from captum.attr import IntegratedGradients

    return IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=targets, n_steps=steps,
                                                internal_batch_size=internal_batch_size)


def through_plugin(loaded, x, steps: int):
    return loaded.explain(x, method="integrated_gradients", raw=False, n_steps=steps).attributions


@contextlib.contextmanager
def budget(mib: int | None):
    """The engine's memory budget (``engine.MEMORY``, read by each ``auto_batch`` call) set to ``mib`` MiB."""
    from plugin_interpretability import engine

    if mib is None:
        yield
        return
    saved = engine.MEMORY
    engine.MEMORY = mib * MIB
    try:
        yield
    finally:
        engine.MEMORY = saved


def per_sample_bytes(loaded, x) -> float:
    """The engine's measure of one evaluation's activations, backward included (bytes)."""
    from plugin_interpretability import engine
    from plugin_interpretability.model_inputs import Forward

    huge = 1 << 50
    return huge / engine.auto_batch(Forward(loaded.model, x), x, (), budget=huge)


class Split:
    """CPU time of the plugin's parts, by wrapping its functions in this process; a part inside
    another is taken out of it. ``chosen``: the internal batch size ``auto_batch`` last returned."""

    LABELS = {
        "api": "the API: building the method, the result objects",
        "auto_batch": "engine.auto_batch: one sample through the model with hooks",
        "captum": "Captum's IntegratedGradients.attribute",
        "engine": "the engine's own: forward pass for the predicted classes, baseline, copying out",
    }

    def __init__(self):
        self.cpu = dict.fromkeys(["explain", "attribute_batch", "auto_batch", "captum"], 0.0)
        self.calls = 0
        self.chosen = None

    def wrap(self, owner, name: str, part: str, keep=False):
        original = owner.__dict__[name]

        @functools.wraps(original)
        def timed(*a, **kw):
            start = time.process_time()
            try:
                out = original(*a, **kw)
                if keep:
                    self.chosen = out
                return out
            finally:
                self.cpu[part] += time.process_time() - start

        setattr(owner, name, timed)
        return owner, name, original

    @contextlib.contextmanager
    def installed(self):
        from plugin_interpretability import api, engine, methods

        saved = [self.wrap(api, "explain", "explain"), self.wrap(engine, "attribute_batch", "attribute_batch"),
                 self.wrap(engine, "auto_batch", "auto_batch", keep=True),
                 self.wrap(methods.IntegratedGradients, "attribute", "captum")]
        try:
            yield self
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)

    def parts(self) -> dict:
        c = self.cpu
        return {"api": c["explain"] - c["attribute_batch"], "auto_batch": c["auto_batch"], "captum": c["captum"],
                "engine": c["attribute_batch"] - c["auto_batch"] - c["captum"]}


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def max_diff(a, b) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


# -- memory: one configuration in a fresh process ---------------------------------------------------
def memory_mib() -> tuple[float, float]:
    """(resident now, peak resident) of this process in MiB. Linux: from /proc/self/status, whose
    peak (VmHWM) :func:`reset_peak` can reset; ``ru_maxrss`` cannot be reset, and a child process
    inherits its parent's (the kernel keeps it across fork and exec)."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = peak / MIB if sys.platform == "darwin" else peak / 1024
        return peak, peak


def reset_peak() -> bool:
    """Resets the peak resident set to the present one (Linux 4.0 on); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(spec: dict):
    """One call of one path, its peak resident growth printed as a JSON line."""
    import torch

    torch.set_num_threads(spec["threads"])
    import captum.attr  # noqa: F401  (imported before the measure, as any session would)

    import kernel

    loaded = kernel.load(spec["run"], workspace=spec["workspace"])
    x = valid_batch(loaded, spec["batch"])
    targets = predicted(loaded.model, x)
    chosen = None
    with budget(spec.get("mib")):
        from plugin_interpretability import engine

        auto = engine.auto_batch
        if spec["path"] != "hand":
            def recording(*a, **kw):
                nonlocal chosen
                chosen = auto(*a, **kw)
                return chosen

            engine.auto_batch = recording
        exact = reset_peak()
        before, peak_before = memory_mib()
        if spec["path"] == "hand":
            by_hand(loaded.model, x, targets, spec["steps"])
        else:
            through_plugin(loaded, x, spec["steps"])
        engine.auto_batch = auto
    _, peak = memory_mib()
    print(json.dumps({"growth": peak - before, "exact": exact or peak > peak_before, "chosen": chosen}))


def measure_memory(args, run_id: str, workspace: str, batch: int, path: str, mib=None) -> dict:
    spec = {"run": run_id, "workspace": workspace, "batch": batch, "path": path, "mib": mib,
            "steps": args.steps, "threads": args.threads}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env=os.environ.copy())
    if proc.returncode != 0:
        raise SystemExit(f"the memory measure of {path} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the benchmark --------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["vision.simple_cnn", "vision.resnet18"])
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--small-mib", type=int, default=64)
    parser.add_argument("--memory-batches", nargs="*", type=int, default=None,
                        help="batches whose memory is measured in fresh processes (default: the largest)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))

    with tempfile.TemporaryDirectory() as folder:
        os.environ["KERNEL_HOME"] = str(Path(folder) / "home")  # the user's own store stays untouched
        run(args, str(Path(folder) / "workspace"))


def run(args, workspace: str):
    import torch

    torch.set_num_threads(args.threads)
    import captum.attr  # noqa: F401

    import kernel
    from plugin_interpretability import engine

    memory_batches = args.memory_batches if args.memory_batches is not None else [max(args.batches)]
    start = time.perf_counter()
    results = workflow(args).run(workspace=workspace, quiet=True, artifacts=False)
    trained = time.perf_counter() - start
    runs = {}
    for use, r in zip(args.models, results):
        loaded = kernel.load(r.id, workspace=workspace)
        runs[use.rsplit(".", 1)[-1]] = (r.id, loaded)

    rows, splits, memory, small, notes = [], {}, [], [], []
    per_sample_of = {}
    for name, (run_id, loaded) in runs.items():
        model = loaded.model
        warm = valid_batch(loaded, 2)  # the first calls (imports, the catalog, the allocator) not timed
        by_hand(model, warm, predicted(model, warm), args.steps)
        through_plugin(loaded, warm, args.steps)
        per_sample = per_sample_of[name] = per_sample_bytes(loaded, warm)
        for size in args.batches:
            x = valid_batch(loaded, size)
            targets = predicted(model, x)
            split = Split()
            times = {BASE: [], SAME: [], PLUGIN: []}
            outs = {}
            for _ in range(args.reps):
                with split.installed():
                    outs[PLUGIN], wall, cpu = timed(lambda: through_plugin(loaded, x, args.steps))
                split.calls += 1
                times[PLUGIN].append((wall, cpu))
                outs[BASE], wall, cpu = timed(lambda: by_hand(model, x, targets, args.steps))
                times[BASE].append((wall, cpu))
                outs[SAME], wall, cpu = timed(lambda: by_hand(model, x, targets, args.steps, split.chosen))
                times[SAME].append((wall, cpu))
            chosen = split.chosen
            evaluations = size * args.steps
            best = {p: (min(c for _, c in t), min(w for w, _ in t), statistics.median(c for _, c in t))
                    for p, t in times.items()}
            for path in (BASE, SAME, PLUGIN):
                batch = evaluations if path == BASE else min(chosen, evaluations)
                rows.append((name, size, path, batch, -(-evaluations // batch), *best[path],
                             best[BASE][0] / best[path][0], best[BASE][1] / best[path][1],
                             max_diff(outs[path], outs[BASE])))
            splits[name, size] = ({k: v / split.calls for k, v in split.parts().items()}, best[PLUGIN][0])
            if size == max(args.batches):
                label = SMALL.format(args.small_mib)
                with budget(args.small_mib):
                    probe = Split()
                    with probe.installed():
                        out, wall, cpu = timed(lambda: through_plugin(loaded, x, args.steps))
                small.append((name, size, label, min(probe.chosen, evaluations), -(-evaluations // probe.chosen), cpu,
                              best[BASE][0] / cpu, max_diff(out, outs[BASE]), float(outs[BASE].abs().max())))
            if size in memory_batches:
                for path, mib, label, batch in (("hand", None, BASE, evaluations), ("plugin", None, PLUGIN, chosen),
                                                ("plugin", args.small_mib, SMALL.format(args.small_mib), None)):
                    got = measure_memory(args, run_id, workspace, size, path, mib)
                    batch = min(batch or got["chosen"], evaluations)
                    memory.append((name, size, label, batch, per_sample * batch / MIB, got["growth"],
                                   got["exact"]))

    report(args, runs, rows, splits, small, memory, notes, trained, per_sample_of, engine.MEMORY / MIB,
           time.perf_counter() - start)


def report(args, runs, rows, splits, small, memory, notes, trained, per_sample_of, budget_mib, total):
    import torch

    print(f"integrated gradients, {args.steps} steps (Gauss-Legendre), baselines zeros, predicted classes; "
          f"vision.digits resized to 32x32, normalised; models trained {args.epochs} epoch(s) ({trained:.0f} s); "
          f"torch {torch.__version__.split('+')[0]}, {torch.get_num_threads()} thread(s); best of {args.reps} "
          f"interleaved calls; engine budget {budget_mib:.0f} MiB")
    for name, (run_id, loaded) in runs.items():
        params = sum(p.numel() for p in loaded.model.parameters())
        print(f"- {name}: {params / 1e6:.2f} M parameters, engine's measure {per_sample_of[name] / MIB:.2f} MiB "
              f"per evaluation (activations x{3} for the backward pass), run {run_id}")
    print()
    print("| model | batch | path | internal batch | passes | cpu s/call | ratio (cpu) | wall s/call "
          "| ratio (wall) | median cpu s | max abs diff to baseline |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, path, batch, passes, cpu, wall, med, r_cpu, r_wall, diff in rows:
        print(f"| {name} | {size} | {path} | {batch} | {passes} | {cpu:.3f} | {r_cpu:.3f} | {wall:.3f} | {r_wall:.3f} "
              f"| {med:.3f} | {diff:.1e} |")
    print()
    print("| model | batch | part of the plugin's call | cpu s/call | share |")
    print("|---|---:|---|---:|---:|")
    for (name, size), (parts, whole) in splits.items():
        total_parts = sum(parts.values()) or 1.0
        for part, seconds in parts.items():
            print(f"| {name} | {size} | {Split.LABELS[part]} | {seconds:.4f} | {100 * seconds / total_parts:.1f} % |")
    print()
    print("| model | batch | path | internal batch | passes | cpu s (one call) | ratio (cpu) "
          "| max abs diff to unbatched | max abs attribution |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name, size, label, batch, passes, cpu, ratio, diff, scale in small:
        print(f"| {name} | {size} | {label} | {batch} | {passes} | {cpu:.3f} | {ratio:.3f} | {diff:.1e} | {scale:.2e} |")
    if memory:
        print()
        print("| model | batch | path | internal batch | engine's estimate per pass (MiB) | peak resident growth (MiB) |")
        print("|---|---:|---|---:|---:|---:|")
        for name, size, label, batch, estimate, growth, above in memory:
            print(f"| {name} | {size} | {label} | {batch} | {estimate:,.0f} | "
                  f"{growth:,.0f}{'' if above else ' (at most: under an earlier peak)'} |")
    for note in notes:
        print(f"note: {note}")
    ratios = [r[8] for r in rows if r[2] == PLUGIN]
    against = [r[8] / s[8] for r, s in zip(rows[2::3], rows[1::3])]
    worst = min(ratios)
    print(f"target: ratio >= 0.95 -> {'met' if worst >= 0.95 else 'NOT met'} (lowest {worst:.3f}, "
          f"configurations {', '.join(f'{x:.3f}' for x in ratios)}); against Captum by hand with the plugin's "
          f"internal batch: {', '.join(f'{x:.3f}' for x in against)}; whole benchmark {total:.0f} s")


if __name__ == "__main__":
    main()

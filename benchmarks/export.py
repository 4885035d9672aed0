"""plugin-onnx: onnxruntime against eager PyTorch on CPU, float and int8, and `kernel predict` (issue 14).

Short real runs of the shipped examples are trained in a temporary workspace and KERNEL_HOME: the
quickstart's four models (``vision.digits`` resized to 32x32, normalised; simple_cnn, resnet18,
mobilenet_v2, mobilenet_v2-narrow), one text model (``text.cnn`` of examples/text_sentiment.toml) and
one audio model (``audio.m5`` of examples/spoken_digits.toml), each for its example's own number of
epochs unless ``--epochs`` says otherwise. Each run is exported through the plugin
(``kernel.load(run).export(format="onnx", quantize="dynamic")``: the float file and its int8 file, both
verified by the plugin), and for the convolutional models (those with a Conv layer) once more with
``quantize="static"`` (QDQ, calibrated on training samples).

Speed, in this process: the first 1 and 32 validation samples, preprocessed beforehand (the run's
torch batch for eager, the plugin's numpy feed for onnxruntime; not timed), go through
- eager PyTorch: the loaded model in eval mode under ``torch.inference_mode()``;
- onnxruntime, float file; onnxruntime, int8 files (dynamic, static): ``OnnxRunner(path)(feed)``,
  a session with ``intra_op_num_threads`` equal to torch's threads, ``inter_op_num_threads`` 1.
The paths take turns ``--reps`` times (7); each turn calls one path as often as fills ``--min-time``
(0.25 s); the median turn counts, per call. CPU time of the process decides, wall time beside it.
Latency per batch, throughput (samples/s), ratio eager / path; the scores' max abs difference to eager.
Target: onnxruntime (the float file) at least 2x eager at batch 1 for the convolutional models.

Accuracy on the whole validation split: eager, onnxruntime float, onnxruntime int8 (each mode); the
int8 file's difference to the float file's in points. Target: within 1 point. File sizes beside.

``kernel predict``: the real command (``python -m kernel.cli predict MODEL.onnx FILE --json``) in a
subprocess on one input file written from a validation sample (PNG, WAV, a text line), ``--predict-repeat``
times (5), median wall and CPU time against ``python -c pass`` and ``python -c "import onnxruntime"``;
its own timing (model load, preprocessing and inference per input) for 1 input and for 32.

Run: .venv/bin/python benchmarks/export.py [--vision NAME ...] [--text USE ...] [--audio USE ...]
     [--epochs N] [--short-audio] [--batches N ...] [--reps N] [--min-time S] [--threads N]
     [--no-static] [--predict-repeat N] [--predict-inputs N] [--profile]
The defaults take about 5 minutes on a 2-core machine (docs/benchmarks.md has the results).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _rates import per_call  # noqa: E402  (beside this script)

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
EAGER = "eager PyTorch"
FLOAT = "onnxruntime float"
DYNAMIC = "onnxruntime int8 dynamic"
STATIC = "onnxruntime int8 static"
SPEED_TARGET = 2.0  # onnxruntime / eager at batch 1, convolutional models
POINTS_TARGET = 1.0  # int8 accuracy within this many points of the float file's
# the audio example with fewer voices (as the tests shorten it)
SHORT_AUDIO = {"dataset.params.voices": ["en", "en-us", "en+f3"], "dataset.params.rates": [140, 210],
               "dataset.params.pitches": [50]}


# -- training ---------------------------------------------------------------------------------------
def entries(example: str, wanted: list[str]) -> list[dict]:
    """The example's [[models]] entries named in ``wanted`` (by name, use or the use's last part)."""
    import kernel

    models = kernel.Workflow.from_file(ROOT / "examples" / f"{example}.toml").to_dict()["models"]
    out = []
    for want in wanted:
        found = [m for m in models if want in (m.get("name"), m["use"], m["use"].rsplit(".", 1)[-1])]
        if not found:
            known = ", ".join(m.get("name") or m["use"] for m in models)
            raise SystemExit(f"{example}.toml has no model {want!r}; it has {known}")
        out.append(found[0])
    return out


def train(args, workspace: str) -> list[dict]:
    """One workflow per example with the models chosen: ``[{name, example, run, epochs, seconds}]``."""
    import kernel

    runs = []
    for example, wanted, extra in (("quickstart", args.vision, {}), ("text_sentiment", args.text, {}),
                                   ("spoken_digits", args.audio, SHORT_AUDIO if args.short_audio else {})):
        if not wanted:
            continue
        workflow = kernel.Workflow.from_file(ROOT / "examples" / f"{example}.toml")
        overrides = {"models": entries(example, wanted), **extra}
        if args.epochs:
            overrides["trainer.epochs"] = args.epochs
        workflow = workflow.with_overrides(overrides)
        start = time.perf_counter()
        results = workflow.run(workspace=workspace, quiet=True, artifacts=False)
        seconds = (time.perf_counter() - start) / len(results)
        epochs = workflow.to_dict()["trainer"]["params"]["epochs"]
        for entry, r in zip(overrides["models"], results):
            name = entry.get("name") or entry["use"].rsplit(".", 1)[-1]
            runs.append({"name": name, "example": example, "run": r.id, "epochs": epochs, "seconds": seconds})
    return runs


# -- exporting --------------------------------------------------------------------------------------
def export(loaded, folder: Path, mode: str, notes: list, name: str) -> dict:
    """``{"float": Exported, "int8": Exported}`` through the plugin's API (what was written and passed)."""
    start = time.perf_counter()
    try:
        done = loaded.export(format="onnx", path=f"{folder / mode}{os.sep}", quantize=mode)
    except Exception as exc:  # a failure is a finding of the benchmark: noted, the other paths go on
        notes.append(f"{name}: export with quantize={mode} failed: {type(exc).__name__}: {exc}")
        return {}
    out = {"seconds": time.perf_counter() - start}
    for d in done:
        key = "int8" if d.details.get("quantized") else "float"
        if not d.passed:
            notes.append(f"{name}: the {key} file ({mode}) was refused: {d.verification.line()}")
            continue
        out[key] = d
    return out


def is_convolutional(model) -> bool:
    import torch

    return any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())


def session_options(threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


# -- timing -----------------------------------------------------------------------------------------
def measure(paths: dict, reps: int, min_time: float) -> dict:
    """``{path: (cpu s per call, wall s per call)}``: the median of ``reps`` interleaved turns, each
    calling the path as often as fills ``min_time`` (two calls before, untimed)."""
    calls = {}
    for name, fn in paths.items():
        fn()
        fn()
        wall, _ = per_call(fn, 1)
        calls[name] = max(1, math.ceil(min_time / max(wall, 1e-7)))
    turns = {name: [] for name in paths}
    for _ in range(reps):
        for name, fn in paths.items():
            turns[name].append(per_call(fn, calls[name]))
    return {name: (statistics.median(c for _, c in t), statistics.median(w for w, _ in t)) for name, t in turns.items()}


def validation(loaded, count: int | None = None) -> tuple[list, list]:
    raw = loaded.data.raw["valid"]
    items = [raw[i] for i in range(len(raw) if count is None else min(count, len(raw)))]
    return [x for x, _ in items], [int(y) for _, y in items]


def first(raws: list, size: int) -> list:
    """The first ``size`` samples, repeated if the split is smaller."""
    return [raws[i % len(raws)] for i in range(size)]


# -- one model ----------------------------------------------------------------------------------------
def benchmark_model(args, spec: dict, workspace: str, folder: Path, notes: list) -> dict:
    import numpy as np
    import torch

    import kernel
    from kernel.data import forward
    from plugin_onnx.export import Feeds, chunks, exported_scores, feed_batches, reference_scores, scores_of
    from plugin_onnx.runtime import OnnxRunner

    name = spec["name"]
    loaded = kernel.load(spec["run"], workspace=workspace)
    model = loaded.model
    conv = is_convolutional(model)
    exports = {"dynamic": export(loaded, folder / name, "dynamic", notes, name)}
    if conv and args.static:
        exports["static"] = export(loaded, folder / name, "static", notes, name)
    float_export = exports["dynamic"].get("float") or (exports.get("static") or {}).get("float")
    if float_export is None:
        notes.append(f"{name}: no verified float file, nothing to time")
        return {**spec, "conv": conv, "params": sum(p.numel() for p in model.parameters()), "speed": [],
                "accuracy": {}, "sizes": {}, "exports": exports}
    files = {FLOAT: float_export}
    if "int8" in exports["dynamic"]:
        files[DYNAMIC] = exports["dynamic"]["int8"]
    if "int8" in exports.get("static", {}):
        files[STATIC] = exports["static"]["int8"]
    feeds = Feeds(loaded, in_graph=False)
    feeds.pad_to = float_export.details.get("sequence_length")
    options = session_options(args.threads)
    runners = {path: OnnxRunner(d.path, session_options=options) for path, d in files.items()}
    raws, labels = validation(loaded)

    speed = []
    for size in args.batches:
        batch = first(raws, size)
        eager_in = loaded.preprocess(batch)
        feed = feeds.batch(batch, runners[FLOAT].inputs)

        def eager(x=eager_in):
            with torch.inference_mode():
                return forward(model, x)

        paths = {EAGER: eager, **{p: (lambda r=r, f=feed: r(f)) for p, r in runners.items()}}
        reference = scores_of(eager())
        diffs = {p: float(np.abs(np.asarray(fn(), dtype=np.float64) - reference).max()) if p != EAGER else 0.0
                 for p, fn in paths.items()}
        times = measure(paths, args.reps, args.min_time)
        shapes = {k: list(v.shape) for k, v in feed.items()}
        for path, (cpu, wall) in times.items():
            speed.append({"batch": size, "path": path, "cpu": cpu, "wall": wall, "ratio_cpu": times[EAGER][0] / cpu,
                          "ratio_wall": times[EAGER][1] / wall, "diff": diffs[path], "shapes": shapes})
        if args.profile and size == min(args.batches):
            profiled = (eager_in, feed)

    if args.profile:  # after the timing, so that the profilers cannot touch it
        profile(name, model, *profiled, files[FLOAT].path, args.threads)
    accuracy = {EAGER: float((reference_scores(loaded, chunks(raws)).argmax(-1) == np.asarray(labels)).mean())}
    for path, runner in runners.items():
        scores = exported_scores(runner, feed_batches(feeds, chunks(raws), runner.inputs))
        accuracy[path] = float((scores.argmax(-1) == np.asarray(labels)).mean())
    sizes = {path: d.path.stat().st_size for path, d in files.items()}
    return {**spec, "conv": conv, "params": sum(p.numel() for p in model.parameters()), "speed": speed,
            "accuracy": accuracy, "sizes": sizes, "valid": len(labels), "exports": exports, "files": files,
            "loaded": loaded, "raws": raws, "kind": runners[FLOAT].metadata.get("input", {}).get("kind")}


def profile(name: str, model, eager_in, feed, path, threads: int, calls: int = 200):
    """Where batch 1 goes: the top operators of eager PyTorch (torch.profiler) and of onnxruntime (its
    own profiler), over ``calls`` calls each."""
    import onnxruntime as ort
    import torch

    from kernel.data import forward

    with torch.inference_mode(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            forward(model, eager_in)
    print(f"\nprofile {name}, batch 1, eager PyTorch, {calls} calls (self CPU time):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    options = session_options(threads)
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(path).with_suffix(""))
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    for _ in range(calls):
        session.run(None, feed)
    trace = json.loads(Path(session.end_profiling()).read_text())
    by_op, runs = {}, 0.0
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"].get("op_name", "?")
            by_op[op] = by_op.get(op, 0) + event["dur"]
        elif event.get("name") == "model_run":
            runs += event["dur"]
    print(f"profile {name}, batch 1, onnxruntime float, {calls} calls: {runs / calls:.0f} us per run; by operator:")
    for op, us in sorted(by_op.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {op:<24} {us / calls:9.1f} us per run  {100 * us / max(runs, 1):5.1f} %")


# -- kernel predict ---------------------------------------------------------------------------------
def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_child(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, cpu s, stdout) of a command that must succeed."""
    cpu, wall = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    wall, cpu = time.perf_counter() - wall, children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return wall, cpu, proc.stdout


def input_files(result: dict, folder: Path, count: int) -> list[str]:
    """``count`` inputs for ``kernel predict`` written from validation samples, as the model reads them."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    raws, kind = first(result["raws"], count), result["kind"]
    if kind == "text":
        file = folder / "texts.txt"
        file.write_text("".join(" ".join(str(x).split()) + "\n" for x in raws), encoding="utf-8")
        one = folder / "text.txt"
        one.write_text(" ".join(str(raws[0]).split()) + "\n", encoding="utf-8")
        return [f"@{one}", f"@{file}"]
    out = []
    for i, x in enumerate(raws):
        array = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
        if kind == "image":
            pixels = np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)
            mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[0]]
            path = folder / f"input{i}.png"
            Image.fromarray(pixels[0] if mode == "L" else pixels.transpose(1, 2, 0), mode).save(path)
        elif kind == "audio":
            path = folder / f"input{i}.wav"
            ints = np.clip(np.round(array.T * 32768), -32768, 32767).astype("<i2")
            with wave.open(str(path), "wb") as w:
                w.setnchannels(array.shape[0])
                w.setsampwidth(2)
                w.setframerate(int(result["loaded"].facts["sample_rate"]))
                w.writeframes(ints.tobytes())
        else:
            path = folder / f"input{i}.npy"
            np.save(path, array.astype(np.float32))
        out.append(str(path))
    return out


def predict_times(args, result: dict, folder: Path) -> dict:
    files = input_files(result, folder / "inputs" / result["name"], args.predict_inputs)
    model = str(result["files"][FLOAT].path)
    base = [sys.executable, "-m", "kernel.cli", "predict", "--json", model]
    one_inputs, many_inputs = ([files[0]], [files[1]]) if result["kind"] == "text" else ([files[0]], files)
    walls, cpus, timings = [], [], []
    for _ in range(args.predict_repeat):
        wall, cpu, out = timed_child(base + one_inputs)
        walls.append(wall)
        cpus.append(cpu)
        timings.append(json.loads(out)["timing"])
    many = [json.loads(timed_child(base + many_inputs)[2])["timing"] for _ in range(args.predict_repeat)]

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    return {"name": result["name"], "kind": result["kind"], "wall": statistics.median(walls),
            "cpu": statistics.median(cpus), "load": med(timings, "load_s"),
            "one_pre": med(timings, "preprocess_ms_per_input"), "one_inf": med(timings, "inference_ms_per_input"),
            "many_pre": med(many, "preprocess_ms_per_input"), "many_inf": med(many, "inference_ms_per_input"),
            "size": os.path.getsize(model)}


def baselines(repeat: int) -> dict:
    out = {}
    for label, code in (("python -c pass", "pass"), ('python -c "import numpy, onnxruntime"',
                                                     "import numpy, onnxruntime")):
        runs = [timed_child([sys.executable, "-c", code])[:2] for _ in range(repeat)]
        out[label] = (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
    return out


# -- the benchmark ----------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vision", nargs="*", default=["simple_cnn", "resnet18", "mobilenet_v2",
                                                         "mobilenet_v2-narrow"],
                        help="models of examples/quickstart.toml (by name); the flag alone leaves the example out")
    parser.add_argument("--text", nargs="*", default=["text.cnn"], help="models of examples/text_sentiment.toml")
    parser.add_argument("--audio", nargs="*", default=["audio.m5"], help="models of examples/spoken_digits.toml")
    parser.add_argument("--epochs", type=int, default=None, help="default: each example's own")
    parser.add_argument("--short-audio", action="store_true", help="the audio example with 3 voices, 2 rates, 1 pitch")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-static", dest="static", action="store_false",
                        help="skip the static int8 files (default: made for the convolutional models)")
    parser.add_argument("--predict-repeat", type=int, default=5)
    parser.add_argument("--predict-inputs", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="the top operators of each path at the smallest batch")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        os.environ["KERNEL_HOME"] = str(Path(folder) / "home")  # the user's own store stays untouched
        run(args, str(Path(folder) / "workspace"), Path(folder))


def run(args, workspace: str, folder: Path):
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    import onnxruntime

    start = time.perf_counter()
    runs = train(args, workspace)
    results, notes = [], []
    for spec in runs:
        results.append(benchmark_model(args, spec, workspace, folder / "exports", notes))
    timed = [r for r in results if r.get("files")]
    bare = baselines(args.predict_repeat)
    predicts = [predict_times(args, r, folder) for r in timed]
    report(args, results, predicts, bare, notes, torch.__version__, onnxruntime.__version__,
           time.perf_counter() - start)


def verdict_speed(row: dict, conv: bool, smallest: int) -> str:
    if not conv or row["batch"] != smallest or row["path"] != FLOAT:
        return ""
    ratio = row["ratio_cpu"]
    return "met" if ratio >= SPEED_TARGET else f"NOT met ({ratio:.2f} < {SPEED_TARGET:g})"


def report(args, results, predicts, bare, notes, torch_version, ort_version, total):
    smallest = min(args.batches)
    print(f"eager PyTorch (torch {torch_version.split('+')[0]}, eval, inference_mode) against onnxruntime "
          f"{ort_version} (CPUExecutionProvider, graph optimisations all); {args.threads} thread(s) each "
          f"(torch.set_num_threads, intra_op_num_threads; inter-op 1); median of {args.reps} interleaved turns "
          f"of at least {args.min_time} s, per call; inputs preprocessed beforehand")
    print()
    print("| model | example | parameters | convolutional | epochs | train s | export s (float + int8) "
          "| validation samples | run |")
    print("|---|---|---:|---|---:|---:|---:|---:|---|")
    for r in results:
        seconds = " / ".join(f"{e['seconds']:.1f} ({mode})" for mode, e in r["exports"].items() if e)
        print(f"| {r['name']} | {r['example']} | {r['params'] / 1e6:.2f} M | {'yes' if r['conv'] else 'no'} "
              f"| {r['epochs']} | {r['seconds']:.0f} | {seconds} | {r.get('valid', '')} | {r['run']} |")
    print()
    print("| model | batch | path | ms/batch (cpu) | samples/s (cpu) | eager/path (cpu) | ms/batch (wall) "
          "| samples/s (wall) | eager/path (wall) | max abs diff to eager | target (>= 2x at batch 1, conv) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        for row in r["speed"]:
            b = row["batch"]
            print(f"| {r['name']} | {b} | {row['path']} | {1000 * row['cpu']:.3f} | {b / row['cpu']:,.0f} "
                  f"| {row['ratio_cpu']:.2f} | {1000 * row['wall']:.3f} | {b / row['wall']:,.0f} "
                  f"| {row['ratio_wall']:.2f} | {row['diff']:.1e} | {verdict_speed(row, r['conv'], smallest)} |")
    print()
    print("| model | float file | int8 dynamic | int8 static | accuracy eager | ORT float | ORT int8 dynamic (points) "
          "| ORT int8 static (points) | target (int8 within 1 point) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    deltas = []
    for r in results:
        acc, sizes = r["accuracy"], r["sizes"]
        if not acc:
            continue
        cells, worst = [], None
        for path in (DYNAMIC, STATIC):
            if path in acc:
                delta = 100 * (acc[path] - acc[FLOAT])
                deltas.append((r["name"], path, delta))
                worst = delta if worst is None else min(worst, delta)
                cells.append(f"{100 * acc[path]:.2f} % ({delta:+.2f})")
            else:
                cells.append("-")
        size = [f"{sizes[p] / MIB:.2f} MiB" if p in sizes else "-" for p in (FLOAT, DYNAMIC, STATIC)]
        verdict = "" if worst is None else ("met" if worst >= -POINTS_TARGET else f"NOT met ({worst:+.2f})")
        print(f"| {r['name']} | {' | '.join(size)} | {100 * acc[EAGER]:.2f} % | {100 * acc[FLOAT]:.2f} % "
              f"| {cells[0]} | {cells[1]} | {verdict} |")
    print()
    wall0, cpu0 = bare["python -c pass"]
    print(f"kernel predict MODEL.onnx INPUT --json (python -m kernel.cli, float file), median of {args.predict_repeat} "
          f"runs; timing: the command's own --json")
    print("| command | input | wall s | above python -c pass | cpu s | model load s | ms per input, 1 input "
          f"(preprocessing + inference) | ms per input, {args.predict_inputs} inputs (preprocessing + inference) |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for label, (wall, cpu) in bare.items():
        print(f"| `{label}` | | {wall:.3f} | {wall - wall0:.3f} | {cpu:.3f} | | | |")
    for p in predicts:
        print(f"| predict {p['name']} ({p['size'] / MIB:.1f} MiB) | {p['kind']} | {p['wall']:.3f} "
              f"| {p['wall'] - wall0:.3f} | {p['cpu']:.3f} | {p['load']:.3f} "
              f"| {p['one_pre'] + p['one_inf']:.2f} ({p['one_pre']:.2f} + {p['one_inf']:.2f}) "
              f"| {p['many_pre'] + p['many_inf']:.2f} ({p['many_pre']:.2f} + {p['many_inf']:.2f}) |")
    for note in notes:
        print(f"note: {note}")
    ratios = [(r["name"], row["ratio_cpu"]) for r in results if r["conv"] for row in r["speed"]
              if row["batch"] == smallest and row["path"] == FLOAT]
    if ratios:
        low = min(x for _, x in ratios)
        print(f"target (speed): onnxruntime float >= {SPEED_TARGET:g}x eager at batch {smallest}, convolutional "
              f"models -> {'met' if low >= SPEED_TARGET else 'NOT met'} "
              f"({', '.join(f'{n} {x:.2f}' for n, x in ratios)})")
    if deltas:
        worst = min(d for _, _, d in deltas)
        print(f"target (accuracy): int8 within {POINTS_TARGET:g} point of the float file -> "
              f"{'met' if worst >= -POINTS_TARGET else 'NOT met'} (worst {worst:+.2f} points; "
              f"{', '.join(f'{n} {p.split()[-1]} {d:+.2f}' for n, p, d in deltas)}); whole benchmark {total:.0f} s")


if __name__ == "__main__":
    main()

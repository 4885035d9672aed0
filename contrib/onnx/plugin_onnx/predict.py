"""``kernel predict MODEL.onnx INPUT...``: onnxruntime, numpy and Pillow only; torch is never imported.

The file's metadata (written by ``kernel export``) says how to read an input (image file, text, audio
file, or a .npy array) and the portable steps that turn it into the graph's inputs, as the run's
transforms did. Every input is read and checked before the model runs: a wrong file is one clear
message (exit 2) and nothing is printed as if it were a prediction.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from kernel import KernelError

from . import portable
from .runtime import OnnxRunner

BATCH = 32


def main(args) -> int:
    started = time.perf_counter()
    if args.top < 1:
        raise KernelError(f"--top must be 1 or more, not {args.top}")
    path = Path(args.model)
    if not path.is_file():
        raise KernelError(f"{path}: no such file")
    if path.suffix != ".onnx":
        raise KernelError(f"{path} is not an ONNX file: kernel predict runs the .onnx files that `kernel export` "
                          f"writes (TorchScript and .pt2 files load with torch.jit.load and torch.export.load)")
    runner = OnnxRunner(path)
    meta = runner.metadata
    if not meta:
        raise KernelError(f"{path} has no kernel metadata: it was not written by `kernel export`, so how to read "
                          f"its inputs is unknown")
    loaded = time.perf_counter()
    names, items = read_inputs(meta, args.inputs)
    prepared = time.perf_counter()
    scores = run(runner, meta, items)
    done = time.perf_counter()
    how = meta.get("scores", "softmax")
    if how == "raw":  # regression and other tasks: the model's outputs as they are
        results = [{"input": name, "output": np.atleast_1d(o).tolist()} for name, o in zip(names, scores)]
    else:
        probabilities = to_probabilities(scores, how)
        classes = meta.get("classes") or [str(i) for i in range(probabilities.shape[-1])]
        results = [{"input": name, "top": top(p, classes, args.top)} for name, p in zip(names, probabilities)]
    timing = {"load_s": round(loaded - started, 4),
              "preprocess_ms_per_input": round(1000 * (prepared - loaded) / len(items), 3),
              "inference_ms_per_input": round(1000 * (done - prepared) / len(items), 3)}
    if args.json:
        print(json.dumps({"model": str(path), "run": meta.get("run"), "predictions": results, "timing": timing},
                         indent=2))
        return 0
    for r in results:
        shown = r["top"] if "top" in r else None
        print(f"{r['input']}: " + (", ".join(f"{t['class']} {t['probability']:.3f}" for t in shown) if shown
                                   else " ".join(f"{v:.4g}" for v in r["output"])))
    print(f"{len(items)} input(s): model loaded in {timing['load_s']:.3f} s, "
          f"{timing['preprocess_ms_per_input']:.2f} ms preprocessing and {timing['inference_ms_per_input']:.2f} ms "
          f"inference per input", file=sys.stderr)
    return 0


# -- inputs ------------------------------------------------------------------------------------------

def text_inputs(inputs: list[str]) -> list[tuple[str, str]]:
    """Texts from the command line, ``@FILE`` (one per line) or ``-`` (stdin, one per line)."""
    out = []
    for item in inputs:
        if item == "-":
            out += [(f"stdin:{i + 1}", line.rstrip("\n")) for i, line in enumerate(sys.stdin) if line.strip()]
        elif item.startswith("@"):
            file = Path(item[1:])
            if not file.is_file():
                raise KernelError(f"{file}: no such file (given as {item})")
            try:
                lines = file.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise KernelError(f"{file} is not UTF-8 text; the model reads one text per line") from None
            out += [(f"{file}:{i + 1}", line) for i, line in enumerate(lines) if line.strip()]
        else:
            if len(item) < 256 and Path(item).is_file():
                raise KernelError(f"{item} is a file; write @{item} to classify its lines (one text per line)")
            out.append((item if len(item) <= 40 else item[:37] + "...", item))
    return out


def read_inputs(meta: dict, inputs: list[str]) -> tuple[list[str], list]:
    """``(names, per-sample arrays)``: each input read as the metadata says and preprocessed."""
    source = meta.get("input") or {}
    kind = source.get("kind", "array")
    steps = meta.get("preprocessing")
    if not inputs:
        raise KernelError("give inputs to classify: " + {"text": "texts, @FILE or -", "image": "image files",
                                                         "audio": "audio files"}.get(kind, ".npy files"))
    try:  # a step this runtime does not know (a file from a newer plugin): said before any input is read
        portable.check_steps(steps or [])
        portable._collate_step(meta.get("collate"))
    except portable.PortableError as exc:
        raise KernelError(f"this model needs preprocessing this version of plugin-onnx cannot do: {exc}") from None
    if steps is None:  # the run's preprocessing has no portable description: inputs come preprocessed
        kind = "array"
        source = {**source, "why": f"this model's preprocessing cannot run without torch "
                                   f"({meta.get('not_portable')})"}
    if kind == "text":
        pairs = text_inputs(inputs)
        if not pairs:
            raise KernelError("no text to classify (the inputs are empty lines)")
    else:
        pairs = []
        for item in inputs:
            file = Path(item)
            if not file.is_file():
                raise KernelError(f"{file}: no such file")
            pairs.append((item, file))
    items = []
    for name, value in pairs:
        try:
            items.append(read_one(kind, source, steps or [], value))
        except portable.PortableError as exc:
            message = str(exc)
            raise KernelError(message if message.startswith(str(value)) else f"{name}: {message}") from None
    return [n for n, _ in pairs], items


def read_one(kind: str, source: dict, steps: list[dict], value):
    if kind == "image":
        x = portable.read_image(value, int(source.get("channels") or 3))
    elif kind == "audio":
        x = portable.read_audio(value, int(source["sample_rate"]), int(source.get("channels") or 1),
                                int(source["samples"]))
    elif kind == "text":
        x = value
    else:
        x = read_array(value, source)
    x = portable.apply_steps(steps, x)
    if kind in ("image", "audio", "array"):
        expected = list(source.get("shape") or [])
        if expected and list(np.shape(x)) != expected:
            raise portable.PortableError(f"becomes an input of shape {list(np.shape(x))}, and the model takes "
                                         f"{expected}")
    return x


def read_array(file: Path, source: dict):
    if file.suffix != ".npy":
        why = source.get("why", "this model takes arrays")
        raise portable.PortableError(f"{why}; give .npy files (numpy.save) of its input's shape {source.get('shape')}")
    try:
        x = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise portable.PortableError(f"is not a numpy array file: {exc}") from None
    return x.astype(source.get("dtype") or "float32", copy=False)


# -- running -----------------------------------------------------------------------------------------

def run(runner: OnnxRunner, meta: dict, items: list) -> np.ndarray:
    out = []
    for i in range(0, len(items), BATCH):
        try:
            batch = portable.collate(meta.get("collate"), items[i:i + BATCH], pad_to=meta.get("sequence_length"))
        except portable.PortableError as exc:
            raise KernelError(f"the inputs cannot be batched for this model: {exc}") from None
        feed = batch if isinstance(batch, dict) else {runner.inputs[0]: batch}
        out.append(np.asarray(runner(feed), dtype=np.float64))
    return np.concatenate(out)


def to_probabilities(scores: np.ndarray, how: str) -> np.ndarray:
    if how == "sigmoid":
        return 1.0 / (1.0 + np.exp(-scores))
    shifted = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def top(p: np.ndarray, classes: list[str], k: int) -> list[dict]:
    order = np.argsort(-p)[:k]
    return [{"class": classes[i] if i < len(classes) else str(i), "index": int(i), "probability": float(p[i])}
            for i in order]

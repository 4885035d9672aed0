"""What an exported file says about itself: enough for a caller without the run or torch.

Built from a loaded run: the classes, the input (kind, shape, dtype, and the domain's settings: the
image's channels, the audio's sample rate and length), the preprocessing as portable steps (each
transform's ``portable()``, see docs/export.md), the run id and the kernel's version.
"""
from __future__ import annotations

import datetime

import kernel

#: data facts that are plain values a caller may need (the vocabulary itself travels in the steps)
FACTS = ("task", "num_classes", "input_shape", "input_dtype", "in_channels", "sample_rate", "vocab_size",
         "padding_idx", "unk_idx", "normalize")


class NotPortable(Exception):
    """A transform of the run cannot be described without torch."""


def portable_steps(loaded) -> tuple[list[dict], dict | None]:
    """The run's per-sample preprocessing and its batching as portable steps; NotPortable names the
    first transform (or collate function) that cannot describe itself."""
    steps = []
    for t in loaded.transforms:
        describe = getattr(t, "portable", None)
        step = describe() if callable(describe) else None
        if step is None:
            name = getattr(t, "name", None) or type(t).__name__
            raise NotPortable(f"transform {name} has no portable description (portable())")
        steps.append(step)
    collate = None
    if loaded.collate_fn is not None:
        describe = getattr(loaded.collate_fn, "portable", None)
        collate = describe() if callable(describe) else None
        if collate is None:
            raise NotPortable(f"the batching function {type(loaded.collate_fn).__name__} has no portable description")
    return steps, collate


TEXT_STEPS = ("tokenize", "hf_tokenizer")


def input_kind(facts: dict, steps: list[dict]) -> str:
    """How ``kernel predict`` reads an input: image files, text lines, audio files, or .npy arrays."""
    shape = list(facts.get("input_shape") or [])
    if any(s.get("step") in TEXT_STEPS for s in steps):
        return "text"
    if facts.get("sample_rate"):
        return "audio"
    if len(shape) == 3 and shape[0] in (1, 3) and str(facts.get("input_dtype", "float32")).startswith("float"):
        return "image"
    return "array"


def raw_input(kind: str, facts: dict, steps: list[dict], raw) -> dict:
    """What a file must become before the steps: read off a raw sample of the dataset, not off the
    model's input (a Grayscale or Resample step sits between the two)."""
    if kind == "image":
        return {"channels": int(raw.shape[0]), "size": [int(v) for v in raw.shape[1:]]}
    if kind == "audio":
        resample = next((s for s in steps if s.get("step") == "resample"), None)
        return {"sample_rate": int(resample["orig_freq"]) if resample else facts.get("sample_rate"),
                "channels": int(raw.shape[0]) if raw.ndim == 2 else 1, "samples": int(raw.shape[-1])}
    return {}


def build(loaded, fmt: str, exporter: str, steps: list[dict] | None, collate: dict | None,
          in_graph: list[str], not_portable: str | None, raw=None) -> dict:
    """``raw``: one raw sample as the portable steps take it (float CHW image, waveform array, text)."""
    facts = loaded.facts
    kind = input_kind(facts, steps or [])
    source = {"kind": kind, "dtype": facts.get("input_dtype")}
    if kind != "text":  # a text's shape is its length, which varies
        source["shape"] = list(facts.get("input_shape") or [])
    if raw is not None:
        source.update(raw_input(kind, facts, steps or [], raw))
    task = facts.get("task") or "multiclass"
    return {
        "schema": 1,
        "kernel_version": kernel.__version__,
        "run": loaded.run.id,
        "workflow": loaded.info.get("workflow"),
        "model": loaded.info.get("model"),
        "component": loaded.info.get("use"),
        "checkpoint": loaded.checkpoint,
        "format": fmt,
        "exporter": exporter,
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "task": task,
        "classes": [str(c) for c in (loaded.classes or [])],
        "scores": {"multilabel": "sigmoid", "binary": "softmax", "multiclass": "softmax"}.get(task, "raw"),
        "input": source,
        "preprocessing": steps,
        "collate": collate,
        "in_graph": in_graph,
        "not_portable": not_portable,
        "facts": {k: facts[k] for k in FACTS if k in facts},
    }

"""What a person looks at besides curves: analyzer reports and rendered samples, written to disk.

Used by ``kernel analyze``, ``kernel render``, the dry-run plan and the runner (which writes them
into each run's ``artifacts/``); the file layout is in docs/run-store.md.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

CHUNK = 256


def workspace() -> Path:
    """``$KERNEL_HOME`` or the current directory."""
    return Path(os.environ.get("KERNEL_HOME") or os.getcwd())


def run_analyzers(plan) -> list:
    """Stream every split through the workflow's analyzers; returns ``[(name, Report)]``."""
    data = plan.data
    analyzers = plan.analyzers()
    info = {"splits": {k: len(v) for k, v in data.splits.items()}, "classes": data.classes,
            "facts": data.facts, "tags": tuple(plan.dataset_tags)}
    for _, a in analyzers:
        a.start(info)
    for split in data.splits:
        wanted = {True: [], False: []}
        for name, a in analyzers:
            wanted[bool(getattr(a, "raw", False))].append(a)
        for raw, group in wanted.items():
            if not group:
                continue
            ds = data.raw[split] if raw else data.splits[split]
            for start in range(0, len(ds), CHUNK):
                items = [ds[i] for i in range(start, min(start + CHUNK, len(ds)))]
                batch = {"split": split, "inputs": [x for x, _ in items], "targets": [y for _, y in items]}
                for a in group:
                    a.update(batch)
    return [(name, a.finish()) for name, a in analyzers]


def write_reports(plan, folder) -> list:
    """Run the analyzers and write ``<name>.json`` (and ``<name>.png`` for a figure) per report."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    reports = run_analyzers(plan)
    for name, report in reports:
        (folder / f"{name}.json").write_text(json.dumps(report.to_dict(), indent=2, default=_plain))
        if report.figure is not None:
            report.figure.save(folder / f"{name}.png")
    return reports


def _plain(value):
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else str(value)


def meta_for(tensor, role: str, plan) -> dict:
    import torch

    t = torch.as_tensor(tensor)
    return {"shape": tuple(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "role": role,
            "tags": tuple(plan.dataset_tags), "classes": plan.data.classes}


def label_text(value, classes) -> str:
    """A target or prediction in words: the class name when there is one."""
    import torch

    t = torch.as_tensor(value)
    if t.ndim == 0 and not t.is_floating_point():
        i = int(t)
        return classes[i] if classes and 0 <= i < len(classes) else str(i)
    if t.ndim == 1 and classes and t.numel() == len(classes) and t.is_floating_point():
        i = int(t.argmax())
        return f"{classes[i]} ({float(t.softmax(0)[i]):.0%})"
    return f"tensor{tuple(t.shape)}"


def render_sample(plan, index: int, split: str = "valid", model=None) -> dict:
    """Render one sample's input, target and (with a model) prediction; returns role -> (renderer, image)."""
    import torch

    from .data import forward

    ds = plan.data.splits[split]
    x, y = ds[index]
    out = {"input": x, "target": y}
    if model is not None:
        batch_inputs, _ = plan.data.collate_fn([(x, y)]) if plan.data.collate_fn else \
            torch.utils.data.default_collate([(x, y)])
        model.eval()
        with torch.no_grad():
            prediction = forward(model, batch_inputs)
        out["prediction"] = prediction[0] if isinstance(prediction, torch.Tensor) else prediction
    context = {**out, "facts": plan.data.facts, "classes": plan.data.classes,
               "normalize": plan.data.facts.get("normalize")}
    images = {}
    for role, value in out.items():
        if not isinstance(value, torch.Tensor) and not isinstance(value, (int, float)):
            continue
        name, renderer = plan.renderer_for(meta_for(value, role, plan))
        images[role] = (name, renderer.render(torch.as_tensor(value), context), value)
    return images


def write_samples(plan, folder, model=None, count: int = 8, split: str | None = None) -> list:
    """Render the first ``count`` samples of a split to PNGs with a ``samples.json`` index."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    split = split or ("valid" if "valid" in plan.data.splits else "train")
    classes = plan.data.classes
    entries = []
    for i in range(min(count, len(plan.data.splits[split]))):
        images = render_sample(plan, i, split, model)
        entry = {"index": i, "split": split, "input": None, "target": None, "prediction": None,
                 "renderers": {}}
        for role, (name, image, value) in images.items():
            file = f"{i}_{role}.png"
            image.save(folder / file)
            entry[role] = file
            entry["renderers"][role] = name
            if role != "input":
                entry[f"{role}_text"] = label_text(value, classes)
        entries.append(entry)
    (folder / "samples.json").write_text(json.dumps(entries, indent=2))
    return entries

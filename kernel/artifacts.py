"""What a person looks at besides curves: analyzer reports and rendered samples, written to disk.

Used by ``kernel analyze``, ``kernel render``, the dry-run plan and the runner (which writes them
into each run's ``artifacts/``); the file layout is in docs/run-store.md.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

from .store import write_atomic

CHUNK = 256


def workspace() -> Path:
    """``$KERNEL_HOME`` or the current directory."""
    return Path(os.environ.get("KERNEL_HOME") or os.getcwd())


def run_analyzers(plan) -> list:
    """Stream every split through the workflow's analyzers; returns ``[(name, Report)]``."""
    data = plan.data
    analyzers = plan.analyzers()
    info = {"splits": {k: len(v) for k, v in data.splits.items()}, "classes": data.classes,
            "facts": plan.data.facts, "tags": tuple(plan.dataset_tags),
            # the workflow's transforms as a workflow writes them, so a suggestion can extend them
            "transforms": [{"use": t.use, **dict(t.params)} for t in plan.workflow.dataset.transforms]}
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
        # written by replacing, never through a file already there: a run folder may come from
        # someone else, with links planted where its artifacts go
        write_atomic(folder / f"{name}.json", json.dumps(report.to_dict(), indent=2, default=_plain).encode())
        if report.figure is not None:
            image = io.BytesIO()
            report.figure.save(image, format="PNG")
            write_atomic(folder / f"{name}.png", image.getvalue())
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
    """Render one sample's input, target and (with a model) prediction.

    Returns role -> ``(renderer name, kernel.Media, value)``; ``media.save(path)`` writes the file
    with the media's own suffix (a picture .png, a sound .wav, a page .html) and returns its path.
    """
    import torch

    from .data import forward
    from .rendering import as_media

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
    rendered = {}
    for role, value in out.items():
        if not isinstance(value, torch.Tensor) and not isinstance(value, (int, float)):
            continue
        name, renderer = plan.renderer_for(meta_for(value, role, plan))
        media = as_media(renderer.render(torch.as_tensor(value), context), f"renderer {name}")
        rendered[role] = (name, media, value)
    return rendered


#: how many samples are scanned for their labels to spread the rendered ones over the classes (the
#: labels come from the dataset's `targets` when it has them; else each of these samples is read)
SCAN = 1000
#: the most samples rendered by default: one per class, but never fewer than 8 nor more than this
MAX_SAMPLES = 32


def sample_indices(plan, split: str, count: int | None = None) -> list[int]:
    """Which samples of a split to render: across the classes when the targets are classes.

    Round robin over the classes in index order (the first sample of each class, then the second
    of each, ...), so every class is seen when ``count`` allows; the first ``count`` samples when
    the targets are not single classes. ``count`` defaults to one per class, between 8 and 32.
    """
    from .data import Subset, split_targets

    raw = plan.data.raw[split]
    size = len(raw)
    scanned = min(size, SCAN)
    labels = split_targets(Subset(raw, list(range(scanned)))) if scanned else None
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels or []):
        by_class.setdefault(label, []).append(i)
    if count is None:
        count = min(MAX_SAMPLES, max(8, len(by_class)))
    count = min(count, size)
    if len(by_class) < 2:
        return list(range(count))
    picked, round_ = [], 0
    while len(picked) < count:
        row = [members[round_] for _, members in sorted(by_class.items()) if round_ < len(members)]
        if not row:
            break
        picked.extend(row[:count - len(picked)])
        round_ += 1
    return picked


def write_samples(plan, folder, model=None, count: int | None = None, split: str | None = None) -> list:
    """Render samples of a split (chosen across classes, see :func:`sample_indices`), one file per
    role, with a ``samples.json`` index naming each file (``entry[role] = "3_input.wav"``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    split = split or ("valid" if "valid" in plan.data.splits else "train")
    classes = plan.data.classes
    entries = []
    for i in sample_indices(plan, split, count):
        rendered = render_sample(plan, i, split, model)
        entry = {"index": i, "split": split, "input": None, "target": None, "prediction": None,
                 "renderers": {}}
        for role, (name, media, value) in rendered.items():
            entry[role] = media.save(folder / f"{i}_{role}").name
            entry["renderers"][role] = name
            if role != "input":
                entry[f"{role}_text"] = label_text(value, classes)
        entries.append(entry)
    write_atomic(folder / "samples.json", json.dumps(entries, indent=2).encode())
    return entries

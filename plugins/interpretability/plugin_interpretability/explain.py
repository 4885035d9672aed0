"""Explaining trained runs: the same samples through each run's model, with one or more methods,
checked, rendered, and written under each run's ``artifacts/explanations/<method>/``.

Everything is computed before anything is written, and each method's folder is written beside its
final place and renamed into it: a mistake found with the last run or method leaves no folder
behind, and a reader (the report, the dashboard) never sees half of one.
"""
from __future__ import annotations

import inspect
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from kernel import KernelError, as_media, did_you_mean

from . import checks
from .engine import attribute_batch

#: the method used when none is named: the first that can run on the model's input
DEFAULT_METHODS = {True: "interpret.integrated_gradients", False: "interpret.layer_integrated_gradients"}
#: samples explained when neither a count nor indices are given
DEFAULT_SAMPLES = 8
FOLDER = "explanations"


# -- methods by name -----------------------------------------------------------------------------

def method_name(catalog, name: str) -> str:
    """A method's catalog name: ``saliency`` is ``interpret.saliency`` when no other is called so."""
    names = catalog.names("attribution")
    if name in names:
        return name
    short = [n for n in names if n.rsplit(".", 1)[-1] == name]
    if len(short) == 1:
        return short[0]
    if "." in name or ":" in name:
        return name  # an import path: the catalog imports it (and says so when it cannot)
    raise KernelError(f"unknown attribution method {name!r}{did_you_mean(name, names + [n.rsplit('.', 1)[-1] for n in names])}; "
                      f"`kernel list attributions` shows them all")


def build_method(catalog, name: str, params: dict | None = None):
    """``(catalog name, method object, resolved parameters)``, the parameters checked by name."""
    name = method_name(catalog, name)
    comp = catalog.get(name, "attribution")
    target = catalog.target(comp)
    params = dict(params or {})
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        signature = None
    if signature is not None and not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        known = [p for p in signature.parameters if p != "self"]
        for key in params:
            if key not in known:
                raise KernelError(f"--param {key}: {name} has no parameter {key!r}{did_you_mean(key, known)}"
                                  + (f"; its parameters: {', '.join(known)}" if known else "; it takes none"))
    try:
        method = target(**params)
    except (TypeError, ValueError) as exc:
        raise KernelError(f"{name}: {exc}") from None
    from .engine import BASELINES

    baseline = getattr(method, "baseline", "zero")
    if baseline not in BASELINES:
        raise KernelError(f"--param baseline={baseline!r}: {name} takes one of {', '.join(BASELINES)}"
                          f"{did_you_mean(str(baseline), BASELINES)}")
    resolved = {}
    if signature is not None:
        for key, p in signature.parameters.items():
            if key != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                resolved[key] = params.get(key, None if p.default is p.empty else p.default)
    return name, method, resolved


# -- which samples --------------------------------------------------------------------------------

def split_of(loaded, split: str):
    data = loaded.data
    if split not in data.splits:
        raise KernelError(f"split {split!r} does not exist in run {loaded.run.id}; its splits are "
                          f"{', '.join(data.splits)}{did_you_mean(split, list(data.splits))}")
    return data.splits[split]


def batch_of(loaded, dataset, indices):
    import torch

    for i in indices:
        if not 0 <= i < len(dataset):
            raise KernelError(f"--index {i} is out of range: the split has {len(dataset)} samples (0-{len(dataset) - 1})")
    items = [dataset[i] for i in indices]
    collate = loaded.data.collate_fn or torch.utils.data.default_collate
    return collate(items)


# -- one run, one method ---------------------------------------------------------------------------

@dataclass
class Explained:
    """One run's model explained with one method on the chosen samples: what is written."""

    loaded: object
    method: str
    params: dict
    result: object  # engine.Attributions
    indices: list
    split: str
    target: object
    labels: object
    sanity: dict | None = None
    infidelity: list = field(default_factory=list)
    sensitivity: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    pictures: list = field(default_factory=list)  # (renderer name, Media) per sample
    agreement: dict = field(default_factory=dict)  # other run id -> mean rank correlation (explained together)

    @property
    def folder(self) -> Path:
        return folder_for(self.loaded.run, self.method)


def folder_for(run, method: str) -> Path:
    """``RUN/artifacts/explanations/METHOD``, refused when a part of it is a link: a run folder may
    come from someone else, and a planted link would have the files written wherever it points."""
    folder = run.artifacts / FOLDER / method
    for part in (run.artifacts, run.artifacts / FOLDER, folder):
        if part.is_symlink():
            raise KernelError(f"{part} is a symbolic link; kernel explain writes only inside the run's own "
                              f"folder: remove the link and explain again")
    return folder


def explain_run(loaded, catalog, method: str, params: dict, split: str, indices: list, target="predicted",
                layer: str | None = None, run_checks: bool = True, render: bool = True) -> Explained:
    name, obj, resolved = build_method(catalog, method, params)
    folder_for(loaded.run, name)  # a folder that cannot be written is said before the work, not after
    dataset = split_of(loaded, split)
    inputs, labels = batch_of(loaded, dataset, indices)
    facts = loaded.data.facts
    result = attribute_batch(loaded.model, inputs, obj, target, labels, layer, facts, loaded.classes, name)
    done = Explained(loaded, name, resolved, result, list(indices), split, target, labels)
    if run_checks:
        with warnings.catch_warnings():  # Captum's "did not already require gradients": it sets them itself
            warnings.filterwarnings("ignore", message=".*require.*grad.*")
            check(done, obj, inputs, facts)
    done.summary = checks.summary(result.attributions, result.x, result.targets, result.lengths, loaded.classes, facts)
    if render:
        done.pictures = [render_one(loaded.plan, done, i) for i in range(len(indices))]
    return done


def check(done: Explained, method, inputs, facts):
    """The randomisation sanity check, then infidelity and max-sensitivity."""
    import torch

    from .engine import baseline_for
    from .layers import per_token, to_input_form
    from .methods import Context
    from .model_inputs import Forward

    model, result = done.loaded.model, done.result
    random = attribute_batch(checks.randomized(model), inputs, method, result.targets, None, result.layer, facts,
                             name=done.method, internal_batch_size=result.internal_batch_size)
    done.sanity = checks.sanity(result.attributions, random.attributions, result.lengths)
    forward = Forward(model, inputs)
    x, extra = forward.split(inputs)
    layer = dict(model.named_modules()).get(result.layer) if result.layer else None

    def explain_again(perturbed, target=None, additional_forward_args=None):
        if isinstance(perturbed, tuple):  # Captum hands the inputs over as a tuple, and wants one back
            return (explain_again(perturbed[0], target, additional_forward_args),)
        rest = tuple(additional_forward_args or ())
        context = Context(baseline_for(perturbed, facts, getattr(method, "baseline", "zero")), rest, None,
                          result.internal_batch_size, facts)
        with per_token(layer) as hooked:
            context.layer = hooked
            raw = method.attribute(forward, perturbed, target, context)
        raw = raw[0] if isinstance(raw, tuple) else raw
        return to_input_form(raw, perturbed).expand_as(perturbed) if layer is not None else raw

    with torch.enable_grad():
        done.infidelity, done.sensitivity = checks.faithfulness(forward, x, extra, result.attributions.to(x.device),
                                                                result.targets, explain_again)


# -- pictures ----------------------------------------------------------------------------------------

def sample_tensors(result, i: int):
    """Sample ``i``'s input and attribution, without its padding (token ids)."""
    x, a = result.x[i], result.attributions[i]
    n = result.lengths[i]
    if not x.dtype.is_floating_point and x.ndim == 1 and n < x.shape[0]:
        x = x[:n]
        if a.ndim == 1:
            a = a[:n]
    return x, a


def render_one(plan, done: Explained, i: int):
    """``(renderer name, Media)`` of sample ``i``'s attribution, by the kernel's renderer choice
    (a workflow may name one: ``[renderers] attribution = "..."``)."""
    result, loaded = done.result, done.loaded
    x, a = sample_tensors(result, i)
    facts = loaded.data.facts
    meta = {"role": "attribution", "shape": tuple(a.shape), "dtype": str(a.dtype).replace("torch.", ""),
            "tags": tuple(plan.dataset_tags), "classes": loaded.classes,
            "input_shape": tuple(x.shape), "input_dtype": str(x.dtype).replace("torch.", "")}
    label = done.labels[i] if done.labels is not None and hasattr(done.labels, "__getitem__") else None
    context = {"input": x, "attribution": a, "facts": facts, "normalize": facts.get("normalize"),
               "classes": loaded.classes, "target": label, "prediction": result.outputs[i],
               "explained": int(result.targets[i]), "method": done.method, "layer": result.layer}
    name, renderer = plan.renderer_for(meta)
    return name, as_media(renderer.render(a, context), f"renderer {name}")


# -- writing ---------------------------------------------------------------------------------------------

def label_text(value, classes) -> str | None:
    if value is None:
        return None
    i = int(value)
    return str(classes[i]) if classes and 0 <= i < len(classes) else str(i)


def record(done: Explained) -> dict:
    """explanation.json: what a reader needs to show the explanation without torch."""
    result, loaded = done.result, done.loaded
    classes = loaded.classes
    probabilities = result.outputs.softmax(1)
    samples = []
    for i, index in enumerate(done.indices):
        predicted = int(result.outputs[i].argmax())
        true = None
        if done.labels is not None:
            try:
                true = int(done.labels[i])
            except (TypeError, ValueError, RuntimeError):
                true = None
        picture = done.pictures[i] if done.pictures else None
        samples.append({
            "index": int(index), "true": true, "true_text": label_text(true, classes),
            "predicted": predicted,
            "predicted_text": f"{label_text(predicted, classes)} ({float(probabilities[i, predicted]):.0%})",
            "explained": int(result.targets[i]), "explained_text": label_text(int(result.targets[i]), classes),
            "picture": f"{index}{picture[1].suffix}" if picture else None,
            "renderer": picture[0] if picture else None,
            "infidelity": done.infidelity[i] if done.infidelity else None,
            "sensitivity": done.sensitivity[i] if done.sensitivity else None,
            "sanity": done.sanity["per_sample"][i] if done.sanity else None})
    sanity = {k: v for k, v in done.sanity.items() if k != "per_sample"} if done.sanity else None
    target = done.target if isinstance(done.target, (str, int)) or done.target is None else "given"
    return {"method": done.method, "params": done.params, "layer": result.layer, "split": done.split,
            "target": target, "checkpoint": loaded.checkpoint,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run": loaded.run.id, "workflow": loaded.info.get("workflow"), "model": loaded.info.get("model"),
            "internal_batch_size": result.internal_batch_size, "samples": samples, "sanity": sanity,
            "summary": done.summary, "agreement": done.agreement}


def write(done: Explained) -> Path:
    """The method's folder, written beside its place and renamed into it (replacing an older one)."""
    import torch

    import tempfile

    final = done.folder
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))  # a new folder of its own
    try:
        for i, index in enumerate(done.indices):
            if done.pictures:
                (temp / f"{index}{done.pictures[i][1].suffix}").write_bytes(bytes(done.pictures[i][1].data))
        torch.save({"indices": done.indices, "attributions": done.result.attributions, "inputs": done.result.x,
                    "targets": done.result.targets, "method": done.method}, temp / "attributions.pt")
        (temp / "explanation.json").write_text(json.dumps(record(done), indent=2))
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        temp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return final


def agreement(explained: list[Explained]) -> list[list]:
    """Mean rank correlation of |attribution| between each pair of runs (same method, same samples):
    how alike the models' explanations are. None where the shapes differ. Each run's
    ``agreement`` (written to its explanation.json, shown by the report) gets its row."""
    rows = []
    for a in explained:
        row = []
        for b in explained:
            ra, rb = a.result.attributions, b.result.attributions
            if ra.shape != rb.shape:
                row.append(None)
                continue
            rhos = [r for r in checks.rank_correlations(ra, rb, a.result.lengths) if r is not None]
            row.append(round(sum(rhos) / len(rhos), 3) if rhos else None)
        rows.append(row)
        a.agreement = {b.loaded.run.id: v for b, v in zip(explained, row) if b is not a}
    return rows

"""``kernel run --dry-run``: build everything, pass one batch through each model, print the plan."""
from __future__ import annotations

from .errors import KernelError, first_line


def describe_plan(plan) -> dict:
    """The plan as data: dataset, facts, each model (parameters, output shape or error), renderers, defaults.

    Each model is put through :func:`check_model`, the check ``kernel run`` makes before any run
    exists, so a dry run that passes means the runs will start.
    """
    import torch

    from .artifacts import meta_for

    from .data import check_batches

    data = plan.data
    check_batches(data)  # samples that cannot make a batch fail every model: one error, with the fix
    x, y = data.train[0]
    info = {
        "workflow": plan.workflow.name,
        "dataset": {"use": plan.workflow.dataset.use, "fingerprint": data.fingerprint,
                    "splits": {k: len(v) for k, v in data.splits.items()},
                    "input": _shape(x), "target": _shape(y)},
        "facts": {k: v for k, v in data.facts.items() if k != "classes"},
        "classes": data.classes,
        "models": [], "renderers": {}, "defaults": {}, "analyzers": [],
    }
    trainer = plan.trainer()
    describe = getattr(trainer, "describe", None)
    if callable(describe):
        info["defaults"] = describe(data)
    inputs, _ = data.batch("train", size=2)  # one batch for every model
    for i, spec in enumerate(plan.workflow.models):
        entry = {"name": plan.workflow.model_label(i), "use": spec.use}
        entry.update(check_model(plan, i, trainer, info["defaults"], inputs))
        out = entry.pop("_output", None)
        if "prediction" not in info["renderers"] and isinstance(out, torch.Tensor) and out.ndim >= 1:
            try:
                info["renderers"]["prediction"] = plan.renderer_for(meta_for(out[0], "prediction", plan))[0]
            except KernelError as exc:
                plan.notes.append(str(exc))
        info["models"].append(entry)
    for role, value in (("input", x), ("target", y)):
        if isinstance(value, torch.Tensor) or isinstance(value, int):
            info["renderers"][role] = plan.renderer_for(meta_for(value, role, plan))[0]
    info["analyzers"] = [name for name, _ in plan.analyzers()]
    return info


def check_model(plan, index: int, trainer, defaults: dict, inputs) -> dict:
    """Build the index-th model and pass one real batch through it, the trainer's loss and metrics.

    Returns what was found (``filled``, ``parameters``, ``output``, a ``warning``) and, when the
    model cannot train on this data, ``error``: one line that says why. Never raises for the
    model's own failures, so that every model of a workflow is reported.
    """
    import torch

    from .data import batch_size_of, forward
    from .seeding import seed_everything

    from .console import step

    entry: dict = {}
    step(f"checking models[{index}] ({plan.workflow.models[index].use}) on one batch")
    try:
        seed_everything(plan.workflow.seed)
        model, filled = plan.model(index)
        entry["filled"] = {k: _short(v) for k, v in filled.items()}
        entry["parameters"] = sum(p.numel() for p in model.parameters())
        model.eval()
        with torch.no_grad():
            out = forward(model, inputs)
        entry["output"], entry["_output"] = _shape(out), out
        if isinstance(out, torch.Tensor) and out.ndim >= 1 and out.shape[0] != batch_size_of(inputs):
            entry["warning"] = "the output's first dimension is not the batch size"
        check = getattr(trainer, "check", None)
        if callable(check):  # the loss and the metrics on a real batch, as the run will compute them
            check(model, plan.data, defaults)
    except KernelError as exc:
        entry["error"] = str(exc)
    except Exception as exc:  # a model that cannot take this data: say which and why
        entry["error"] = f"{type(exc).__name__}: {first_line(exc)}"
    return entry


def check_models(plan, trainer, defaults: dict, indices=None):
    """What ``kernel run`` calls before creating any run: every model (or those at ``indices``)
    through :func:`check_model`; the problems of all of them in one KernelError, each at its place
    (``models[1] (kernel.mlp)``)."""
    from .data import check_batches
    from .errors import WorkflowError

    check_batches(plan.data)
    inputs, _ = plan.data.batch("train", size=2)
    found = []
    for i, spec in enumerate(plan.workflow.models):
        if indices is not None and i not in indices:
            continue
        error = check_model(plan, i, trainer, defaults, inputs).get("error")
        if error:
            found.append((f"models[{i}] ({spec.use})", error))
    if found:
        raise WorkflowError(found)


def problems(info: dict, kind: str = "error") -> list[str]:
    """The plan's problems (``kind`` "error" or "warning") as lines for stderr, each naming its model."""
    return [f"models[{i}] ({m['use']}): {m[kind]}" for i, m in enumerate(info["models"]) if m.get(kind)]


def _shape(value):
    import torch

    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shape(v) for v in value]
    return type(value).__name__ + (f" {value}" if isinstance(value, (int, float)) else "")


def _short(value):
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"[{len(value)} items]"
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def print_plan(info: dict, console=None):
    from .console import console as make_console
    from rich.table import Table

    console = console or make_console()
    ds = info["dataset"]
    console.print(f"[bold]Plan for workflow {info['workflow']!r}[/bold] (dry run: nothing trained or written)")
    splits = ", ".join(f"{k} {v}" for k, v in ds["splits"].items())
    console.print(f"dataset {ds['use']}: {splits} samples; input {ds['input']}, target {ds['target']}; "
                  f"fingerprint {ds['fingerprint']}", highlight=False)
    facts = ", ".join(f"{k}={v}" for k, v in info["facts"].items())
    console.print(f"facts: {facts}", highlight=False)
    if info["classes"]:
        names = info["classes"]
        console.print("classes: " + ", ".join(names[:12]) + (f", ... ({len(names)})" if len(names) > 12 else ""))
    table = Table(box=None, pad_edge=False, title=None)
    for col in ("model", "use", "parameters", "output", "filled from data", "problem"):
        table.add_column(col, overflow="fold")
    for m in info["models"]:
        filled = ", ".join(f"{k}={v}" for k, v in m.get("filled", {}).items())
        params = f"{m['parameters']:,}" if "parameters" in m else ""
        table.add_row(m["name"], m["use"], params, str(m.get("output", "")), filled,
                      m.get("error") or m.get("warning", ""))
    console.print(table)
    if info["renderers"]:
        console.print("renderers: " + ", ".join(f"{k} -> {v}" for k, v in info["renderers"].items()))
    if info["defaults"]:
        console.print("trainer: " + ", ".join(f"{k}={v}" for k, v in info["defaults"].items()), highlight=False)
    if info["analyzers"]:
        console.print("analyzers: " + ", ".join(info["analyzers"]))

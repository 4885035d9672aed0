"""Why an export failed, in one paragraph: the operator, the module it comes from, the other formats.

The exporters' own errors are long and name graph nodes (``%mystery : call_function[target=...]``).
What a user can act on is which layer of their model uses the operator, so the operator named in the
error is looked up in the model's exported graph, whose nodes remember the module that made them.
"""
from __future__ import annotations

import re
import traceback

FORMATS = ("onnx", "torchscript", "exported_program")
_OVERLOAD = re.compile(r"OpOverload\(op='([\w.]+)', overload='(\w+)'\)")
_TARGET = re.compile(r"target=torch\.ops\.([\w]+)\.([\w]+)(?:\.(\w+))?")


def chain(exc) -> list[BaseException]:
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def operator_of(exc) -> str | None:
    """``namespace::name`` of the operator an exporter could not translate, if the error names one."""
    for e in chain(exc):
        text = str(e)
        m = _OVERLOAD.search(text)
        if m:
            return m.group(1).replace(".", "::", 1)
        m = _TARGET.search(text)
        if m:
            return f"{m.group(1)}::{m.group(2)}"
    return None


def module_of(operator: str, flat, tensors) -> str | None:
    """The module (dotted path and class) whose forward calls ``operator``, from torch.export's graph."""
    import torch

    from .exporters import quiet

    try:
        with quiet(), torch.no_grad():
            program = torch.export.export(flat, tuple(tensors), strict=False)
    except Exception:
        return None
    namespace, _, name = operator.partition("::")
    for node in program.graph.nodes:
        target = node.target
        if node.op != "call_function" or not hasattr(target, "namespace"):
            continue
        if target.namespace == namespace and target.__name__.split(".")[0] == name:
            stack = node.meta.get("nn_module_stack") or {}
            if not stack:
                return None
            path, cls = list(stack.values())[-1]
            path = re.sub(r"^L\['self'\]\.?|^self\.?", "", str(path)).removeprefix("model.")
            cls_name = getattr(cls, "__name__", None) or str(cls).rsplit(".", 1)[-1].strip("'>")
            return f"{path or '(the model itself)'} ({cls_name})"
    return None


def user_frame(exc) -> str | None:
    """The innermost frame of the failure that is in the model's code, not in torch's."""
    frames = [f for e in chain(exc) for f in traceback.extract_tb(e.__traceback__)]
    mine = [f for f in frames if "/torch/" not in f.filename and "/onnxscript/" not in f.filename
            and "plugin_onnx" not in f.filename and "/contextlib" not in f.filename]
    if not mine:
        return None
    f = mine[-1]
    return f"{f.filename}:{f.lineno} ({f.name})"


def headline(exc) -> str:
    """The most specific line of the errors: the innermost cause's first line."""
    for e in reversed(chain(exc)):
        for line in str(e).splitlines():
            line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
            if line and not line.startswith(("Failed to", "-", "#")):
                return line[:300]
    return type(exc).__name__


def failure(fmt: str, exc, flat, tensors) -> str:
    """The message of an export that failed."""
    others = ", ".join(f for f in FORMATS if f != fmt)
    operator = operator_of(exc)
    if operator:
        where = module_of(operator, flat, tensors)
        place = f" in module {where}" if where else ""
        return (f"{fmt} export failed: the exporter has no translation for operator {operator}{place}; "
                f"try --format {others.replace(', ', ' or ')}, or give the operator an ONNX translation")
    frame = user_frame(exc)
    place = f" at {frame}" if frame else ""
    # onnx and exported_program both capture the model with torch.export: what one cannot capture,
    # the other cannot either; TorchScript scripts Python control flow instead
    suggestion = "torchscript (it scripts Python control flow)" if fmt != "torchscript" else others.replace(", ", " or ")
    return f"{fmt} export failed{place}: {headline(exc)}; try --format {suggestion}"

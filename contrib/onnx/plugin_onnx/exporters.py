"""The three exporters (hook ``kernel_exporters``): ONNX through torch.onnx's dynamo exporter,
TorchScript, and torch.export's ExportedProgram.

Every exporter has the kernel's ``export(model, example, path, metadata=None) -> kernel.Artifact``
and, so that ``kernel export`` can verify what it wrote, ``load(path)``: a callable that takes
``{input name: numpy array}`` and returns the class scores as a numpy array, with ``.inputs`` (the
names it takes, in order) and ``.metadata`` (what was embedded). Each file carries the metadata:
ONNX in ``metadata_props["kernel"]``, TorchScript and ``.pt2`` in an extra file ``kernel.json``.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings

from kernel import Artifact, KernelError

from .flat import Flat, flatten

from .runtime import META_KEY, OnnxRunner


class ExportFailed(KernelError):
    """The exporter could not capture the model: the message names the operator and its module."""


def flat_model(model, example) -> tuple[Flat, list[str], list]:
    names, tensors, structure = flatten(example)
    return (model if isinstance(model, Flat) else Flat(model, names, structure)), names, tensors


def dynamic_shapes(tensors, sequence: bool) -> tuple:
    """torch.export's dynamic axes: the batch axis of every input, and the second axis of integer and
    boolean inputs (token ids, masks: the sequence). AUTO lets an axis the model fixes stay fixed;
    the graph's input shapes say afterwards which axes are free."""
    from torch.export import Dim

    spec = []
    for t in tensors:
        axes = {}
        if t.dim() >= 1:
            axes[0] = Dim.AUTO
        if sequence and t.dim() >= 2 and not t.dtype.is_floating_point:
            axes[1] = Dim.AUTO
        spec.append(axes)
    return tuple(spec)


@contextlib.contextmanager
def quiet():
    """torch.onnx, onnxscript's optimizer and torch.export print progress and warn about their own
    internals; the command reports what matters (failures are raised, the file is verified)."""
    import logging

    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._export", "torch.fx")]
    levels = [lg.level for lg in loggers]
    out = io.StringIO()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(out):
            warnings.simplefilter("ignore")
            yield out
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class OnnxExporter:
    """ONNX through torch.onnx.export's dynamo exporter, run with onnxruntime.

    Args:
        opset: the ONNX opset to target.
        dynamic_sequence: leave the sequence axis of token inputs free (a recurrent model's graph may fix
            it: the file's metadata then names the length inputs are padded to).
        optimize: let the exporter fold constants and fuse patterns (onnxscript's optimizer).
    """

    format = "onnx"
    suffix = ".onnx"

    def __init__(self, opset: int = 18, dynamic_sequence: bool = True, optimize: bool = True):
        if not 17 <= opset <= 23:
            raise KernelError(f"onnx.onnx: opset must be between 17 and 23 (the dynamo exporter's range), not {opset}")
        self.opset, self.dynamic_sequence, self.optimize = opset, dynamic_sequence, optimize

    def export(self, model, example, path, metadata: dict | None = None) -> Artifact:
        import torch

        flat, names, tensors = flat_model(model, example)
        dyn = dynamic_shapes(tensors, self.dynamic_sequence)
        try:
            with quiet(), torch.no_grad():
                program = torch.onnx.export(flat, tuple(tensors), None, dynamo=True, input_names=names,
                                            output_names=["scores"], opset_version=self.opset,
                                            dynamic_shapes={"tensors": dyn}, optimize=self.optimize, verbose=False)
        except Exception as exc:
            from .diagnose import failure

            raise ExportFailed(failure("onnx", exc, flat, tensors)) from exc
        inputs = [{"name": v.name, "shape": [d if isinstance(d, int) else None for d in v.shape],
                   "dtype": str(v.dtype)} for v in program.model.graph.inputs]
        meta = {**(metadata or {}), "inputs": describe(inputs, tensors, names)}
        program.model.metadata_props[META_KEY] = json.dumps(meta)
        program.model.producer_name = "kernel"
        with quiet():
            program.save(str(path), external_data=False)
        return Artifact(str(path), self.format, {"opset": self.opset, "inputs": meta["inputs"]})

    def load(self, path):
        return OnnxRunner(path)


def describe(graph_inputs: list[dict], tensors, names) -> list[dict]:
    """Each graph input: name, shape (None where free) and numpy dtype name, in the graph's order."""
    import torch

    by_name = dict(zip(names, tensors))
    out = []
    for gi in graph_inputs:
        t = by_name.get(gi["name"])
        dtype = str(t.dtype).removeprefix("torch.") if isinstance(t, torch.Tensor) else gi["dtype"]
        out.append({"name": gi["name"], "shape": gi["shape"], "dtype": "bool" if dtype == "bool" else dtype})
    return out


class TorchRunner:
    """A TorchScript module or an ExportedProgram's module: ``runner(feed) -> scores`` (numpy)."""

    def __init__(self, module, metadata: dict):
        self.module, self.metadata = module, metadata
        self.inputs = [i["name"] for i in metadata.get("inputs", [])]

    def __call__(self, feed: dict):
        import torch

        with torch.no_grad():
            out = self.module(*(torch.as_tensor(feed[n]) for n in self.inputs))
        return out.detach().cpu().numpy()


@contextlib.contextmanager
def no_fast_path():
    """Attention's fused inference kernel off while tracing: nn.TransformerEncoder's fast path is traced
    as one op whose saved module cannot be written ("strides() called on an undefined Tensor")."""
    import torch

    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


class TorchScriptExporter:
    """TorchScript, traced on the example batch or scripted.

    Args:
        method: "trace", "script", or "auto": trace, and script instead where the tracer warns that it
            froze a data-dependent value into the graph (Python control flow on tensors).
    """

    format = "torchscript"
    suffix = ".torchscript.pt"

    def __init__(self, method: str = "auto"):
        if method not in ("auto", "trace", "script"):
            from kernel import did_you_mean

            raise KernelError(f"onnx.torchscript: method must be auto, trace or script, not {method!r}"
                              f"{did_you_mean(method, ['auto', 'trace', 'script'])}")
        self.method = method

    def export(self, model, example, path, metadata: dict | None = None) -> Artifact:
        import torch

        flat, names, tensors = flat_model(model, example)
        # a trace takes any batch size, and any length of token inputs (integer and boolean)
        inputs = [{"name": n, "shape": [None] * t.dim() if not t.dtype.is_floating_point else [None, *t.shape[1:]],
                   "dtype": str(t.dtype).removeprefix("torch.")} for n, t in zip(names, tensors)]
        meta = {**(metadata or {}), "inputs": inputs}
        traced, frozen = None, []
        if self.method != "script":
            try:
                with warnings.catch_warnings(record=True) as caught, no_fast_path():
                    warnings.simplefilter("always", torch.jit.TracerWarning)
                    traced = torch.jit.trace(flat, tuple(tensors), check_trace=False)
            except Exception as exc:
                from .diagnose import failure

                raise ExportFailed(failure("torchscript", exc, flat, tensors)) from exc
            frozen = sorted({str(w.message).split(".")[0] for w in caught
                             if issubclass(w.category, torch.jit.TracerWarning)})
        if self.method == "script" or (self.method == "auto" and frozen):
            try:  # scripting keeps the control flow; it must also save, which not every scripted module does
                with quiet():
                    scripted = torch.jit.script(flat.model if flat.prelude is None else flat)
                    torch.jit.save(scripted, str(path), _extra_files={f"{META_KEY}.json": json.dumps(
                        {**meta, "torchscript": "script"})})
                return Artifact(str(path), self.format, {"method": "script", "inputs": inputs})
            except Exception as exc:
                if self.method == "script":
                    raise ExportFailed(f"torchscript: the model cannot be scripted: {str(exc).strip().splitlines()[0]}; "
                                       f"try method = \"trace\" or another format") from exc
                # scripting failed: keep the trace, which verification on real samples then judges
        torch.jit.save(traced, str(path), _extra_files={f"{META_KEY}.json": json.dumps({**meta, "torchscript": "trace"})})
        return Artifact(str(path), self.format, {"method": "trace", "tracer_warnings": frozen, "inputs": inputs})

    def load(self, path):
        import torch

        files = {f"{META_KEY}.json": ""}
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
        return TorchRunner(module, json.loads(files[f"{META_KEY}.json"] or "{}"))


class ExportedProgramExporter:
    """torch.export's ExportedProgram, saved as ``.pt2`` (for AOTInductor, ExecuTorch and torch.export.load).

    Args:
        dynamic_sequence: leave the sequence axis of token inputs free.
        strict: torch.export's strict mode (TorchDynamo traces the Python code; stricter, slower).
    """

    format = "exported_program"
    suffix = ".pt2"

    def __init__(self, dynamic_sequence: bool = True, strict: bool = False):
        self.dynamic_sequence, self.strict = dynamic_sequence, strict

    def export(self, model, example, path, metadata: dict | None = None) -> Artifact:
        import torch

        flat, names, tensors = flat_model(model, example)
        dyn = dynamic_shapes(tensors, self.dynamic_sequence)
        try:
            with quiet(), torch.no_grad():
                program = torch.export.export(flat, tuple(tensors), dynamic_shapes={"tensors": dyn}, strict=self.strict)
        except Exception as exc:
            from .diagnose import failure

            raise ExportFailed(failure("exported_program", exc, flat, tensors)) from exc
        inputs = []
        placeholders = [n for n in program.graph.nodes if n.op == "placeholder"][-len(tensors):]
        for name, t, node in zip(names, tensors, placeholders):
            shape = [d if isinstance(d, int) else None for d in node.meta["val"].shape] if "val" in node.meta else \
                [None, *t.shape[1:]]
            inputs.append({"name": name, "shape": shape, "dtype": str(t.dtype).removeprefix("torch.")})
        meta = {**(metadata or {}), "inputs": inputs}
        buffer = io.BytesIO()  # through a buffer: torch.export.save insists on a name ending in .pt2
        torch.export.save(program, buffer, extra_files={f"{META_KEY}.json": json.dumps(meta)})
        with open(path, "wb") as f:
            f.write(buffer.getvalue())
        return Artifact(str(path), self.format, {"inputs": inputs})

    def load(self, path):
        import torch

        files = {f"{META_KEY}.json": ""}
        with warnings.catch_warnings():  # torch.export.load warns that it reads weights from a read-only buffer
            warnings.simplefilter("ignore")
            with open(path, "rb") as f:
                program = torch.export.load(io.BytesIO(f.read()), extra_files=files)
        return TorchRunner(program.module(), json.loads(files[f"{META_KEY}.json"] or "{}"))

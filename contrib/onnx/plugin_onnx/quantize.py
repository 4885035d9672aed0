"""Quantised ONNX files (onnxruntime.quantization), with their accuracy measured, not assumed.

``dynamic``: int8 weights of the matrix products (MatMul, Gemm: linear layers, attention), their
inputs quantised on the fly (no calibration): for text and other linear-heavy models. ``static``:
int8 weights and activations of every supported operator (convolutions included), QDQ format,
activation ranges calibrated on training samples: for convolutional models. Either way the
quantised file is verified against the float one (top-1 agreement), and the accuracy of both on the
validation split is recorded side by side.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kernel import KernelError

from .export import Exported, chunks, compare, exported_scores, feed_batches, place, temporary, to_numpy

MODES = ("dynamic", "static")
DYNAMIC_OPS = ["MatMul", "Gemm"]  # what --quantize dynamic quantises
CALIBRATION = 128  # training samples whose activations set the static ranges
ACCURACY_LIMIT = 2000  # validation samples scored for the accuracy comparison


def quantize_export(loaded, feeds, float_export: Exported, mode: str, split: str, tolerance, say) -> Exported:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .runtime import META_KEY, OnnxRunner

    source = float_export.path
    final = source.with_name(source.name.removesuffix(".onnx") + ".int8.onnx")
    tmp = temporary(final)
    prepared = tmp.with_name(tmp.name + ".pre.onnx")
    say(f"quantising {source.name} ({mode}) ...")
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if mode == "dynamic":
            # the matrix products only (Linear layers, attention, the text models' heads). Convolutions
            # quantised dynamically (ConvInteger) were 8-19x slower than float here and cost up to 3.3
            # points of accuracy, with 7-bit or 8-bit weights alike (docs/benchmarks.md): static is their mode
            quantize_dynamic(str(prepared), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=DYNAMIC_OPS)
        else:
            reader = Calibration(feeds, calibration_samples(loaded), OnnxRunner(source).inputs)
            quantize_static(str(prepared), str(tmp), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        stamp(tmp, META_KEY, {"quantized": mode})
        float_runner, int8_runner = OnnxRunner(source), OnnxRunner(tmp)
        raws, labels = accuracy_samples(loaded, split)
        fed = feed_batches(feeds, chunks(raws), float_runner.inputs)  # one draw for both files
        reference = exported_scores(float_runner, fed)
        scores = exported_scores(int8_runner, fed)
        verification = compare(reference, scores, tolerance, quantized=True)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception) and not isinstance(exc, KernelError):  # onnxruntime.quantization's own
            line = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise KernelError(f"quantising {source.name} ({mode}) failed: {line}") from exc
        raise
    finally:
        prepared.unlink(missing_ok=True)
    details = {"quantized": mode, "sequence_length": feeds.pad_to, "in_graph": feeds.in_graph}
    if labels is not None:
        details.update(accuracy=float((scores.argmax(-1) == labels).mean()),
                       float_accuracy=float((reference.argmax(-1) == labels).mean()), accuracy_samples=len(labels))
    return place(Exported(loaded.run.id, "onnx", float_export.exporter, final, verification, details), tmp)


def stamp(path: Path, key: str, extra: dict):
    """The quantiser keeps the graph but not always the metadata: copy it back, with the mode added."""
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    info = {**json.loads(props.get(key, "{}")), **extra}
    del model.metadata_props[:]
    for k, v in {**props, key: json.dumps(info)}.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))


def calibration_samples(loaded) -> list:
    split = "train" if "train" in loaded.data.splits else next(iter(loaded.data.splits))
    raw = loaded.data.raw[split]
    step = max(1, len(raw) // CALIBRATION)
    return [raw[i][0] for i in range(0, len(raw), step)][:CALIBRATION]


def accuracy_samples(loaded, split: str):
    """Raw inputs of the split (up to ACCURACY_LIMIT) and their class labels (None if not single labels)."""
    raw = loaded.data.raw[split]
    items = [raw[i] for i in range(min(len(raw), ACCURACY_LIMIT))]
    labels = None
    if loaded.facts.get("task", "multiclass") in ("multiclass", "binary"):  # accuracy means a class per sample
        try:
            labels = np.asarray([int(to_numpy(y)) for _, y in items])
        except (TypeError, ValueError):
            labels = None
    return [x for x, _ in items], labels


class Calibration:
    """onnxruntime's CalibrationDataReader over training samples, a batch at a time."""

    def __init__(self, feeds, raws: list, names: list[str]):
        self.batches = iter(feed_batches(feeds, chunks(raws), names))
        self.names = names

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {n: batch[n] for n in self.names}

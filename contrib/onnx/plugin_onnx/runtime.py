"""An ONNX file in onnxruntime, without torch: what ``kernel predict`` and the verification run."""
from __future__ import annotations

import json

from kernel import KernelError

META_KEY = "kernel"  # the ONNX metadata_props key, and the stem of the extra file in .pt and .pt2 files


class OnnxRunner:
    """``OnnxRunner(path)(feed) -> scores``: ``feed`` maps the graph's input names to numpy arrays;
    ``.inputs`` are those names in order, ``.metadata`` what ``kernel export`` embedded."""

    def __init__(self, path, session_options=None):
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(str(path), sess_options=session_options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own errors: InvalidProtobuf, NoSuchFile, Fail
            raise KernelError(f"{path} cannot be loaded as an ONNX model: {str(exc).strip().splitlines()[0]}") from exc
        self.inputs = [i.name for i in self.session.get_inputs()]
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        self.metadata = json.loads(raw) if raw else {}

    def __call__(self, feed: dict):
        missing = [n for n in self.inputs if n not in feed]
        if missing:
            raise KernelError(f"the ONNX graph takes {', '.join(self.inputs)}; missing: {', '.join(missing)}")
        try:
            return self.session.run(None, {n: feed[n] for n in self.inputs})[0]
        except Exception as exc:  # onnxruntime's InvalidArgument, Fail, ...: one line, not its traceback
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise KernelError(f"onnxruntime could not run the model on these inputs: {line}") from None

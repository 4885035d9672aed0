"""``kernel.load(RUN).export(...)``: the same export, verification and record as ``kernel export``."""
from __future__ import annotations


def export(loaded, format: str = "onnx", path=None, samples: int = 64, atol: float = 1e-4, rtol: float = 1e-3,
           in_graph: bool = False, quantize: str | None = None, min_agreement: float = 0.95, **params):
    """Export the run's model with the exporter ``format`` (its parameters as keywords) to ``path``
    (default: the run's artifacts/exports/), verified on ``samples`` validation samples. Returns the
    exports written (the float file, then the quantised one): each has ``path``, ``passed`` and
    ``verification``; a refused one is kept as NAME.unverified."""
    import kernel

    from .export import Tolerance, export_run

    return export_run(loaded, kernel.get_catalog(), format, params, path, samples=samples,
                      tolerance=Tolerance(atol, rtol, min_agreement), in_graph=in_graph, quantize=quantize)

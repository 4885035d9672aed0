"""``[export]``: the workflow's runs exported, each from its best checkpoint, when ``kernel run`` ends."""
from __future__ import annotations

import sys

import kernel


class Export:
    """Export each run's best model when the workflow's runs have ended, verified like ``kernel export``.

    Args:
        formats: the exporters: onnx, torchscript, exported_program, or any exporter's name.
        quantize: also write an int8 ONNX file: "static" (convolutional models) or "dynamic" (matrix
            products only: text and other linear-heavy models); none by default.
        in_graph: put the fitted normalisation into the graph.
        output: a folder for the files (default: each run's artifacts/exports/).
        samples: validation samples the verification runs on.
        atol: absolute tolerance of the verification.
        rtol: tolerance relative to the largest eager score.
        min_agreement: the share of top-1 classes a quantised file must share with the float one.
    """

    def __init__(self, formats: list[str] = ("onnx",), quantize: str | None = None, in_graph: bool = False,
                 output: str | None = None, samples: int = 64, atol: float = 1e-4, rtol: float = 1e-3,
                 min_agreement: float = 0.95):
        self.formats, self.quantize, self.in_graph, self.output = list(formats), quantize, in_graph, output
        self.samples, self.atol, self.rtol, self.min_agreement = samples, atol, rtol, min_agreement

    def check(self, workflow) -> list[tuple[str, str]]:
        from .export import exporter_names

        problems = []
        known = exporter_names(kernel.get_catalog())
        for i, fmt in enumerate(self.formats):
            if fmt not in known:
                problems.append((f"export.formats[{i}]", f"unknown export format {fmt!r}"
                                 f"{kernel.did_you_mean(fmt, list(known))}; the formats are "
                                 f"{', '.join(sorted(k for k in known if '.' not in k))}"))
        if self.quantize not in (None, "dynamic", "static"):
            problems.append(("export.quantize", f"must be \"dynamic\" or \"static\", not {self.quantize!r}"
                             f"{kernel.did_you_mean(str(self.quantize), ['dynamic', 'static'])}"))
        if self.samples < 1:
            problems.append(("export.samples", f"must be 1 or more, not {self.samples}"))
        for name in ("atol", "rtol"):
            if getattr(self, name) < 0:
                problems.append((f"export.{name}", f"must be 0 or more, not {getattr(self, name)}"))
        if self.quantize and not any(known.get(f, "").endswith(".onnx") for f in self.formats):
            problems.append(("export.quantize", "writes an int8 ONNX file beside the float one: add \"onnx\" to "
                                                "export.formats"))
        if not 0 <= self.min_agreement <= 1:
            problems.append(("export.min_agreement", f"is a fraction between 0 and 1, not {self.min_agreement}"))
        return problems

    def finish(self, results):
        from .export import Tolerance, export_run, refusal

        catalog = kernel.get_catalog()
        refused = []
        for run in results:
            if run.status != "completed":
                continue
            loaded = kernel.load(run)
            for fmt in self.formats:  # one export that fails does not stop the others
                try:
                    done = export_run(loaded, catalog, fmt, None, self.output and f"{self.output.rstrip('/')}/",
                                      samples=self.samples, in_graph=self.in_graph, quantize=self.quantize,
                                      tolerance=Tolerance(self.atol, self.rtol, self.min_agreement))
                except kernel.KernelError as exc:
                    refused.append(f"{run.id} to {fmt}: {exc}")
                    continue
                for d in done:
                    verdict = "verified" if d.passed else "REFUSED"
                    print(f"kernel: exported {run.id} to {d.path} ({verdict})", file=sys.stderr)
                refused += [refusal(d) for d in done if not d.passed]
        if refused:
            raise kernel.KernelError("; ".join(refused))

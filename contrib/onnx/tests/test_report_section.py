"""The Exports section of the report and the dashboard: one row per exported file, refused ones
marked, every text escaped; no section for runs with nothing exported."""
from __future__ import annotations

from pathlib import Path

from plugin_onnx.plugin import kernel_report_sections


def info(**exports):
    return {"id": "w-m-1", "model": "<b>m</b>", "workflow": "w", "exports": list(exports.values())}


def test_no_section_without_exports():
    assert kernel_report_sections([{"id": "a", "model": "m"}, "not a dict"], Path(".")) == []


def test_one_row_per_file_with_its_verification():
    run = info(a={"format": "onnx", "path": "/x/m.onnx", "size": 401_234, "verified": True, "max_abs_error": 1.4e-6,
                  "top1_agreement": 1.0},
               b={"format": "onnx", "quantized": "dynamic", "path": "/x/m.int8.onnx", "size": 120_000,
                  "verified": True, "accuracy": 0.9722, "float_accuracy": 0.975, "top1_agreement": 0.99},
               c={"format": "torchscript", "path": "/x/<script>.pt.unverified", "verified": False,
                  "max_abs_error": 0.5})
    (section,) = kernel_report_sections([run], Path("."))
    assert section.title == "Exports"
    html = section.html
    assert html.count("<tr") == 4  # the header and three files
    assert "m.onnx" in html and "401.2 kB" in html and "1.4e-06" in html and "100.0%" in html
    assert "onnx int8 (dynamic)" in html and "97.22% (float 97.50%)" in html
    assert "REFUSED" in html and 'style="color:#b00020"' in html
    assert "<script>" not in html and "&lt;script&gt;.pt.unverified" in html and "&lt;b&gt;m&lt;/b&gt;" in html

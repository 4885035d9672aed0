"""The report's and the dashboard's "Exports" section: each exported file of the page's runs with its
verification, from run.json's ``exports`` (no file is opened: the page is built often)."""
from __future__ import annotations

from html import escape
from pathlib import Path

from kernel import Section

COLUMNS = ("run", "model", "format", "file", "size", "verified", "max abs error", "top-1 agreement", "accuracy")


def sections(runs: list, workspace) -> list:
    rows = [(info, e) for info in runs if isinstance(info, dict)
            for e in (info.get("exports") or []) if isinstance(e, dict)]
    if not rows:
        return []
    body = "".join(row(info, e) for info, e in rows)
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    note = ("<p>Each file was compared with the eager model on validation samples before it took its name; "
            "a refused one is kept as <code>NAME.unverified</code>. <code>kernel predict FILE.onnx INPUT</code> "
            "runs an ONNX file without torch.</p>")
    return [Section("Exports", f"{note}<table class=\"exports\"><thead><tr>{head}</tr></thead><tbody>{body}"
                               f"</tbody></table>")]


def row(info: dict, e: dict) -> str:
    verified = e.get("verified") is True
    quantized = f" int8 ({e['quantized']})" if e.get("quantized") else ""
    accuracy = ""
    if isinstance(e.get("accuracy"), (int, float)) and isinstance(e.get("float_accuracy"), (int, float)):
        accuracy = f"{e['accuracy']:.2%} (float {e['float_accuracy']:.2%})"
    cells = [info.get("id"), info.get("model"), f"{e.get('format')}{quantized}", Path(str(e.get("path"))).name,
             size(e.get("size")), "yes" if verified else "REFUSED", number(e.get("max_abs_error")),
             percent(e.get("top1_agreement")), accuracy]
    style = "" if verified else ' style="color:#b00020"'
    return f"<tr{style}>" + "".join(f"<td>{escape(str(c if c is not None else ''))}</td>" for c in cells) + "</tr>"


def size(value) -> str:
    if not isinstance(value, (int, float)):
        return ""
    return f"{value / 1e6:.2f} MB" if value >= 1e6 else f"{value / 1e3:.1f} kB"


def number(value) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else ""


def percent(value) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else ""

"""`kernel check-plugin text` passes: every component built from its example and exercised, nothing left
unchecked (its JSON report has no findings, warnings included)."""
from __future__ import annotations

import json


def test_check_plugin_text_passes_with_nothing_unexercised(cli):
    proc = cli("check-plugin", "text", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], json.dumps(report["findings"], indent=1) + proc.stderr[-2000:]
    assert report["findings"] == []  # no error, and no warning that a component could not be exercised
    assert report["plugin"] == "text" and report["components"] == 26


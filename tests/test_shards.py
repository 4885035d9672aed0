"""A workflow's models split between commands: `kernel run --shard I/N` and `--only MODEL`, on one
machine or several sharing the run store, and one report over all of them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kernel.errors import KernelError
from kernel.workflow import Workflow

WORKFLOW = """
name = "sharded"
seed = 0
[dataset]
use = "kernel.synthetic"
num_samples = 120
shape = [8]
[trainer]
epochs = 1
tensorboard = false
[[models]]
use = "kernel.mlp"
[[models]]
use = "kernel.linear"
[[models]]
name = "wide"
use = "kernel.mlp"
"""


def five_models() -> Workflow:
    return Workflow(name="w", dataset={"use": "kernel.synthetic"},
                    models=[{"use": "kernel.mlp", "name": f"m{i}"} for i in range(5)])


def test_the_shards_of_a_workflow_train_each_model_once():
    wf = five_models()
    for count in range(1, 7):
        taken = [i for part in range(1, count + 1) for i in wf.model_indices(shard=f"{part}/{count}")]
        assert sorted(taken) == list(range(5))
    assert wf.model_indices(shard="2/2") == [1, 3]
    assert wf.model_indices(shard="6/6") == []  # more commands than models: this one has nothing to do
    assert wf.model_indices() == list(range(5)) and wf.model_indices(["m3", "m1"]) == [1, 3]


@pytest.mark.parametrize("shard", ["0/2", "3/2", "2", "a/b", "1/0", "-1/2"])
def test_a_malformed_shard_is_refused(shard):
    with pytest.raises(KernelError, match="--shard: expected I/N with 1 <= I <= N"):
        five_models().model_indices(shard=shard)


def test_an_unknown_model_gets_did_you_mean_and_the_list():
    with pytest.raises(KernelError, match=r"no model 'm44' in workflow 'w' \(did you mean 'm4'\?\); its models: m0, m1"):
        five_models().model_indices(["m44"])


@pytest.mark.slow
def test_two_commands_share_a_run_store_and_one_report_shows_every_model(workspace, write_workflow):
    path = write_workflow(WORKFLOW)
    env = {**os.environ, "KERNEL_HOME": str(workspace)}

    def kernel(*args):
        return subprocess.Popen([sys.executable, "-m", "kernel.cli", *args], cwd=workspace, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    shards = [kernel("run", str(path), "--shard", f"{i}/2", "--quiet") for i in (1, 2)]  # at once, as two machines
    for proc in shards:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    runs = {}
    for info in (json.loads(p.read_text()) for p in (workspace / "runs").glob("*/run.json")):
        runs[info["model"]] = info
    assert {name: info["model_index"] for name, info in runs.items()} == {"mlp": 0, "linear": 1, "wide": 2}
    assert all(info["status"] == "completed" for info in runs.values())

    report = kernel("report", "--workflow", "sharded", "-o", str(workspace / "report.html"))
    out, err = report.communicate(timeout=300)
    assert report.returncode == 0 and "report of 3 runs" in out, err
    html = (workspace / "report.html").read_text()
    assert all(info["id"] in html for info in runs.values())

    idle = kernel("run", str(path), "--shard", "4/4")  # a fourth machine for three models
    out, err = idle.communicate(timeout=300)
    assert idle.returncode == 0 and "shard 4/4 has no model to train" in err
    only = kernel("run", str(path), "--only", "wdie")
    out, err = only.communicate(timeout=300)
    assert only.returncode == 2 and "did you mean 'wide'" in err and "Traceback" not in err

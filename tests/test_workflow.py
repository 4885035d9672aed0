"""Workflows from TOML, dicts and Python objects become one validated model; errors name their place."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import kernel
from kernel import KernelError
from kernel.workflow import Workflow, WorkflowError, parse_value

TOML = """
name = "tiny"
seed = 3

[dataset]
use = "kernel.synthetic"
num_samples = 64
shape = [4]
split = { valid = 0.25 }

[[models]]
use = "kernel.mlp"
hidden = 8

[[models]]
use = "kernel.linear"
name = "lin"

[trainer]
epochs = 2
optimizer = { use = "torch.optim.SGD", lr = 0.1 }
"""


def test_toml_dict_and_python_give_the_same_workflow(write_workflow):
    from_file = Workflow.from_file(write_workflow(TOML))
    from_dict = Workflow.from_dict({
        "name": "tiny", "seed": 3,
        "dataset": {"use": "kernel.synthetic", "params": {"num_samples": 64, "shape": [4]}, "split": {"valid": 0.25}},
        "models": [{"use": "kernel.mlp", "params": {"hidden": 8}}, {"use": "kernel.linear", "name": "lin"}],
        "trainer": {"epochs": 2, "optimizer": {"use": "torch.optim.SGD", "lr": 0.1}},
    })
    from kernel.workflow import DatasetSpec, ModelSpec, TrainerSpec
    from_python = Workflow(name="tiny", seed=3,
                           dataset=DatasetSpec(use="kernel.synthetic", params={"num_samples": 64, "shape": [4]},
                                               split={"valid": 0.25}),
                           models=[ModelSpec(use="kernel.mlp", params={"hidden": 8}),
                                   ModelSpec(use="kernel.linear", name="lin")],
                           trainer=TrainerSpec(params={"epochs": 2, "optimizer": {"use": "torch.optim.SGD", "lr": 0.1}}))
    assert from_file.to_dict() == from_dict.to_dict() == from_python.to_dict()
    assert from_file.models[0].params == {"hidden": 8}
    assert from_file.model_label(1) == "lin" and from_file.model_label(0) == "mlp"


def test_unknown_names_and_parameters_are_reported_with_their_location():
    wf = Workflow(dataset={"use": "kernel.synthetic", "num_sampels": 10},
                  models=[{"use": "kernel.mlp"}, {"use": "kernel.mlp", "params": {"dropuot": 0.1}},
                          {"use": "kernel.mpl"}])
    with pytest.raises(WorkflowError) as err:
        wf.validate_components()
    where = dict(err.value.problems)
    assert "did you mean 'num_samples'" in where["dataset.params.num_sampels"]
    assert "did you mean 'dropout'" in where["models[1].params.dropuot"]
    assert "did you mean 'kernel.mlp'" in where["models[2].use"]


def test_wrong_types_are_reported_with_the_expected_type():
    wf = Workflow(dataset={"use": "kernel.synthetic"}, models=[{"use": "kernel.mlp", "hidden": "wide"}])
    with pytest.raises(WorkflowError) as err:
        wf.validate_components()
    message = dict(err.value.problems)["models[0].params.hidden"]
    assert "expected int" in message and "'wide'" in message


def test_nested_component_specs_are_checked_too():
    wf = Workflow(dataset={"use": "kernel.synthetic"}, models=[{"use": "kernel.mlp"}],
                  trainer={"optimizer": {"use": "torch.optim.AdamW", "lrr": 0.1}})
    with pytest.raises(WorkflowError) as err:
        wf.validate_components()
    assert "did you mean 'lr'" in dict(err.value.problems)["trainer.optimizer.lrr"]


def test_structure_errors_come_from_the_model_with_locations():
    with pytest.raises(WorkflowError) as err:
        Workflow(dataset={"use": "kernel.synthetic", "split": {"valid": 1.5}}, models=[], colour="red")
    locs = [loc for loc, _ in err.value.problems]
    assert "dataset.split.valid" in locs and "colour" in locs


def test_malformed_toml_names_the_file(write_workflow):
    path = write_workflow("name = 'x'\n[dataset\nuse = 1\n")
    with pytest.raises(KernelError, match="malformed TOML") as err:
        Workflow.from_file(path)
    assert str(path) in str(err.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(KernelError, match="not found: .*nope.toml"):
        Workflow.from_file(tmp_path / "nope.toml")


def test_overrides_use_the_paths_that_errors_use(write_workflow):
    wf = Workflow.from_file(write_workflow(TOML))
    changed = wf.with_overrides({"trainer.epochs": 5, "models[0].dropout": 0.2, "models[1].params.hidden": 3,
                                 "dataset.split.valid": 0.5, "dataset.num_samples": 32, "seed": 9})
    assert changed.trainer.params["epochs"] == 5
    assert changed.models[0].params == {"hidden": 8, "dropout": 0.2}
    assert changed.models[1].params == {"hidden": 3}
    assert changed.dataset.split.valid == 0.5 and changed.dataset.params["num_samples"] == 32
    assert changed.seed == 9
    assert wf.trainer.params["epochs"] == 2  # the original is untouched
    with pytest.raises(KernelError, match="out of range"):
        wf.with_overrides({"models[5].dropout": 0.1})


@pytest.mark.parametrize("text,value", [("3", 3), ("0.5", 0.5), ("true", True), ("[1, 2]", [1, 2]),
                                        ('"x"', "x"), ("adamw", "adamw")])
def test_set_values_are_read_as_toml(text, value):
    assert parse_value(text) == value


def test_dry_run_of_the_kernel_only_example(cli, workspace):
    """examples/synthetic.toml uses kernel components only: its plan builds without any plugin."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "synthetic.toml"
    out = cli("run", "--dry-run", str(example), env={"KERNEL_DISABLE_PLUGINS": "vision,text,audio"})
    assert out.returncode == 0, out.stderr
    assert "train 1600, valid 400 samples" in out.stdout
    assert "5,508" in out.stdout and "(2, 4) float32" in out.stdout  # the mlp's size and output
    assert not (workspace / "runs").exists()  # a dry run writes nothing


# -- the data's conventions: targets in the form their task is trained with -------------------------
def test_regression_targets_are_float32_vectors_like_the_models_output(workspace, tmp_path):
    """(N,) float64 targets, as numpy gives them, against a model that outputs (N, 1): the run
    failed with "Found dtype Double but expected Float" after the dry run had passed."""
    import numpy as np

    from kernel.build import prepare
    from kernel.dryrun import describe_plan
    from kernel.runner import run_workflow

    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
    np.savez(tmp_path / "reg.npz", inputs=x, targets=x.sum(1).astype("float64"))
    wf = Workflow(dataset={"use": "kernel.tensors", "path": str(tmp_path / "reg.npz")},
                  models=[{"use": "kernel.mlp", "hidden": 8}], trainer={"epochs": 1, "progress": False})
    plan = prepare(wf)
    _, targets = plan.data.batch("train", size=4)
    assert targets.shape == (4, 1) and targets.dtype == torch.float32
    assert describe_plan(plan)["models"][0]["output"] == "(2, 1) float32"
    run = run_workflow(wf, quiet=True)[0]
    assert run.status == "completed", run.info["reason"]


@pytest.mark.parametrize("target, task, expected", [
    (torch.tensor(2.5, dtype=torch.float64), "regression", (torch.float32, (1,))),
    (0.5, "regression", (torch.float32, (1,))),
    (torch.ones(3, dtype=torch.float64), "regression", (torch.float32, (3,))),
    (torch.tensor(2, dtype=torch.int32), "multiclass", (torch.int64, ())),
    (torch.tensor([[0, 1]], dtype=torch.uint8), "other", (torch.uint8, (1, 2))),  # not the kernel's to say
])
def test_targets_are_conformed_only_where_it_is_unambiguous(target, task, expected):
    from kernel.data import conform_target

    out = conform_target(target, task)
    assert (out.dtype, tuple(out.shape)) == expected


def test_the_kernel_names_no_domain_in_the_task_of_dict_targets():
    from kernel.data import infer_task

    assert infer_task({"boxes": torch.zeros(1, 4), "labels": torch.zeros(1)}) == "other"
    assert "boxes" not in (Path(kernel.__file__).parent / "data.py").read_text()


# -- the layers: validation and the workflow model do not import each other, nor the runner ---------
def module_imports(path: Path) -> list[tuple[str, bool]]:
    """``(module, at module level)`` for every import in a file."""
    import ast

    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out.append(("." * node.level + (node.module or ""), id(node) in top))
    return out


def test_validation_and_workflow_import_no_circle():
    folder = Path(kernel.__file__).parent
    assert not [m for m, _ in module_imports(folder / "validation.py") if m in (".workflow", ".runner")]
    workflow_imports = module_imports(folder / "workflow.py")
    assert (".runner", True) not in workflow_imports  # Workflow.run() imports it when called, only there
    assert [m for m, top in workflow_imports if not top] == [".methods", ".validation", ".runner"]


def test_check_models_is_the_one_call_that_refuses_a_model_before_any_run(workspace):
    """What the dry run does for each model, as one call for `kernel run` to make before creating runs."""
    from kernel.build import prepare
    from kernel.dryrun import check_models

    wf = Workflow(dataset={"use": "kernel.synthetic", "num_samples": 40},
                  models=[{"use": "kernel.linear"}, {"use": "kernel.mlp", "input_shape": [3]}],
                  trainer={"epochs": 1})
    plan = prepare(wf)
    trainer = plan.trainer()
    with pytest.raises(WorkflowError) as err:
        check_models(plan, trainer, trainer.describe(plan.data))
    assert [loc for loc, _ in err.value.problems] == ["models[1] (kernel.mlp)"]
    assert "mat1 and mat2" in err.value.problems[0][1]
    assert not (workspace / "runs").exists()


def test_a_workflow_name_becomes_one_safe_folder_name():
    from kernel.commands.workflow import folder_name

    assert folder_name("../../etc") == "etc" and folder_name("a/b c") == "a-b-c" and folder_name("..") == "workflow"
    with pytest.raises(WorkflowError, match="name: at most 80 characters"):
        Workflow(name="n" * 300, dataset={"use": "kernel.synthetic"})


def test_a_datasets_own_facts_reach_models_renderers_and_analyzers(tmp_path, monkeypatch):
    """A dataset's ``facts()`` (an audio dataset's sample rate) is part of the data facts; a fitted
    transform's facts win over it."""
    (tmp_path / "facts_data.py").write_text(
        "import torch\n"
        "class Clips(torch.utils.data.Dataset):\n"
        "    classes = ['a', 'b']\n"
        "    def __len__(self):\n        return 20\n"
        "    def __getitem__(self, i):\n        return torch.full((1, 16), float(i)), i % 2\n"
        "    def facts(self):\n        return {'sample_rate': 8000, 'hop': 4}\n"
        "class Resample:\n"
        "    def __call__(self, x):\n        return x\n"
        "    def facts(self):\n        return {'sample_rate': 16000}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from kernel.build import prepare

    plan = prepare(Workflow.from_dict({"name": "facts", "dataset": {"use": "facts_data:Clips"},
                                       "models": [{"use": "kernel.linear"}]}))
    assert plan.data.facts["sample_rate"] == 8000 and plan.data.facts["hop"] == 4
    plan = prepare(Workflow.from_dict({"name": "facts", "dataset": {
        "use": "facts_data:Clips", "transforms": [{"use": "facts_data:Resample"}]},
        "models": [{"use": "kernel.linear"}]}))
    assert plan.data.facts["sample_rate"] == 16000 and plan.data.facts["hop"] == 4


def test_an_error_without_a_message_still_gets_its_one_line():
    """A collate function that fails on a bare ``assert``: the kernel's one-line message names the
    error's type instead of failing itself on the empty message."""
    from kernel.data import collate_items

    def collate(items):
        raise AssertionError  # what a bare `assert` raises outside pytest

    with pytest.raises(KernelError, match="cannot be made into a batch: AssertionError"):
        collate_items([torch.zeros(2), torch.zeros(2)], collate)

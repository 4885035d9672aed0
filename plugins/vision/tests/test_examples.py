"""The vision examples build and take a batch (`kernel run --dry-run`) on files the tests make."""
from __future__ import annotations

import json

import torch
import torchvision

import vision_files
from vision_helpers import REPO, run_dirs

CIFAR10 = REPO / "examples" / "cifar10.toml"
TRANSFER = REPO / "examples" / "transfer.toml"


def _plan(cli, *args):
    proc = cli("run", "--dry-run", "--json", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_cifar10_example_on_local_cifar_batches(cli, tmp_path):
    vision_files.cifar10(tmp_path / "data", per_batch=4, test=4)
    plan = _plan(cli, CIFAR10, "--set", f"dataset.root={tmp_path / 'data'}", "--set", "trainer.batch_size=4")
    assert plan["dataset"]["splits"] == {"train": 20, "valid": 4}
    assert plan["classes"] == vision_files.CIFAR10_CLASSES
    assert [m["name"] for m in plan["models"]] == ["simple_cnn", "resnet18", "mobilenet_v2"]
    for model in plan["models"]:
        assert "error" not in model and model["output"] == "(2, 10) float32", model


def test_transfer_example_with_a_local_weights_file(cli, tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    plan = _plan(cli, TRANSFER, "--set", f"models[0].params.weights_path={tmp_path / 'resnet18.pth'}")
    pretrained, scratch = plan["models"]
    assert pretrained["output"] == scratch["output"] == "(2, 10) float32"
    assert plan["dataset"]["input"] == "(3, 64, 64) float32"


def test_transfer_example_loads_the_weights_and_replaces_the_head(tmp_path):
    from kernel import prepare, Workflow

    torch.manual_seed(0)
    imagenet = torchvision.models.resnet18().state_dict()
    torch.save(imagenet, tmp_path / "resnet18.pth")
    workflow = Workflow.from_file(TRANSFER).with_overrides(
        {"models[0].params.weights_path": str(tmp_path / "resnet18.pth"), "dataset.fraction": 0.05})
    plan = prepare(workflow)
    pretrained, _ = plan.model(0)
    scratch, _ = plan.model(1)
    for name in ("conv1.weight", "layer4.1.conv2.weight", "layer2.0.bn1.running_var"):
        assert torch.equal(pretrained.state_dict()[name], imagenet[name])
    assert not torch.equal(scratch.state_dict()["conv1.weight"], imagenet["conv1.weight"])
    assert pretrained.fc.out_features == 10 and imagenet["fc.weight"].shape[0] == 1000


def test_transfer_example_without_the_file_names_it_and_trains_nothing(cli, workspace):
    proc = cli("run", TRANSFER)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "weights/resnet18-f37072fd.pth not found" in proc.stderr
    assert run_dirs(workspace) == []


def test_the_transforms_shown_in_docs_vision_md_build_and_run():
    import re
    import tomllib

    from vision_helpers import prepare

    text = (REPO / "docs" / "vision.md").read_text()
    block = next(b for b in re.findall(r"^```toml\n(.*?)^```", text, re.S | re.M) if b.startswith("transforms"))
    transforms = tomllib.loads(block)["transforms"]
    plan = prepare({"use": "vision.digits", "fraction": 0.05, "transforms": transforms})
    x, _ = plan.data.splits["train"][0]
    assert x.shape == (1, 64, 64) and plan.data.facts["normalize"]["mean"]

"""The fused operators in use: the vision loader's batched normalisation, the trainer's cross-entropy,
the text models' masked-mean bag and GELU feed-forward, each equal to the path it replaces; and the
same behaviour with the operator library absent (contrib/fused-ops/tests test the operators)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernel import fused
from kernel.build import prepare
from kernel.workflow import Workflow

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from vision_pipeline import write_cifar  # noqa: E402  (CIFAR-10 batches as torchvision reads them)

LOADED = fused.op("image_batch") is not None


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, 200)
    return root


def cifar_plan(root, flip_p: float | None, before=()):
    transforms = [*before, *([{"use": "vision.RandomHorizontalFlip", "p": flip_p}] if flip_p is not None else []),
                  {"use": "vision.Normalize", "mean": "auto", "std": "auto"}]
    dataset = {"use": "vision.CIFAR10", "root": str(root), "split": {"valid": 0.1}, "transforms": transforms}
    return prepare(Workflow(name="fused", dataset=dataset, models=[{"use": "vision.simple_cnn"}]))


def first_batch(plan, size=32):
    loader = plan.data.loader("train", batch_size=size, shuffle=False)
    return loader, next(iter(loader))


@pytest.mark.parametrize("flip_p", [None, 0.0, 1.0])
def test_the_vision_loader_normalises_uint8_batches_as_the_per_sample_path_does(cifar, flip_p):
    plan = cifar_plan(cifar, flip_p)
    loader, (x, y) = first_batch(plan)
    assert type(loader.dataset.base).__name__ == "Pixels"  # uint8 samples, converted once per batch
    items = [plan.data.train[i] for i in range(32)]
    assert torch.allclose(x, torch.stack([v for v, _ in items]), atol=1e-5, rtol=1e-6)  # x*a+b against (x/255-m)/s
    assert torch.equal(y, torch.tensor([t for _, t in items]))
    assert x.dtype == torch.float32 and x.is_contiguous()


def test_a_random_flip_mirrors_each_sample_or_leaves_it(cifar):
    plan = cifar_plan(cifar, 0.5)
    torch.manual_seed(3)
    _, (x, _) = first_batch(plan, 64)
    pixels = plan.data.loader("train", batch_size=64, shuffle=False).dataset
    flipped = []
    for i in range(64):
        torch.manual_seed(0)  # the per-sample path's flip decided by hand: p=1 and p=0 paths of one Normalize
        plain = plan.data.train.transforms[-1](pixels[i][0])
        if torch.allclose(x[i], plain, atol=1e-5):
            flipped.append(False)
        else:
            assert torch.allclose(x[i], plain.flip(-1), atol=1e-5)
            flipped.append(True)
    assert 10 < sum(flipped) < 54  # both happen (p = 0.5 over 64 samples)


def test_transforms_the_batch_stage_cannot_take_stay_per_sample(cifar):
    plan = cifar_plan(cifar, 1.0, before=[{"use": "vision.RandomRotation", "degrees": [90, 90]}])
    loader, (x, _) = first_batch(plan, 8)
    assert type(loader.dataset.base).__name__ != "Pixels"  # the rotation needs the per-sample path...
    assert len(loader.dataset.transforms) == 1  # ...and the flip and normalisation still run per batch
    expected = torch.stack([plan.data.train[i][0] for i in range(8)])
    assert torch.allclose(x, expected, atol=1e-5)


@pytest.mark.skipif(not LOADED, reason="kernel-fused-ops is not built here: pip install contrib/fused-ops")
def test_the_loader_runs_the_fused_image_operator(cifar):
    plan = cifar_plan(cifar, 0.5)
    loader = plan.data.loader("train", batch_size=16, shuffle=False)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        next(iter(loader))
    assert "kernel_fused::image_batch" in {e.key for e in prof.key_averages()}


def test_the_trainer_computes_cross_entropy_with_the_fused_loss():
    plan = prepare(Workflow(name="ce", seed=0, dataset={"use": "kernel.synthetic", "num_samples": 64, "shape": [8]},
                            models=[{"use": "kernel.mlp"}],
                            trainer={"loss": {"use": "torch.nn.CrossEntropyLoss", "label_smoothing": 0.1}}))
    trainer = plan.trainer()
    loss = trainer.build_loss(trainer.describe(plan.data))
    assert isinstance(loss, fused.CrossEntropyLoss) and loss.label_smoothing == 0.1
    logits = torch.randn(16, 4, requires_grad=True)
    target = torch.randint(0, 4, (16,))
    value = loss(logits, target)
    value.backward()
    expected = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1)
    assert torch.allclose(value, expected, atol=1e-6)
    # probabilities as targets and (N, C, d) scores are not the fused operator's: the reference runs
    soft = torch.softmax(torch.randn(16, 4), 1)
    assert torch.allclose(loss(logits, soft), torch.nn.functional.cross_entropy(logits, soft, label_smoothing=0.1))


@pytest.mark.slow
def test_a_workflow_trains_through_the_batched_images_and_the_fused_loss(cifar, workspace):
    from kernel.runner import run_workflow

    dataset = {"use": "vision.CIFAR10", "root": str(cifar), "split": {"valid": 0.2},
               "transforms": [{"use": "vision.RandomHorizontalFlip"},
                              {"use": "vision.Normalize", "mean": "auto", "std": "auto"}]}
    loss = {"use": "torch.nn.CrossEntropyLoss", "label_smoothing": 0.1, "weight": [1.0] * 9 + [2.0]}
    wf = Workflow(name="fused", seed=0, dataset=dataset, models=[{"use": "vision.simple_cnn", "width": 8}],
                  trainer={"epochs": 2, "batch_size": 32, "tensorboard": False, "loss": loss})
    run = run_workflow(wf, quiet=True, artifacts=False)[0]
    rows = run.metrics()
    assert run.status == "completed" and len(rows) == 2
    assert all(torch.isfinite(torch.tensor(r["train/loss"])) for r in rows)


def test_text_models_with_fused_parts_equal_pytorchs_own():
    from plugin_text.models import EmbeddingBagClassifier, TransformerClassifier

    torch.manual_seed(0)
    bag = EmbeddingBagClassifier(vocab_size=40, num_classes=3, padding_idx=0)
    ids = torch.randint(1, 40, (5, 9))
    ids[1, 4:] = 0
    ids[2, :] = 0  # a text of padding only: zeros, as nn.EmbeddingBag gives
    ours = bag.embedding(ids)
    plain = torch.nn.EmbeddingBag.forward(bag.embedding, ids)
    assert torch.allclose(ours, plain, atol=1e-6)
    ours.sum().backward()
    fused_grad = bag.embedding.weight.grad.clone()
    bag.embedding.weight.grad = None
    plain.sum().backward()
    assert torch.allclose(fused_grad, bag.embedding.weight.grad, atol=1e-6)

    for activation, approximate in (("gelu", "none"), ("gelu_tanh", "tanh")):
        torch.manual_seed(1)
        model = TransformerClassifier(vocab_size=40, num_classes=3, padding_idx=0, activation=activation, dropout=0.0)
        layer = model.encoder.layers[0]
        x = torch.randn(2, 6, model.embed_dim)
        expected = layer.linear2(torch.nn.functional.gelu(layer.linear1(x), approximate=approximate))
        assert torch.allclose(layer._ff_block(x), expected, atol=1e-5)
        model(ids).sum().backward()  # trains through the fused operator's backward


def test_the_docs_example_runs(capsys):
    import re

    text = (ROOT / "docs" / "fused-ops.md").read_text()
    (example,) = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    exec(compile(example, "docs/fused-ops.md", "exec"), {})
    shown = capsys.readouterr().out.split()
    assert shown[-1] == ("fused" if LOADED else "reference")


def test_a_text_transformer_refuses_an_unknown_activation():
    from kernel import KernelError
    from plugin_text.models import TransformerClassifier

    with pytest.raises(KernelError, match="activation must be one of relu, gelu, gelu_tanh"):
        TransformerClassifier(vocab_size=10, num_classes=2, padding_idx=0, activation="swish")


def test_kernel_plugins_says_whether_the_library_is_installed_and_its_device_kernels():
    import json

    out = subprocess.run([sys.executable, "-m", "kernel.cli", "plugins", "--json"], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    info = json.loads(out)["fused_ops"]
    if LOADED:
        assert info["installed"] and "cpu" in info["devices"] and info["disabled"] is False
    else:
        assert info == {"installed": False} or info.get("disabled")
    text = subprocess.run([sys.executable, "-m", "kernel.cli", "plugins"], capture_output=True, text=True,
                          cwd=ROOT, check=True, env={**os.environ, "COLUMNS": "300"}).stdout
    assert "fused operators: kernel-fused-ops" in text


# Run with the library made unimportable (as if uninstalled), the users of the operators still pass:
# this module (its training run included), the vision plugin's transform tests and the text models' tests.
ABSENT = ("import sys\n"
          "sys.modules['kernel_fused_ops'] = None  # find_spec says absent, import fails: as if uninstalled\n")
USERS = ["tests/test_fused_ops.py", "plugins/vision/tests/test_transforms.py", "plugins/text/tests/test_models.py"]


@pytest.mark.slow
def test_without_the_library_the_users_of_the_operators_still_pass(tmp_path):
    if os.environ.get("KERNEL_FUSED_ABSENT"):
        pytest.skip("already running without the library")
    (tmp_path / "sitecustomize.py").write_text(ABSENT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "KERNEL_FUSED_ABSENT": "1"}
    probe = subprocess.run([sys.executable, "-c", "from kernel import fused; print(fused.op('image_batch'))"],
                           capture_output=True, text=True, env=env)
    assert probe.stdout.strip() == "None", probe.stderr
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *USERS],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]

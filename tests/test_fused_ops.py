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
    for i in range(64):  # each sample is the normalised image or its mirror
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


def per_sample_and_batched(items, flip_p=1.0):
    """A list of items through vision's flip and Normalize one by one, and through their batch form."""
    from torch.utils.data import default_collate

    from kernel import create

    flip, normalize = create("vision.RandomHorizontalFlip", p=flip_p), create("vision.Normalize", mean=[0.5], std=[0.25])
    form = normalize.batched([flip])
    assert form.taken == 1
    return default_collate([(normalize(x), y) for x, y in (flip(x, y) for x, y in items)]), form.collate(items)


def test_boxes_and_pil_images_take_the_per_sample_path_inside_the_batch_form():
    image = torch.randint(0, 256, (3, 8, 10), dtype=torch.uint8)
    boxes = [(image, {"boxes": torch.tensor([[1.0, 2.0, 4.0, 5.0]]), "labels": torch.tensor([1])})] * 2
    expected, batched = per_sample_and_batched(boxes)
    assert torch.equal(batched[1]["boxes"], expected[1]["boxes"])  # mirrored with the image: [[6, 2, 9, 5]]
    assert batched[1]["boxes"].tolist() == [[[6.0, 2.0, 9.0, 5.0]]] * 2
    assert torch.allclose(batched[0], expected[0], atol=1e-6)

    from torchvision.transforms.v2.functional import to_pil_image

    pil = [(to_pil_image(image), 3), (to_pil_image(image.flip(-1)), 4)]
    expected, batched = per_sample_and_batched(pil)
    assert torch.allclose(batched[0], expected[0], atol=1e-6) and batched[1].tolist() == [3, 4]
    masks = [(image, torch.arange(80).view(8, 10)), (image, torch.zeros(8, 10, dtype=torch.long))]
    expected, batched = per_sample_and_batched(masks)  # dense masks move with their images in the batch
    assert torch.equal(batched[1], expected[1]) and torch.allclose(batched[0], expected[0], atol=1e-6)


def test_the_dispatch_refuses_what_the_reference_refuses():
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        fused.cross_entropy(logits, torch.tensor([0, 1, 2, 1]), reduction="avg")
    with pytest.raises(RuntimeError):  # int32 class indices: F.cross_entropy's own error, fused or not
        fused.cross_entropy(logits, torch.tensor([0, 1, 2, 1], dtype=torch.int32))
    floats = [torch.rand(4, 4, 3) for _ in range(2)]  # float images in a list: the reference's arithmetic
    assert torch.allclose(fused.image_batch(floats, [0.5] * 3, [0.2] * 3),
                          fused.image_batch_reference(torch.stack(floats), [0.5] * 3, [0.2] * 3))


def test_embedding_bag_options_the_fused_path_lacks_take_pytorchs():
    torch.manual_seed(0)
    ids = torch.tensor([[1, 1, 1, 2]])
    for options in ({"scale_grad_by_freq": True}, {"sparse": True}, {"max_norm": 1.0}):
        ours = fused.EmbeddingBag(5, 4, mode="mean", padding_idx=0, **options)
        plain = torch.nn.EmbeddingBag(5, 4, mode="mean", padding_idx=0, **options)
        plain.load_state_dict(ours.state_dict())
        ours(ids).sum().backward()
        plain(ids).sum().backward()
        assert ours.weight.grad.is_sparse == plain.weight.grad.is_sparse
        assert torch.allclose(ours.weight.grad.to_dense(), plain.weight.grad.to_dense())


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
    # the fused class only where its kernel runs: otherwise torch's own, without fused's checks per batch
    assert isinstance(loss, fused.CrossEntropyLoss) == fused.has_kernel("cross_entropy", "cpu") == LOADED
    assert isinstance(loss, torch.nn.CrossEntropyLoss) and loss.label_smoothing == 0.1
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
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run = run_workflow(wf, quiet=True, artifacts=False)[0]
    ran = {e.key for e in prof.key_averages()}
    if LOADED:  # the training loader's batches too, not only validation's
        assert {"kernel_fused::image_batch", "kernel_fused::cross_entropy", "kernel_fused::cross_entropy_backward"} <= ran
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


def test_p_no_fused_ops_reaches_the_process_and_is_put_back(monkeypatch, capsys):
    from kernel.cli import main

    monkeypatch.delenv("KERNEL_DISABLE_PLUGINS", raising=False)
    seen = {}
    monkeypatch.setattr("kernel.commands.catalog.plugins_cmd",
                        lambda args: seen.setdefault("env", os.environ.get("KERNEL_DISABLE_PLUGINS")) and 0)
    main(["-p", "no:fused_ops", "plugins"])
    assert seen["env"] == "fused_ops" and "KERNEL_DISABLE_PLUGINS" not in os.environ


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
    off = subprocess.run([sys.executable, "-m", "kernel.cli", "-p", "no:fused_ops", "plugins", "--json"],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert json.loads(off)["fused_ops"].get("disabled", False) is LOADED  # -p no: turns it off as the env does
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

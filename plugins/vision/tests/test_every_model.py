"""Every classification model of torchvision builds on vision.digits and takes a batch, or says why not.

The Python equivalent of `kernel run --dry-run` on a workflow listing them all: the data is
prepared once (kernel.build.prepare), then each model is built with the data's facts and a batch
of two goes through it. A model may refuse the data with a KernelError (one clear line: these
32x32 digits are too small for a few of them); any other exception is a bug.
"""
from __future__ import annotations

import pytest
import torch

from vision_helpers import prepare
from kernel import KernelError, forward
from plugin_vision import names

CLASSIFICATION = [n for n, task in names.MODELS.items() if task == "classification"]
#: models whose smallest input is above 32x32 pixels: they must refuse the data and suggest a Resize
TOO_SMALL_AT_32 = {"alexnet": 63, "inception_v3": 75, "maxvit_t": 224, "vit_h_14": 42}
#: built and run once in the suite, by `kernel check-plugin vision` (test_conformance.py): its 637M
#: parameters take ~25 s to initialise on a 2-core CI machine, most of it the first touch of 2.5 GB
BUILT_BY_THE_CONFORMANCE_TEST = {"regnet_y_128gf"}
#: (index in the plan's models, name)
BUILT_HERE = [(i, n) for i, n in enumerate(CLASSIFICATION) if n not in BUILT_BY_THE_CONFORMANCE_TEST]


@pytest.fixture(scope="module")
def plan():
    # one thread: on a shared 2-core machine two spinning OpenMP threads make small forwards 10x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield prepare({"use": "vision.digits", "fraction": 0.05, "transforms": [{"use": "vision.Resize", "size": 32}]},
                  models=[{"use": f"vision.{n}"} for n in CLASSIFICATION], name="every-model")
    torch.set_num_threads(threads)


def test_torchvision_has_many_classification_models():
    assert len(CLASSIFICATION) > 70 and {"resnet18", "mobilenet_v2", "vit_b_16", "convnext_tiny"} <= set(CLASSIFICATION)


@pytest.mark.slow
@pytest.mark.parametrize("index,name", BUILT_HERE, ids=[name for _, name in BUILT_HERE])
def test_model_builds_and_takes_a_batch_or_says_why(plan, index, name):
    inputs, _ = plan.data.batch("train", 2)
    try:
        model, filled = plan.model(index)
    except KernelError as exc:
        text = str(exc)
        assert name in TOO_SMALL_AT_32, f"vision.{name} refused 32x32 digits: {text}"
        assert "\n" not in text and f"vision.{name}" in text
        assert f'{{ use = "vision.Resize", size = {TOO_SMALL_AT_32[name]} }}' in text
        return
    assert name not in TOO_SMALL_AT_32, f"vision.{name} was expected to refuse 32x32 inputs"
    assert filled["num_classes"] == 10 and filled["in_channels"] == 1
    model.eval()
    with torch.no_grad():
        out = forward(model, inputs)
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()

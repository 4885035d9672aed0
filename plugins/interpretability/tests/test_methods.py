"""The methods and the engine on small real models: shapes per kind of input, the layer each
method finds, the per-token embedding bag, the internal batch size, targets, the checks, and the
plugin's own conformance (``kernel check-plugin interpret``)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import kernel
from plugin_interpretability import checks
from plugin_interpretability.engine import attribute_batch, auto_batch
from plugin_interpretability.explain import build_method
from plugin_interpretability.layers import per_token
from plugin_interpretability.methods import feature_mask
from plugin_interpretability.model_inputs import Forward

IMAGE_METHODS = ["integrated_gradients", "saliency", "input_x_gradient", "deeplift", "gradient_shap", "occlusion",
                 "feature_ablation", "grad_cam"]


def method(name, **params):
    return build_method(kernel.get_catalog(), name, params)[1]


class ImageNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                                      nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 8 * 8, 5))

    def forward(self, x):
        return self.head(self.features(x))


class Bag(nn.Module):
    """The text plugin's shape of model: a dict batch, an embedding bag that skips padding."""

    def __init__(self, pad=0):
        super().__init__()
        self.embedding = nn.EmbeddingBag(30, 6, mode="mean", padding_idx=pad)
        self.fc = nn.Linear(6, 2)

    def forward(self, input_ids, padding_mask=None, lengths=None):
        return self.fc(self.embedding(input_ids))


@pytest.fixture(scope="module")
def image_model():
    torch.manual_seed(0)
    return ImageNet().eval()


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_every_image_method_gives_finite_attributions_in_the_inputs_terms(image_model, name):
    x = torch.randn(3, 3, 16, 16)
    result = attribute_batch(image_model, x, method(name), name=name)
    expected = (3, 1, 16, 16) if name == "grad_cam" else (3, 3, 16, 16)
    assert tuple(result.attributions.shape) == expected and torch.isfinite(result.attributions).all()
    assert result.attributions.abs().sum() > 0
    assert torch.equal(result.targets, image_model(x).argmax(1))
    assert result.layer == ("features.2" if name == "grad_cam" else None)


def test_integrated_gradients_is_complete_the_attributions_add_up_to_the_score_difference(image_model):
    x = torch.randn(2, 3, 16, 16)
    result = attribute_batch(image_model, x, method("integrated_gradients", n_steps=64), target=1)
    with torch.no_grad():
        gap = image_model(x)[:, 1] - image_model(torch.zeros_like(x))[:, 1]
    assert torch.allclose(result.attributions.sum((1, 2, 3)), gap, atol=2e-2 * float(gap.abs().max()) + 1e-4)


def test_the_internal_batch_size_shrinks_with_the_memory_budget_and_results_do_not_change(image_model):
    x = torch.randn(4, 3, 16, 16)
    forward = Forward(image_model, x)
    roomy = auto_batch(forward, x, ())
    tight = auto_batch(forward, x, (), budget=64 * 1024)
    assert roomy > 200 and 1 <= tight < 10
    ig = method("integrated_gradients", n_steps=20)
    whole = attribute_batch(image_model, x, ig, internal_batch_size=roomy).attributions
    chunked = attribute_batch(image_model, x, ig, internal_batch_size=tight).attributions
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_an_embedding_bag_is_attributed_per_token_with_the_same_outputs():
    torch.manual_seed(0)
    model = Bag().eval()
    ids = torch.tensor([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11]])
    batch = {"input_ids": ids, "padding_mask": ids == 0, "lengths": torch.tensor([3, 5])}
    before = model(**batch)
    with per_token(model.embedding) as tokens:
        assert isinstance(tokens, nn.Module) and tokens is not model.embedding
        assert torch.allclose(model(**batch), before, atol=1e-6)
    assert "forward" not in vars(model.embedding)  # the bag is itself again
    result = attribute_batch(model, batch, method("layer_integrated_gradients"), facts={"padding_idx": 0})
    assert result.attributions.shape == (2, 5) and result.layer == "embedding" and result.lengths == [3, 5]
    assert torch.all(result.attributions[0, 3:] == 0)  # padding adds nothing


@pytest.mark.parametrize("name", ["occlusion", "feature_ablation"])
def test_perturbation_methods_replace_tokens_by_padding(name):
    torch.manual_seed(0)
    model = Bag().eval()
    ids = torch.tensor([[3, 4, 5, 6]])
    batch = {"input_ids": ids, "padding_mask": ids == 0, "lengths": torch.tensor([4])}
    result = attribute_batch(model, batch, method(name), target=0, facts={"padding_idx": 0})
    assert result.attributions.shape == (1, 4)
    with torch.no_grad():
        full = model(ids)[0, 0]
        without_first = model(torch.tensor([[0, 4, 5, 6]]))[0, 0]
    assert float(result.attributions[0, 0]) == pytest.approx(float(full - without_first), abs=1e-5)


def test_gradient_methods_refuse_token_ids_and_name_the_ones_that_work():
    model = Bag().eval()
    with pytest.raises(kernel.KernelError, match="integer .* which has no gradient.*layer_integrated_gradients"):
        attribute_batch(model, {"input_ids": torch.tensor([[1, 2]])}, method("saliency"), name="interpret.saliency")


def test_targets_true_a_class_name_and_out_of_range(image_model):
    x = torch.randn(2, 3, 16, 16)
    classes = ["a", "b", "c", "d", "e"]
    assert attribute_batch(image_model, x, method("saliency"), "true", torch.tensor([4, 1])).targets.tolist() == [4, 1]
    assert attribute_batch(image_model, x, method("saliency"), "c", classes=classes).targets.tolist() == [2, 2]
    with pytest.raises(kernel.KernelError, match=r"target class 5 is out of range: the model has 5 classes \(0-4\)"):
        attribute_batch(image_model, x, method("saliency"), 5)
    with pytest.raises(kernel.KernelError, match="did you mean 'c'"):
        attribute_batch(image_model, x, method("saliency"), "cc", classes=classes)
    with pytest.raises(kernel.KernelError, match="needs the samples' labels"):
        attribute_batch(image_model, x, method("saliency"), "true")


def test_a_layer_the_model_lacks_is_named_with_the_layers_it_has():
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    with pytest.raises(kernel.KernelError, match="needs a convolution layer .* has none; name one with --layer"):
        attribute_batch(model, torch.randn(2, 4), method("grad_cam"), name="interpret.grad_cam")
    with pytest.raises(kernel.KernelError, match=r"--layer '1': the model has no such layer; its layers: 0"):
        attribute_batch(model, torch.randn(2, 4), method("grad_cam"), layer="1")


def test_default_windows_and_groups_fit_the_input():
    assert feature_mask((3, 16, 16), True).unique().numel() == 64  # an 8x8 grid, channels together
    assert feature_mask((1, 8000), True).unique().numel() == 50
    assert feature_mask((12,), False).tolist() == list(range(12))
    occlusion = method("occlusion")
    x = torch.randn(1, 1, 400)
    result = attribute_batch(nn.Sequential(nn.Flatten(), nn.Linear(400, 2)).eval(), x, occlusion)
    assert result.attributions.shape == (1, 1, 400)


def test_the_randomisation_check_tells_a_model_dependent_method_from_one_that_is_not(image_model):
    x = torch.randn(4, 3, 16, 16)
    lengths = [1] * 4
    trained = attribute_batch(image_model, x, method("grad_cam"))
    random = attribute_batch(checks.randomized(image_model), x, method("grad_cam"), trained.targets)
    first = next(checks.randomized(image_model).parameters())
    assert not torch.equal(first, next(image_model.parameters()))
    # the same attributions twice (a method blind to the weights) correlate perfectly: it fails
    assert checks.sanity(trained.attributions, trained.attributions, lengths)["passed"] is False
    assert checks.sanity(trained.attributions, random.attributions, lengths)["rank_correlation"] < 0.99


def test_the_summary_names_regions_tokens_and_features():
    a = torch.zeros(1, 1, 8, 8)
    a[0, 0, :2, 6:] = 1.0  # top right
    top = checks.summary(a, torch.zeros(1, 1, 8, 8), torch.tensor([1]), [8], ["no", "yes"], {})
    assert top["yes"]["top"][0]["feature"] == "region row 1, column 4 of 4x4"
    tokens = checks.summary(torch.tensor([[0.1, 0.9]]), torch.tensor([[2, 3]]), torch.tensor([0]), [2], ["neg"],
                            {"vocabulary": ["<pad>", "<unk>", "dull", "great"]})
    assert tokens["neg"]["top"][0]["feature"] == "great"


def test_unknown_method_parameters_are_named_with_a_suggestion():
    with pytest.raises(kernel.KernelError, match=r"has no parameter 'n_stepz' \(did you mean 'n_steps'\?\)"):
        build_method(kernel.get_catalog(), "integrated_gradients", {"n_stepz": 3})
    name, _, params = build_method(kernel.get_catalog(), "occlusion", {})
    assert name == "interpret.occlusion" and params == {"window": None, "stride": None, "baseline": "zero"}
    with pytest.raises(kernel.KernelError, match=r"takes one of zero, blur, uniform \(did you mean 'blur'\?\)"):
        build_method(kernel.get_catalog(), "occlusion", {"baseline": "blurr"})


def test_baselines_zero_blur_and_uniform(image_model):
    from plugin_interpretability.engine import baseline_for

    x = torch.randn(2, 3, 16, 16)
    blur = baseline_for(x, {}, "blur")
    assert blur.shape == x.shape and blur.std() < x.std()  # the shapes without their detail
    assert torch.allclose(blur.mean((2, 3)), x.mean((2, 3)), atol=1e-5)
    uniform = baseline_for(x, {}, "uniform")
    assert torch.equal(uniform, baseline_for(x, {}, "uniform")) and uniform.min() >= x.min()
    ids = torch.tensor([[5, 6, 0]])
    assert baseline_for(ids, {"padding_idx": 0}).tolist() == [[0, 0, 0]]
    with pytest.raises(kernel.KernelError, match="token ids take the padding token"):
        baseline_for(ids, {"padding_idx": 0}, "blur")
    # integrated gradients stays complete against any baseline: the sum is the score's difference from it
    result = attribute_batch(image_model, x, method("integrated_gradients", n_steps=64, baseline="blur"), target=2)
    with torch.no_grad():
        gap = image_model(x)[:, 2] - image_model(blur)[:, 2]
    assert torch.allclose(result.attributions.sum((1, 2, 3)), gap, atol=2e-2 * float(gap.abs().max()) + 1e-4)


def test_the_plugin_conforms():
    from kernel.testing import assert_plugin_conforms

    assert_plugin_conforms("interpret")


def test_the_fallback_renderer_draws_bars_and_maps():
    renderer = kernel.create("interpret.heatmap")
    assert renderer.score({"role": "attribution", "shape": (4,)}) == 0.5
    assert renderer.score({"role": "input", "shape": (4,)}) == 0
    bars = renderer.render(torch.tensor([0.5, -0.2, 0.1]), {"method": "interpret.saliency", "explained": 0,
                                                            "classes": ["x"]})
    assert bars.size[0] > 100 and bars.size[1] > 100
    assert renderer.render(torch.randn(2, 5, 7), {}).size[0] > 100


def test_grad_cam_skips_a_last_convolution_whose_map_is_a_single_value():
    # on a small input a deep network's last convolution sees 1x1: its Grad-CAM would be one colour
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=9), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.randn(2, 1, 11, 11)
    result = attribute_batch(model, x, method("grad_cam"))
    assert result.layer == "0" and result.attributions.shape == (2, 1, 11, 11)
    assert result.attributions[0].std() > 0  # a map, not one value
    assert attribute_batch(model, x, method("grad_cam"), layer="2").layer == "2"  # named: as asked


def test_the_methods_table_in_the_docs_names_every_method_and_parameter_with_its_default():
    import inspect
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "interpretability.md").read_text()
    rows = dict(re.findall(r"^\| `(interpret\.\w+)` \| [^|]+ \| (.+) \|$", doc, re.M))
    catalog = kernel.get_catalog()
    shipped = [n for n in catalog.names("attribution") if catalog.get(n).plugin == "interpret"]
    assert sorted(rows) == shipped
    for name in shipped:
        for p in inspect.signature(catalog.target(catalog.get(name))).parameters.values():
            assert f"`{p.name}`" in rows[name], (name, p.name)
            if p.default is None or p.default is inspect.Parameter.empty:
                continue
            if isinstance(p.default, bool):
                shown = str(p.default).lower()
            elif isinstance(p.default, str):
                shown = f'"{p.default}"'
            else:
                shown = str(p.default)
            assert f"`{p.name}` ({shown}" in rows[name], (name, p.name, shown)


def test_a_method_captum_refuses_for_a_model_is_a_clear_message():
    relu = nn.ReLU()  # used twice: DeepLift cannot tell its two uses apart
    model = nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu, nn.Linear(4, 2)).eval()
    with pytest.raises(kernel.KernelError, match=r"interpret.deeplift cannot explain Sequential: .*try another method"):
        attribute_batch(model, torch.randn(2, 4), method("deeplift"), name="interpret.deeplift")

"""The attribution methods the plugin ships: Captum's, each with defaults that fit the input.

A method (a component of the kind ``attribution``, see docs/interpretability.md) is an object with:

- ``layer``: ``None`` for a method on the input, or the kind of layer it attributes at when the
  user names none (``"convolution"``: the last one; ``"embedding"``: the first one);
- ``gradient``: whether it differentiates the model with respect to the input (then the input
  must be floating point: token ids go through a layer method or a perturbation method);
- ``attribute(forward, x, target, context) -> Tensor``: attributions for the batch ``x``
  (``forward(x, *context.extra)`` gives class scores), shaped like ``x`` for an input method,
  like the layer's output for a layer method (the engine maps it back to the input's terms).

``context`` (:class:`Context`) carries the baseline (the "absent" input: zeros, or the padding id
for tokens), the other model arguments, the layer module and the internal batch size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Context:
    baseline: object  # a tensor shaped like x
    extra: tuple = ()  # the model's other arguments (Captum's additional_forward_args)
    layer: object = None  # the nn.Module a layer method attributes at
    internal_batch_size: int = 64  # evaluations per forward pass, chosen for the memory (engine.auto_batch)
    facts: dict = field(default_factory=dict)


def _extra(context):
    return context.extra or None


class IntegratedGradients:
    """Integrated gradients (Sundararajan et al., 2017): gradients averaged along the straight path
    from the baseline to the input, times the difference.

    Args:
        n_steps: points on the path (more: a closer integral, slower).
        method: Captum's rule for the integral: gausslegendre, riemann_trapezoid, riemann_middle, ...
        internal_batch_size: evaluations per forward pass; 0 chooses it from the model's memory use.
        baseline: the absent input compared with: zero (zeros, the mean input after a normalisation;
            the padding token for text), blur (the input at an eighth of its resolution) or uniform
            (seeded noise over the input's range).
    """

    layer = None
    gradient = True

    def __init__(self, n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int = 0,
                 baseline: str = "zero"):
        self.n_steps, self.method, self.internal_batch_size = n_steps, method, internal_batch_size
        self.baseline = baseline

    def attribute(self, forward, x, target, context):
        from captum.attr import IntegratedGradients as IG

        return IG(forward).attribute(x, baselines=context.baseline, target=target, additional_forward_args=_extra(context),
                                     n_steps=self.n_steps, method=self.method,
                                     internal_batch_size=self.internal_batch_size or context.internal_batch_size)


class Saliency:
    """Saliency (Simonyan et al., 2013): the gradient of the class score with respect to the input.

    Args:
        abs: take the gradient's absolute value (the classic saliency map); false keeps its sign.
    """

    layer = None
    gradient = True

    def __init__(self, abs: bool = True):
        self.abs = abs

    def attribute(self, forward, x, target, context):
        from captum.attr import Saliency as S

        return S(forward).attribute(x, target=target, abs=self.abs, additional_forward_args=_extra(context))


class InputXGradient:
    """Input times gradient: the first-order contribution of each input value to the class score."""

    layer = None
    gradient = True

    def attribute(self, forward, x, target, context):
        from captum.attr import InputXGradient as IXG

        return IXG(forward).attribute(x, target=target, additional_forward_args=_extra(context))


class DeepLift:
    """DeepLIFT (Shrikumar et al., 2017): contributions relative to the baseline through modified
    gradients of the non-linearities (the Rescale rule).

    Args:
        multiply_by_inputs: multiply by (input - baseline), a global attribution; false gives the local multipliers.
        baseline: the absent input compared with: zero (zeros, the mean input after a normalisation;
            the padding token for text), blur (the input at an eighth of its resolution) or uniform
            (seeded noise over the input's range).
    """

    layer = None
    gradient = True

    def __init__(self, multiply_by_inputs: bool = True, baseline: str = "zero"):
        self.multiply_by_inputs, self.baseline = multiply_by_inputs, baseline

    def attribute(self, forward, x, target, context):
        from captum.attr import DeepLift as DL

        return DL(forward, multiply_by_inputs=self.multiply_by_inputs).attribute(
            x, baselines=context.baseline, target=target, additional_forward_args=_extra(context))


class GradientShap:
    """GradientSHAP (Lundberg and Lee, 2017): expected gradients over random points between the input
    and baselines drawn from a reference set (the zero input and the batch's mean input).

    Args:
        n_samples: random points per input.
        stdevs: standard deviation of the noise added to each point.
        seed: the random points' seed, so that an explanation can be made again.
    """

    layer = None
    gradient = True

    def __init__(self, n_samples: int = 20, stdevs: float = 0.0, seed: int = 0):
        self.n_samples, self.stdevs, self.seed = n_samples, stdevs, seed

    def attribute(self, forward, x, target, context):
        import torch
        from captum.attr import GradientShap as GS

        references = torch.cat([context.baseline[:1], x.detach().mean(0, keepdim=True)])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return GS(forward).attribute(x, baselines=references, target=target, n_samples=self.n_samples,
                                         stdevs=self.stdevs, additional_forward_args=_extra(context))


class Occlusion:
    """Occlusion (Zeiler and Fergus, 2014): how the class score drops when a window of the input is
    replaced by the baseline, slid over the input.

    Args:
        window: the window's size per input axis (a list); by default about an eighth of each
            spatial axis for images and spectrograms, 1/40 of a signal's length, one token of a text.
        stride: the window's step per axis (a list); by default half the window.
        baseline: the absent input compared with: zero (zeros, the mean input after a normalisation;
            the padding token for text), blur (the input at an eighth of its resolution) or uniform
            (seeded noise over the input's range).
    """

    layer = None
    gradient = False

    def __init__(self, window: list | None = None, stride: list | None = None, baseline: str = "zero"):
        self.window, self.stride, self.baseline = window, stride, baseline

    def attribute(self, forward, x, target, context):
        from captum.attr import Occlusion as O

        window = tuple(self.window) if self.window else default_window(tuple(x.shape[1:]), x.dtype.is_floating_point)
        stride = tuple(self.stride) if self.stride else tuple(max(1, w // 2) for w in window)
        if len(window) != x.ndim - 1 or len(stride) != x.ndim - 1:
            from kernel import KernelError

            raise KernelError(f"interpret.occlusion: window {list(window)} and stride {list(stride)} need one size "
                              f"per input axis; a sample has shape {list(x.shape[1:])}")
        per_eval = max(1, context.internal_batch_size // max(1, x.shape[0]))
        return O(forward).attribute(x, sliding_window_shapes=window, strides=stride, baselines=context.baseline,
                                    target=target, additional_forward_args=_extra(context),
                                    perturbations_per_eval=per_eval)


class FeatureAblation:
    """Feature ablation: the class score's drop when a group of input values is replaced by the
    baseline, one group at a time.

    Args:
        region: the group's size per spatial axis (a list); by default the input is cut into an 8x8
            grid for images and spectrograms (all channels together), 50 segments for a signal,
            one group per token of a text or per value of a feature vector.
        baseline: the absent input compared with: zero (zeros, the mean input after a normalisation;
            the padding token for text), blur (the input at an eighth of its resolution) or uniform
            (seeded noise over the input's range).
    """

    layer = None
    gradient = False

    def __init__(self, region: list | None = None, baseline: str = "zero"):
        self.region, self.baseline = region, baseline

    def attribute(self, forward, x, target, context):
        from captum.attr import FeatureAblation as FA

        mask = feature_mask(tuple(x.shape[1:]), x.dtype.is_floating_point, self.region).to(x.device)
        per_eval = max(1, context.internal_batch_size // max(1, x.shape[0]))
        return FA(forward).attribute(x, baselines=context.baseline, target=target, feature_mask=mask.unsqueeze(0),
                                     additional_forward_args=_extra(context), perturbations_per_eval=per_eval)


class GradCam:
    """Grad-CAM (Selvaraju et al., 2017): a layer's activations weighted by the mean gradient of the
    class score per channel, stretched to the input; by default at the model's last convolution
    whose map is at least 4x4 (a deeper one on a small input sees 1x1: one value everywhere).

    Args:
        relu: keep only positive evidence (the paper's map); false keeps negative values too.
    """

    layer = "convolution"
    gradient = True

    def __init__(self, relu: bool = True):
        self.relu = relu

    def attribute(self, forward, x, target, context):
        from captum.attr import LayerGradCam

        return LayerGradCam(forward, context.layer).attribute(
            x, target=target, additional_forward_args=_extra(context), relu_attributions=self.relu)


class LayerIntegratedGradients:
    """Integrated gradients at a layer: by default the embedding, so that token ids (which cannot be
    differentiated) get one attribution per token (summed over the embedding's dimensions).

    Args:
        n_steps: points on the path from the baseline (the padding token) to the input.
        internal_batch_size: evaluations per forward pass; 0 chooses it from the model's memory use.
    """

    layer = "embedding"
    gradient = False  # the gradient is taken at the layer, so integer inputs are fine

    def __init__(self, n_steps: int = 50, internal_batch_size: int = 0):
        self.n_steps, self.internal_batch_size = n_steps, internal_batch_size

    def attribute(self, forward, x, target, context):
        from captum.attr import LayerIntegratedGradients as LIG

        return LIG(forward, context.layer).attribute(
            x, baselines=context.baseline, target=target, additional_forward_args=_extra(context),
            n_steps=self.n_steps, internal_batch_size=self.internal_batch_size or context.internal_batch_size)


# -- defaults that fit the input ------------------------------------------------------------------

def default_window(shape: tuple, floating: bool) -> tuple:
    """Occlusion's window for a sample of ``shape`` (no batch)."""
    if not floating or len(shape) == 1:  # tokens, or a feature vector: one at a time
        return (1,) * len(shape)
    if len(shape) == 2:  # (channels, time): a 40th of the signal
        return (shape[0], max(1, shape[1] // 40))
    return (shape[0], *(max(1, s // 8) for s in shape[1:]))  # (channels, *spatial): an eighth per axis


def feature_mask(shape: tuple, floating: bool, region=None):
    """Feature ablation's groups for a sample of ``shape``: an integer tensor of that shape."""
    import torch

    if not floating or len(shape) == 1:
        return torch.arange(math.prod(shape)).reshape(shape)
    spatial = shape[1:]
    if region:
        sizes = tuple(int(r) for r in region)
    elif len(spatial) == 1:
        sizes = (max(1, spatial[0] // 50),)
    else:
        sizes = tuple(max(1, s // 8) for s in spatial)
    if len(sizes) != len(spatial):
        from kernel import KernelError

        raise KernelError(f"interpret.feature_ablation: region {list(sizes)} needs one size per spatial axis "
                          f"of a sample of shape {list(shape)}")
    cells = [torch.arange(s) // r for s, r in zip(spatial, sizes)]
    counts = [int(c.max()) + 1 for c in cells]
    grid = torch.zeros(spatial, dtype=torch.long)
    for axis, c in enumerate(cells):
        view = [1] * len(spatial)
        view[axis] = -1
        grid = grid * counts[axis] + c.view(view)
    return grid.unsqueeze(0).expand(shape).contiguous()


def check_method(method) -> list[str]:
    """The conformance check of the kind ``attribution`` (``kernel check-plugin``): what a method
    object must have, and one real attribution of a small model's batch, shaped as promised."""
    import torch

    problems = []
    if not callable(getattr(method, "attribute", None)):
        return ["it has no attribute(forward, x, target, context) method"]
    layer = getattr(method, "layer", None)
    if layer not in (None, "convolution", "embedding"):
        problems.append(f"layer is {layer!r}; use None, 'convolution' or 'embedding'")
        return problems
    from .engine import attribute_batch

    torch.manual_seed(0)
    if layer == "embedding":
        model = torch.nn.Sequential(torch.nn.Embedding(20, 4), torch.nn.Flatten(), torch.nn.Linear(24, 3))
        x = torch.randint(1, 20, (2, 6))
    else:
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                    torch.nn.Linear(2 * 8 * 8, 3))
        x = torch.randn(2, 1, 8, 8)
    model.eval()
    try:
        result = attribute_batch(model, x, method, target=torch.tensor([0, 2]), facts={"padding_idx": 0})
    except Exception as exc:
        return [f"attributing a small model's batch raised {type(exc).__name__}: {exc}"]
    a = result.attributions
    if not isinstance(a, torch.Tensor) or a.shape[0] != x.shape[0]:
        problems.append(f"attribute returned {type(a).__name__} {tuple(getattr(a, 'shape', ()))}; "
                        f"a tensor with the batch first ({x.shape[0]}) is needed")
    elif not torch.isfinite(a).all():
        problems.append("attribute returned values that are not finite")
    return problems

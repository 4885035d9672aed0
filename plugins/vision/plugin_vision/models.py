"""Image models: every ``torchvision.models`` builder by name, fitted to the data, and a small CNN.

``vision.resnet18`` is ``plugin_vision.models:resnet18``, a builder that takes torchvision's own
options (``dropout``, ``width_mult``, ...) plus what the kernel fills from the data:

- ``num_classes``: the classifier head is sized to the dataset's classes, also after loading
  pretrained weights (the final layer is replaced by a new one);
- ``in_channels``: 1-channel data feeds 3-channel models (the first convolution is adapted;
  pretrained filters are summed over the colour channels);
- ``input_shape``: models whose size is fixed by a parameter (ViT's ``image_size``) are built for
  it, and a shape a model cannot take is a clear error that suggests a ``vision.Resize``.

Weights never download: ``weights = "DEFAULT"`` (or a named weight) loads the file from the
torch hub cache when it is there, else the error names the file and the folder to put it in;
``weights_path`` loads any local file.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import nn

from kernel import KernelError, did_you_mean

from . import names
from .fitting import adapt_first_conv, check_input, replace_class_convs, replace_head
from .offline import hub_file

#: builder parameters the plugin handles itself (weights are resolved offline; no progress bars)
OWN = ("weights", "progress", "weights_backbone", "num_classes")


# -- the plugin's own small model ---------------------------------------------------------------------------
class SimpleCNN(nn.Module):
    """Three convolution blocks and a linear classifier: trains in seconds on small images on a CPU."""

    def __init__(self, in_channels: int, num_classes: int, width: int, dropout: float):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True))

        self.features = nn.Sequential(block(in_channels, width), nn.MaxPool2d(2), block(width, 2 * width),
                                      nn.MaxPool2d(2), block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def simple_cnn(num_classes: int = 10, in_channels: int = 3, input_shape: tuple | None = None, width: int = 32,
               dropout: float = 0.1):
    """A small, fast CNN of the plugin's own for quick runs (three conv blocks, global pooling).

    Args:
        num_classes: number of classes (filled from the data).
        in_channels: image channels (filled from the data).
        input_shape: (C, H, W) of one image (filled from the data); at least 4x4 pixels.
        width: channels of the first block (the next blocks have 2x and 4x as many).
        dropout: dropout before the classifier.
    """
    if width < 1:
        raise KernelError(f"vision.simple_cnn: width must be at least 1, not {width}")
    if input_shape and len(input_shape) >= 2 and min(input_shape[-2:]) < 4:
        raise KernelError(f"vision.simple_cnn takes images of at least 4x4 pixels, but the data gives "
                          f"{tuple(input_shape)}; add {{ use = \"vision.Resize\", size = 8 }} to dataset.transforms")
    return SimpleCNN(int(in_channels), int(num_classes), int(width), float(dropout))


# -- torchvision builders -----------------------------------------------------------------------------------
class SegmentationLogits(nn.Module):
    """A torchvision segmentation model whose output is the per-pixel class scores (its ``out``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


class FlowPair(nn.Module):
    """RAFT on the kernel's batches: a pair of images stacked as (B, 2, C, H, W) in, the final flow out.

    (Two tensors as two arguments work too, as torchvision's RAFT takes them.)
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image1, image2=None):
        if image2 is None:
            image1, image2 = image1[:, 0], image1[:, 1]
        return self.model(image1, image2)[-1]


def _shape_problem(name: str, task: str, input_shape) -> str | None:
    """What is wrong with the data's shape for a whole family of models, said before building one."""
    if not input_shape:
        return None
    shape = tuple(int(s) for s in input_shape)
    if task == "video" and len(shape) != 4:
        return (f"vision.{name} takes video clips shaped (C, T, H, W), but the data gives {shape}; use a video "
                f"dataset (vision.UCF101, vision.Kinetics, vision.HMDB51) or an image model")
    if task == "optical_flow" and not (len(shape) == 4 and shape[0] == 2):
        return (f"vision.{name} takes pairs of images shaped (2, 3, H, W), but the data gives {shape}; use an "
                f"optical-flow dataset (vision.FlyingChairs, vision.Sintel, vision.KittiFlow)")
    return None


def _resize_hint(name: str, input_shape) -> int:
    """The side to suggest in a Resize for a model that cannot take the data's size."""
    import math
    import re

    patch = re.fullmatch(r"vit_[a-z]_(\d+)", name)
    if patch and input_shape:  # ViT: a multiple of the patch size is enough
        size = int(patch.group(1))
        return max(size, math.ceil(max(int(s) for s in input_shape[-2:]) / size) * size)
    return max(_min_size(name) or (224,))


def _resize_to(task: str, min_size):
    """The Resize size to suggest: the smallest side; both sides for RAFT (a shorter-side resize of a
    non-square pair would leave a side that is not a multiple of 8)."""
    if not min_size or max(min_size) <= 1:
        return 32
    return [int(min_size[0]), int(min_size[1])] if task == "optical_flow" else max(min_size)


def resolve_weights(name: str, value, what: str = "weights"):
    """The weights enum member for ``"DEFAULT"`` / ``"IMAGENET1K_V1"``, checked to be in the hub cache."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(name)
    return _cached(enum, value, f"vision.{name}: {what}")


def _cached(enum, value, where: str):
    if value is None:
        return None
    try:
        member = enum.verify(value)
    except (KeyError, ValueError, TypeError):
        choices = ", ".join(["DEFAULT", *enum.__members__])
        raise KernelError(f"{where} = {value!r} is not one of: {choices}") from None
    file = hub_file(member.url)
    if not file.is_file():
        raise KernelError(f"{where} = {value!r}: the weights file {file.name} is not in the torch hub cache; "
                          f"put it at {file} (it comes from {member.url}; fetch it on a machine with network), "
                          f"or give weights_path = \"...\" for a local file")
    return member


def _backbone_enum(builder):
    """The weights enum of a builder's ``weights_backbone`` parameter, from its annotation."""
    import typing

    p = inspect.signature(builder).parameters.get("weights_backbone")
    if p is None:
        return None
    for arg in typing.get_args(p.annotation) or (p.annotation,):
        if inspect.isclass(arg) and hasattr(arg, "verify"):
            return arg
    return None


def load_weights_file(model: nn.Module, path: str, where: str):
    """Load a local state dict (or a checkpoint holding one) into the model; a differing head is resized first."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise KernelError(f"{where}: weights_path {file.resolve()} not found")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise KernelError(f"{where}: cannot read weights_path {file}: {exc}") from None
    for key in ("model", "state_dict", "model_state_dict", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise KernelError(f"{where}: {file} holds a {type(state).__name__}, not a state dict")
    own = model.state_dict()
    if state and all(k.startswith("model.") for k in state) and not any(k.startswith("model.") for k in own):
        state = {k[len("model."):]: v for k, v in state.items()}  # saved from a wrapper
    from .fitting import final_layer

    found = final_layer(model)
    if found is not None:
        key = found[0] + ".weight"
        if key in state and key in own and state[key].shape[0] != own[key].shape[0]:
            replace_head(model, int(state[key].shape[0]))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        raise KernelError(f"{where}: {file} does not fit this model: {' '.join(l.strip() for l in lines[:3])}"
                          ) from None


def _min_size(name: str):
    from torchvision.models import get_model_weights

    try:
        members = list(get_model_weights(name))
    except (ValueError, KeyError):
        return None
    return members[0].meta.get("min_size") if members else None


def build_torchvision(name: str, params: dict):
    from torchvision import models as tvm

    builder = tvm.get_model_builder(name)
    task = names.MODELS.get(name, "classification")
    where = f"vision.{name}"
    params = dict(params)
    num_classes = params.pop("num_classes", None)
    in_channels = params.pop("in_channels", None)
    input_shape = params.pop("input_shape", None)
    weights_path = params.pop("weights_path", None)
    weights = resolve_weights(name, params.pop("weights", None))
    if weights is not None and weights_path:
        raise KernelError(f"{where}: give weights or weights_path, not both")
    pretrained = weights is not None or bool(weights_path)
    sig = inspect.signature(builder)
    if "weights_backbone" in sig.parameters:
        enum = _backbone_enum(builder)
        wanted = params.pop("weights_backbone", None)
        params["weights_backbone"] = _cached(enum, wanted, f"{where}: weights_backbone") if enum else None
    cls = sig.return_annotation
    init = inspect.signature(cls.__init__).parameters if inspect.isclass(cls) else {}
    if not pretrained and input_shape and len(input_shape) >= 3:
        side = int(input_shape[-1])
        if "image_size" in init and "image_size" not in params and input_shape[-2] == input_shape[-1]:
            params["image_size"] = side  # ViT: the patch grid follows the data
        if "input_size" in init and "input_size" not in params:
            params["input_size"] = (int(input_shape[-2]), int(input_shape[-1]))  # MaxViT
    if "aux_logits" in init and "aux_logits" not in params and weights is None:
        params["aux_logits"] = False  # GoogLeNet/Inception: one output, as trainers expect
    if "init_weights" in init and "init_weights" not in params:
        params["init_weights"] = True
    if num_classes is not None and weights is None and task != "optical_flow":
        params["num_classes"] = int(num_classes)
    problem = _shape_problem(name, task, input_shape)
    if problem:
        raise KernelError(problem)
    if task == "detection" and in_channels not in (None, 3):
        raise KernelError(f"{where} takes 3-channel images (its input normalisation is for RGB), the data has "
                          f"{in_channels}; add {{ use = \"vision.RGB\" }} to dataset.transforms")
    try:
        model = builder(weights=weights, progress=False, **params)
    except KernelError:
        raise
    except TypeError as exc:
        raise KernelError(f"{where}: {exc}") from None
    except (ValueError, AssertionError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if input_shape:
            side = _resize_hint(name, input_shape)
            hint = (f" (the data gives inputs of shape {tuple(input_shape)}; add {{ use = \"vision.Resize\", "
                    f"size = {side} }} to dataset.transforms)")
        raise KernelError(f"{where}: {first}{hint}") from None
    if weights_path:
        load_weights_file(model, weights_path, where)
    if num_classes is not None and pretrained:
        if task == "classification" or task == "video":
            replace_head(model, int(num_classes))
        elif task == "segmentation":
            replace_class_convs(model, len(weights.meta["categories"]) if weights else 21, int(num_classes))
        elif task == "detection":
            raise KernelError(f"{where}: pretrained detection heads are not resized here; leave num_classes unset "
                              f"to keep the weights' {len(weights.meta['categories']) if weights else 91} classes")
    if in_channels is not None and task in ("classification", "segmentation", "video"):
        adapt_first_conv(model, int(in_channels), pretrained)
    if task == "segmentation":
        model = SegmentationLogits(model)
    if task == "optical_flow":
        model = FlowPair(model)
    if task in ("classification", "segmentation", "video", "optical_flow"):
        min_size = _min_size(name) if (pretrained or task == "video") else None
        resize = _min_size(name)
        check_input(model, input_shape, where, min_size=min_size,
                    resize_to=_resize_to(task, resize))
    return model


def model_signature(name: str) -> inspect.Signature:
    """Facts the kernel fills, the offline weights options, then the builder's and model class's own options."""
    from torchvision import models as tvm

    builder = tvm.get_model_builder(name)
    P = inspect.Parameter
    params = [
        P("num_classes", P.KEYWORD_ONLY, default=None, annotation=int | None),
        P("in_channels", P.KEYWORD_ONLY, default=None, annotation=int | None),
        P("input_shape", P.KEYWORD_ONLY, default=None, annotation=tuple | None),
        P("weights", P.KEYWORD_ONLY, default=None, annotation=str | None),
        P("weights_path", P.KEYWORD_ONLY, default=None, annotation=str | None),
    ]
    seen = {p.name for p in params}
    bsig = inspect.signature(builder)
    if "weights_backbone" in bsig.parameters:
        params.append(P("weights_backbone", P.KEYWORD_ONLY, default=None, annotation=str | None))
        seen.add("weights_backbone")
    extra = [p for p in bsig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    cls = bsig.return_annotation
    if inspect.isclass(cls):
        extra += [p for n, p in inspect.signature(cls.__init__).parameters.items()
                  if n != "self" and p.default is not p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    for p in extra:
        if p.name in seen or p.name in OWN:
            continue
        seen.add(p.name)
        annotation = p.annotation if not _is_object_annotation(p.annotation) else P.empty
        default = p.default if isinstance(p.default, (int, float, str, bool, tuple, list, type(None))) else None
        params.append(P(p.name, P.KEYWORD_ONLY, default=default, annotation=annotation))
    return inspect.Signature(params)


def _is_object_annotation(annotation) -> bool:
    text = str(annotation)
    return "Callable" in text or "nn." in text or "Module" in text or "torchvision." in text


def _factory(name: str):
    sig = model_signature(name)

    def build(**params):
        unknown = [k for k in params if k not in sig.parameters]
        if unknown:
            raise KernelError(f"vision.{name}: unknown parameter {unknown[0]!r}"
                              f"{did_you_mean(unknown[0], sig.parameters)}; it takes: {', '.join(sig.parameters)}")
        defaults = {k: p.default for k, p in sig.parameters.items()}
        # only what the user (or the kernel's facts) set goes to torchvision: its own defaults stay in charge
        given = {k: v for k, v in params.items() if k in OWN + ("in_channels", "input_shape", "weights_path")
                 or v != defaults.get(k)}
        return build_torchvision(name, given)

    build.__name__ = build.__qualname__ = name
    build.__signature__ = sig
    task = names.MODELS.get(name, "classification")
    build.__doc__ = (f"torchvision.models.{name} ({task}), fitted to the data; weights load offline.\n\n"
                     "Args:\n"
                     "    num_classes: classes to predict (filled from the data; the head is replaced when it differs).\n"
                     "    in_channels: image channels (filled from the data; the first convolution is adapted).\n"
                     "    input_shape: (C, H, W) of one input (filled from the data; checked against the model).\n"
                     "    weights: \"DEFAULT\" or a weight name, loaded from the torch hub cache (never downloaded).\n"
                     "    weights_path: a local state dict or checkpoint file to load.\n")
    return build


_BUILT: dict = {}


def __getattr__(name: str):
    # every torchvision.models builder is a target here: plugin_vision.models:resnet18
    if name in names.MODELS:
        if name not in _BUILT:
            _BUILT[name] = _factory(name)
        return _BUILT[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

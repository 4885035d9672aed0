"""Image transforms: every ``torchvision.transforms.v2`` class by name, with its own parameters.

``vision.Resize`` is ``plugin_vision.transforms:Resize``, a builder whose signature is the
torchvision class's, so the kernel's workflow validation catches a misspelt parameter before
anything runs. Values a TOML file cannot hold as Python objects are given as text:
``interpolation = "bicubic"``, ``dtype = "float32"``, ``policy = "cifar10"``, nested transforms as
``[{ use = "vision.RandomCrop", size = 28 }]`` and ``lambd = "package.module:function"``.

Each built transform is *joint*: with a segmentation mask or detection boxes as the target, the
geometric transforms move them with the image (torchvision's tv_tensors do the work); with a
class label the target passes through untouched.
"""
from __future__ import annotations

import inspect

import torch

from kernel import KernelError, did_you_mean, resolve_target

from . import names
from .images import as_float, is_pil, to_image, to_uint8

#: transforms that take uint8 pixels only: float images go in as bytes and come back as floats
UINT8_ONLY = ("JPEG", "RandomPosterize")
#: parameters given as text in a workflow and turned into torchvision objects here
#: transforms that only make sense on a collated batch (they mix samples and their labels)
BATCH_ONLY = ("CutMix", "MixUp")
CONVERTED = ("interpolation", "policy", "dtype", "transforms", "lambd", "transformation_matrix", "mean_vector")
_NOTHING = object()


class VisionTransform:
    """A torchvision v2 transform applied to the kernel's samples (image, and target when it has a shape)."""

    joint = True

    def __init__(self, name: str, transform, uint8_only: bool = False):
        self.name, self.transform, self.uint8_only = name, transform, uint8_only

    def __repr__(self):
        return f"vision.{self.name}({self.transform!r})"

    def __call__(self, x, y=_NOTHING):
        try:
            if y is _NOTHING:
                return self._image(x)
            if isinstance(y, dict) and "boxes" in y or (isinstance(y, torch.Tensor) and y.ndim >= 2):
                return self._joint(x, y)
            return self._image(x), y
        except KernelError:
            raise
        except Exception as exc:
            shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise KernelError(f"vision.{self.name} cannot transform an input of shape {shape}: {exc}") from None

    def _image(self, x):
        if not isinstance(x, torch.Tensor) and not is_pil(x):
            x = to_image(x)  # arrays and other array-likes
        if self.uint8_only and isinstance(x, torch.Tensor) and x.is_floating_point():
            return as_float(self.transform(to_uint8(x)))
        out = self.transform(x)
        if self.name != "ToPILImage" and is_pil(out):
            out = to_image(out)
        return out

    def _joint(self, x, y):
        from torchvision import tv_tensors

        image = tv_tensors.Image(x if isinstance(x, torch.Tensor) else to_image(x))
        if isinstance(y, dict):
            boxes = tv_tensors.BoundingBoxes(y["boxes"], format=y.get("format", "XYXY"),
                                             canvas_size=tuple(image.shape[-2:]))
            out_x, out_y = self.transform(image, {**y, "boxes": boxes})
            out_y = {k: v.as_subclass(torch.Tensor) if isinstance(v, torch.Tensor) else v for k, v in out_y.items()}
        else:
            out_x, out_y = self.transform(image, tv_tensors.Mask(y))
            out_y = out_y.as_subclass(torch.Tensor)
        return out_x.as_subclass(torch.Tensor), out_y

    def portable(self) -> dict | None:
        """This transform as data for a torch-free runtime (plugin-onnx's ``kernel predict``); None
        when it cannot be described exactly."""
        describe = PORTABLE.get(self.name)
        return describe(self.transform) if describe else None


def _resize(t) -> dict | None:
    mode = getattr(t.interpolation, "value", t.interpolation)
    if mode not in ("nearest", "nearest-exact", "bilinear", "bicubic"):
        return None  # box, hamming, lanczos: PIL images only
    size = t.size if t.size is None or len(t.size) != 1 else t.size[0]
    return {"step": "resize", "size": size, "interpolation": mode, "antialias": bool(t.antialias),
            "max_size": t.max_size}


def _pad(t) -> dict | None:
    p = [t.padding] if isinstance(t.padding, int) else list(t.padding)
    if len(p) == 1:
        p = p * 4
    elif len(p) == 2:  # [left/right, top/bottom]
        p = p * 2
    fill = 0 if t.fill is None else t.fill
    if len(p) != 4 or isinstance(fill, dict):
        return None
    return {"step": "pad", "padding": [int(v) for v in p], "mode": t.padding_mode,
            "fill": float(fill) if isinstance(fill, (int, float)) else [float(v) for v in fill]}


def _float_dtype(t) -> dict | None:
    # the runtime's images are float32 in [0, 1] already; between float types "scale" changes nothing
    dtypes = t.dtype.values() if isinstance(t.dtype, dict) else [t.dtype]
    return {"step": "identity"} if all(d is None or d.is_floating_point for d in dtypes) else None


def _augmentation(t) -> dict | None:
    """A random augmentation whose untouched image is one of its outcomes (or its mean): the run's
    model saw such images, and a prediction should not depend on a coin toss, so predicting skips it.
    (The kernel itself applies it at prediction too: it has one transform list for every split.)"""
    if getattr(t, "expand", False):
        return None  # RandomRotation(expand=True) changes the size
    if not _may_leave_untouched(t):
        return None  # it always alters the image (p=1, a range without the identity): not skippable
    return {"step": "identity", "augmentation": type(t).__name__}


def _contains(value, identity: float) -> bool:
    """A torchvision range (a number n meaning [-n, n] or [max(0, 1-n), 1+n], or a pair) holds the identity."""
    if value is None:
        return True
    if isinstance(value, (int, float)):
        return True  # symmetric around the identity by torchvision's definition
    values = [float(v) for v in value]
    return min(values) <= identity <= max(values)


def _may_leave_untouched(t) -> bool:
    """Whether the untouched image is one of the transform's outcomes: a chance p < 1 of applying it,
    or sampled ranges that contain the identity (no rotation, brightness 1, hue 0, ...)."""
    p = getattr(t, "p", None)
    if isinstance(p, (int, float)) and p < 1:
        return True
    if p is not None and p >= 1 and not hasattr(t, "degrees") and not hasattr(t, "brightness"):
        return False  # a flip, erasing, ... that always happens
    ranges = {"degrees": 0.0, "shear": 0.0, "brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0,
              "scale": 1.0}
    for name, identity in ranges.items():
        value = getattr(t, name, None)
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
            value = [v for pair in value for v in pair]  # shear as ((x0, x1), (y0, y1))
        if not _contains(value, identity):
            return False
    translate = getattr(t, "translate", None)
    return translate is None or all(float(v) >= 0 for v in translate)  # sampled in [-t, t]: contains 0


_IDENTITY = {"step": "identity"}
#: transform name -> its description from the torchvision object (absent: cannot be described)
PORTABLE = {
    "Resize": _resize,
    "CenterCrop": lambda t: {"step": "center_crop", "size": [int(v) for v in t.size]},
    "Pad": _pad,
    "Grayscale": lambda t: {"step": "grayscale", "channels": int(t.num_output_channels)},
    "RGB": lambda t: {"step": "rgb"},
    "ToDtype": _float_dtype,
    "ConvertImageDtype": _float_dtype,
    # no-ops on a float image tensor: conversions, and transforms of boxes and key points only
    **dict.fromkeys(("Identity", "ToImage", "ToPureTensor", "ClampBoundingBoxes", "ClampKeyPoints",
                     "ConvertBoundingBoxFormat", "SanitizeBoundingBoxes", "SanitizeKeyPoints",
                     "SetClampingMode"), lambda t: dict(_IDENTITY)),
    **dict.fromkeys(("RandomHorizontalFlip", "RandomVerticalFlip", "ColorJitter", "RandomGrayscale",
                     "RandomAutocontrast", "RandomEqualize", "RandomInvert", "RandomPosterize",
                     "RandomSolarize", "RandomAdjustSharpness", "RandomErasing", "RandomRotation",
                     "RandomAffine", "RandomPerspective", "ElasticTransform", "AutoAugment", "RandAugment",
                     "TrivialAugmentWide", "AugMix", "RandomPhotometricDistort", "RandomChannelPermutation",
                     "GaussianNoise", "RandomApply"), _augmentation),
}


def _convert(key: str, value):
    """A workflow value (text, lists) as the object torchvision expects."""
    from torchvision.transforms import v2

    if key == "interpolation" and isinstance(value, str):
        return _enum(v2.InterpolationMode, value, key)
    if key == "policy" and isinstance(value, str):
        return _enum(v2.AutoAugmentPolicy, value, key)
    if key == "dtype" and isinstance(value, str):
        dtype = getattr(torch, value.replace("torch.", ""), None)
        if not isinstance(dtype, torch.dtype):
            raise KernelError(f"dtype: {value!r} is not a torch dtype (e.g. \"float32\", \"uint8\")")
        return dtype
    if key == "transforms" and isinstance(value, (list, tuple)):
        return [_nested(v, i) for i, v in enumerate(value)]
    if key == "lambd" and isinstance(value, str):
        return resolve_target(value, "lambd")
    if key in ("transformation_matrix", "mean_vector") and not isinstance(value, torch.Tensor):
        return torch.as_tensor(value, dtype=torch.float32)
    return value


def _enum(enum, value: str, key: str):
    try:
        return enum(value.lower())
    except ValueError:
        choices = ", ".join(repr(m.value) for m in enum)
        raise KernelError(f"{key}: {value!r} is not one of {choices}") from None


def _nested(spec, index: int):
    import kernel

    if callable(spec):
        return spec
    if isinstance(spec, str):
        spec = {"use": spec}
    if not isinstance(spec, dict) or "use" not in spec:
        raise KernelError(f"transforms[{index}]: give a transform as {{ use = \"vision.Resize\", size = 32 }}")
    params = {k: v for k, v in spec.items() if k not in ("use", "params")} | dict(spec.get("params") or {})
    built = kernel.create(spec["use"], **params)
    return built.transform if isinstance(built, VisionTransform) else built


def transform_signature(name: str) -> inspect.Signature:
    """The torchvision class's parameters; those given as text here lose their Python-object annotations."""
    from torchvision.transforms import v2

    sig = inspect.signature(getattr(v2, name))
    out = []
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            continue  # Lambda's *types: not expressible in a workflow
        if p.name in CONVERTED:
            p = p.replace(annotation=inspect.Parameter.empty)
        if p.default is not p.empty and hasattr(p.default, "value") and hasattr(type(p.default), "__members__"):
            p = p.replace(default=p.default.value)  # show enums as the text a workflow uses
        out.append(p.replace(kind=p.KEYWORD_ONLY) if p.kind is not p.VAR_KEYWORD else p)
    return sig.replace(parameters=out, return_annotation=sig.empty)


def _factory(name: str):
    from torchvision.transforms import v2

    cls = getattr(v2, name)
    sig = transform_signature(name)

    def build(**params):
        if name in BATCH_ONLY:
            raise KernelError(f"vision.{name} mixes whole batches (images and labels together), but dataset "
                              f"transforms work on one sample at a time; it is not available as a dataset transform")
        unknown = [k for k in params if k not in sig.parameters]
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            raise KernelError(f"vision.{name}: unknown parameter {unknown[0]!r}"
                              f"{did_you_mean(unknown[0], sig.parameters)}; it takes: {', '.join(sig.parameters)}")
        try:
            transform = cls(**{k: _convert(k, v) for k, v in params.items()})
        except KernelError:
            raise
        except (TypeError, ValueError) as exc:
            raise KernelError(f"vision.{name}: {exc}") from None
        return VisionTransform(name, transform, uint8_only=name in UINT8_ONLY)

    build.__name__ = build.__qualname__ = name
    build.__signature__ = sig
    build.__doc__ = f"torchvision.transforms.v2.{name}, applied to image tensors (and masks/boxes).\n\n" + (
        inspect.getdoc(cls) or "")
    return build


class Normalize:
    """Subtract a per-channel mean and divide by a standard deviation; "auto" fits them on the training split.

    With ``mean = "auto"`` (or ``std = "auto"``) the statistics are measured on the training split
    (after the transforms before this one) by the kernel's ``kernel.value_stats`` analyzer, and kept
    with the run. ``facts()`` offers ``normalize = {mean, std}`` so renderers can show the images
    as they were.

    Args:
        mean: one value per channel, or "auto".
        std: one value per channel, or "auto".
        inplace: change the input tensor instead of making a new one.
        samples: at most this many training samples are read to fit "auto" (evenly spread).
    """

    def __init__(self, mean: list[float] | str = "auto", std: list[float] | str = "auto", inplace: bool = False,
                 samples: int = 20000):
        for key, value in (("mean", mean), ("std", std)):
            if isinstance(value, str) and value != "auto":
                raise KernelError(f"vision.Normalize: {key} must be a list of numbers or \"auto\", not {value!r}")
        if isinstance(std, (list, tuple)) and any(float(s) <= 0 for s in std):
            raise KernelError(f"vision.Normalize: std must be positive, got {list(std)}")
        self.mean = None if mean == "auto" else [float(v) for v in _listed(mean)]
        self.std = None if std == "auto" else [float(v) for v in _listed(std)]
        self.auto = (mean == "auto", std == "auto")
        self.inplace, self.samples = inplace, samples

    def fit(self, dataset):
        if not any(self.auto):
            return self
        import kernel

        stats = kernel.create("kernel.value_stats")
        stats.start({})
        n = len(dataset)
        step = max(1, n // max(1, self.samples))
        indices = list(range(0, n, step))
        for start in range(0, len(indices), 256):
            items = [dataset[i] for i in indices[start:start + 256]]
            stats.update({"split": "train", "inputs": [x for x, _ in items], "targets": [y for _, y in items]})
        # the analyzer's own report, as any analyzer is read: a table of channel, mean, std
        rows = stats.finish().table or []
        mean, std = [row["mean"] for row in rows], [row["std"] for row in rows]
        if not mean:
            raise KernelError("vision.Normalize: the training split has no numeric images to fit mean and std on")
        if self.auto[0]:
            self.mean = mean
        if self.auto[1]:
            self.std = std
        return self

    def __call__(self, x):
        from torchvision.transforms.v2.functional import normalize

        if not isinstance(x, torch.Tensor):
            x = to_image(x)
        mean, std = self.statistics(x.shape[-3] if x.ndim >= 3 else 1)
        return normalize(as_float(x), mean, std, inplace=self.inplace)

    def statistics(self, channels: int) -> tuple[list[float], list[float]]:
        """The mean and std for images of ``channels`` channels (one value given: the same for all)."""
        if self.mean is None or self.std is None:
            raise KernelError("vision.Normalize: mean/std are \"auto\" but were never fitted; use it in a "
                              "workflow (the kernel fits it on the training split) or give the values")
        mean, std = self.mean, self.std
        if len(mean) == len(std) == channels:
            return mean, std
        if len(mean) == 1 and len(std) == 1:
            return mean * channels, std * channels
        raise KernelError(f"vision.Normalize: {len(mean)} mean and {len(std)} std values for images with "
                          f"{channels} channel(s)")

    def batched(self, before: list):
        """Normalise whole batches as they are collated: with a RandomHorizontalFlip just before,
        both in one pass over the uint8 pixels of an array-backed dataset (``kernel.fused.image_batch``);
        see kernel.data.batch_form."""
        from kernel import BatchForm

        from .datasets import pixels_of

        flip = before[-1] if before and isinstance(before[-1], VisionTransform) \
            and before[-1].name == "RandomHorizontalFlip" else None
        taken = 1 if flip is not None else 0
        return BatchForm(taken, BatchNormalize(self, flip), pixels_of if taken == len(before) else None)

    def facts(self) -> dict:
        if self.mean is None or self.std is None:
            return {}
        return {"normalize": {"mean": list(self.mean), "std": list(self.std)}}

    def portable(self) -> dict | None:
        """The fitted statistics as data for a torch-free runtime; None until they are known."""
        if self.mean is None or self.std is None:
            return None
        return {"step": "normalize", "mean": list(self.mean), "std": list(self.std)}

    def state_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict):
        self.mean = None if state.get("mean") is None else [float(v) for v in state["mean"]]
        self.std = None if state.get("std") is None else [float(v) for v in state["std"]]


class BatchNormalize:
    """A collate function that does vision.Normalize (after ``flip``, a RandomHorizontalFlip, if
    given) once per batch: image tensors of one size with class labels or dense masks are stacked,
    mirrored by a per-sample mask and normalised in one operator (uint8 pixels through the fused
    kernel); anything else (detection boxes, PIL images, sizes that differ) goes through the
    per-sample transforms first, so the batch is always what the per-sample path would make."""

    def __init__(self, normalize: Normalize, flip: VisionTransform | None):
        self.normalize, self.flip = normalize, flip

    def __call__(self, items: list):
        from torch.utils.data import default_collate

        xs, ys = [x for x, _ in items], [y for _, y in items]
        if not _stackable(xs) or not all(_plain_target(y) for y in ys):
            return default_collate([self._one(x, y) for x, y in items])
        x, y = torch.stack(xs), default_collate(ys)
        flip = torch.rand(x.shape[0]) < self.flip.transform.p if self.flip is not None else None
        if flip is not None and isinstance(y, torch.Tensor) and y.ndim >= 3:
            y = torch.where(flip.view(-1, *[1] * (y.ndim - 1)), y.flip(-1), y)  # masks move with their image
        mean, std = self.normalize.statistics(x.shape[1])
        if x.dtype == torch.uint8:
            from kernel import fused

            return [fused.image_batch(x.permute(0, 2, 3, 1), mean, std, flip), y]
        from torchvision.transforms.v2.functional import normalize

        x = as_float(x)
        if flip is not None:
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return [normalize(x, mean, std), y]

    def _one(self, x, y):
        if self.flip is not None:
            x, y = self.flip(x, y)
        return self.normalize(x), y


def _stackable(xs: list) -> bool:
    """(C, H, W) image tensors of one shape and dtype."""
    first = xs[0] if xs else None
    return isinstance(first, torch.Tensor) and first.ndim == 3 and all(
        isinstance(x, torch.Tensor) and x.shape == first.shape and x.dtype == first.dtype for x in xs)


def _plain_target(y) -> bool:
    """A number or a tensor (a dense mask moves with its image, as the per-sample flip moves it);
    boxes in a dict and other structures take the per-sample path."""
    return isinstance(y, (int, float, bool, torch.Tensor))


def _listed(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


_BUILT: dict = {}


def __getattr__(name: str):
    # every transforms.v2 class is a target here: plugin_vision.transforms:Resize
    if name in names.TRANSFORMS:
        if name not in _BUILT:
            _BUILT[name] = _factory(name)
        return _BUILT[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

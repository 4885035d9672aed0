"""The data side of a workflow: splits, transforms applied per sample, and the facts models ask for."""
from __future__ import annotations

import hashlib
import json
import numbers
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from .errors import KernelError, first_line

VALID_NAMES = ("valid", "val", "validation", "dev")


class Subset(Dataset):
    """Some items of a dataset, by index; keeps ``classes`` and the other attributes visible."""

    def __init__(self, base, indices):
        self.base, self.indices = base, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.base[self.indices[i]]

    def __getattr__(self, name):  # data facts such as classes or sample_rate live on the base
        if name in ("base", "indices") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.base, name)


class Transformed(Dataset):
    """A dataset whose inputs (and, for ``joint`` transforms, targets) pass through transforms.

    ``task``, once the data facts know it, puts every target in the form the task's losses and
    metrics take (:func:`conform_target`).
    """

    def __init__(self, base, transforms=(), target_transforms=(), task: str | None = None):
        self.base, self.transforms, self.target_transforms = base, list(transforms), list(target_transforms)
        self.task = task

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        x, y = apply(self.transforms, self.target_transforms, x, y)
        return x, conform_target(y, self.task)

    def __getattr__(self, name):
        if name in ("base", "transforms", "target_transforms", "task") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.base, name)


def conform_target(y, task: str | None):
    """A target in the one form its task is trained with; only unambiguous changes are made.

    - regression: a float32 vector of the outputs, so that a batch is ``(N, outputs)`` like the
      model's output (a scalar or a Python float becomes one value; float64 becomes float32);
    - multiclass and binary: class indices as int64 (what cross-entropy takes), from any integer type.
    Other tasks and other kinds of target pass unchanged.
    """
    if task == "regression":
        if isinstance(y, float) or (isinstance(y, int) and not isinstance(y, bool)):
            return torch.tensor([float(y)], dtype=torch.float32)
        if isinstance(y, torch.Tensor) and y.is_floating_point():
            if y.dtype == torch.float64:
                y = y.float()
            return y.reshape(1) if y.ndim == 0 else y
    elif task in ("multiclass", "binary") and isinstance(y, torch.Tensor):
        if not y.is_floating_point() and not y.is_complex() and y.dtype not in (torch.int64, torch.bool):
            return y.long()
    return y


def apply(transforms, target_transforms, x, y):
    for t in transforms:
        if getattr(t, "joint", False):
            x, y = t(x, y)
        else:
            x = t(x)
    for t in target_transforms:
        y = t(y)
    return x, y


def root(dataset):
    """The dataset under any Subset/Transformed wrappers."""
    while isinstance(dataset, (Subset, Transformed)):
        dataset = dataset.base
    return dataset


def split_dataset(source, valid: float, test: float, fraction: float, seed: int) -> dict[str, Any]:
    """Train/valid(/test) splits: the source's own when it has them, else a seeded random split."""
    if isinstance(source, dict):
        splits = {}
        for key, ds in source.items():
            name = "valid" if key in VALID_NAMES else key
            splits[name] = ds
        if "train" not in splits:
            raise KernelError(f"the dataset returned splits {list(source)} but none is called 'train'")
        if "valid" not in splits:
            if "test" in splits and valid == 0:
                splits["valid"] = splits.pop("test")
            else:
                parts = _random_split(splits["train"], valid, 0.0, seed)
                splits["train"], splits["valid"] = parts["train"], parts["valid"]
    else:
        if not hasattr(source, "__getitem__") or not hasattr(source, "__len__"):
            raise KernelError(f"a dataset must be map-style (len and indexing); got {type(source).__name__}")
        splits = _random_split(source, valid, test, seed)
    if fraction < 1.0:
        g = torch.Generator().manual_seed(seed + 1)
        for name, ds in list(splits.items()):
            keep = max(1, int(round(len(ds) * fraction)))
            splits[name] = Subset(ds, torch.randperm(len(ds), generator=g)[:keep].tolist())
    for name, ds in splits.items():
        if len(ds) == 0:
            raise KernelError(f"the {name} split is empty; check dataset.split and dataset.fraction")
    return splits


def _random_split(ds, valid: float, test: float, seed: int) -> dict:
    n = len(ds)
    if n < 2:
        raise KernelError(f"the dataset has {n} sample(s); at least 2 are needed to train and validate")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_valid = max(1, int(round(n * valid))) if valid > 0 else 0
    n_test = int(round(n * test))
    out = {"train": Subset(ds, order[n_valid + n_test:])}
    if n_valid:
        out["valid"] = Subset(ds, order[:n_valid])
    if n_test:
        out["test"] = Subset(ds, order[n_valid:n_valid + n_test])
    return out


def infer_facts(train, transforms, dataset_root) -> dict:
    """Facts a model or metric may ask for by name, from the data and the fitted transforms."""
    x, y = train[0]
    facts: dict[str, Any] = {}
    if isinstance(x, torch.Tensor):
        facts["input_shape"] = tuple(x.shape)
        if x.ndim >= 2:
            facts["in_channels"] = int(x.shape[0])
        facts["input_dtype"] = str(x.dtype).replace("torch.", "")
    classes = getattr(dataset_root, "classes", None)
    if classes is not None:
        facts["classes"] = [str(c) for c in classes]
    facts["task"] = infer_task(y)
    if facts["task"] in ("multiclass", "binary"):
        facts["num_classes"] = len(classes) if classes else count_classes(train, dataset_root)
    elif facts["task"] == "multilabel":
        facts["num_classes"] = int(torch.as_tensor(y).numel())
    elif facts["task"] == "regression":
        facts["num_classes"] = int(torch.as_tensor(y).numel())  # number of outputs
    # what the dataset and the fitted transforms say of themselves (a sample rate, a vocabulary's
    # size); a transform comes after the dataset, so what it says wins (a resampling changes the rate)
    for source in (dataset_root, *transforms):
        more = getattr(source, "facts", None)
        if callable(more):
            facts.update(more() or {})
    return facts


def infer_task(y) -> str:
    """multiclass (integer labels), multilabel (0/1 vectors), regression (floats) or other."""
    if isinstance(y, bool):
        return "multiclass"
    if isinstance(y, int):
        return "multiclass"
    if isinstance(y, float):
        return "regression"
    if isinstance(y, torch.Tensor):
        if not y.is_floating_point() and not y.is_complex():
            return "multiclass"  # scalars, or dense labels (segmentation masks)
        if y.ndim == 1 and y.numel() > 1 and bool(((y == 0) | (y == 1)).all()):
            return "multilabel"
        return "regression"
    return "other"  # dicts and anything else: the trainer of such data knows its task


def count_classes(train, dataset_root) -> int:
    """max label + 1, from the dataset's ``targets`` when it has them, else by reading the split."""
    targets = getattr(dataset_root, "targets", None)
    if targets is not None:
        return int(torch.as_tensor(targets).max()) + 1
    return max(int(torch.as_tensor(train[i][1]).max()) for i in range(len(train))) + 1


def source_targets(split) -> tuple:
    """``(source, indices, targets)``: the dataset under a split's Subsets, the split's indices into
    it (None: all of it) and the source's ``targets`` attribute (None when it has none, or when
    transforms stand between, which may change the targets)."""
    ds, indices = split, None
    while isinstance(ds, Subset):
        indices = ds.indices if indices is None else [ds.indices[i] for i in indices]
        ds = ds.base
    return ds, indices, (None if isinstance(ds, Transformed) else getattr(ds, "targets", None))


def split_targets(dataset) -> list[int] | None:
    """The class index of each item of a split, or None when its targets are not single classes.

    Reads the source's ``targets`` through the Subset indices when the source has them (no input is
    loaded), else reads the items.
    """
    ds, indices, targets = source_targets(dataset)
    try:
        usable = targets is not None and len(targets) == len(ds)
    except TypeError:
        usable = False
    if usable:
        values = targets if indices is None else [targets[i] for i in indices]
    else:
        values = (dataset[i][1] for i in range(len(dataset)))
    out = []
    for y in values:
        if isinstance(y, torch.Tensor):
            if y.numel() != 1 or y.is_floating_point() or y.is_complex():
                return None
            y = y.item()
        if not isinstance(y, numbers.Integral):
            return None
        out.append(int(y))
    return out


def majority_baseline(data: "Data") -> dict | None:
    """What always answering the training split's most frequent class scores: the accuracy a
    classifier must beat to have learnt anything. Measured on the valid split (train without one);
    None unless each sample has one class."""
    if data.facts.get("task") not in ("multiclass", "binary"):
        return None
    train = split_targets(data.raw["train"])
    if not train:
        return None
    counts = Counter(train)
    majority = max(counts, key=lambda c: (counts[c], -c))  # a tie goes to the smaller index
    split = "valid" if data.raw.get("valid") is not None else "train"
    targets = train if split == "train" else split_targets(data.raw["valid"])
    if not targets:
        return None
    classes = data.classes
    return {"metric": f"{split}/accuracy", "accuracy": sum(t == majority for t in targets) / len(targets),
            "class": classes[majority] if classes and 0 <= majority < len(classes) else str(majority)}


@dataclass
class Data:
    """Everything a trainer needs from the data: transformed splits, facts, collation."""

    splits: dict[str, Any]
    raw: dict[str, Any]
    facts: dict = field(default_factory=dict)
    tags: tuple = ()
    collate_fn: Callable | None = None
    fingerprint: str = ""
    transforms: list = field(default_factory=list)
    seed: int = 0
    recipe: dict | None = None  # the [dataset] table and seed it was made from (prepare reuses it)

    @staticmethod
    def recipe_of(workflow) -> dict:
        """What a workflow's data is made from: its ``[dataset]`` table and its seed."""
        return {"dataset": workflow.dataset.model_dump(mode="json"), "seed": workflow.seed}

    def fits(self, workflow) -> bool:
        """Whether this data is what ``workflow`` would build (same ``[dataset]`` and seed)."""
        return self.recipe is not None and self.recipe == self.recipe_of(workflow)

    @property
    def train(self):
        return self.splits["train"]

    @property
    def valid(self):
        return self.splits.get("valid")

    @property
    def classes(self):
        return self.facts.get("classes")

    def loader(self, split: str, batch_size: int, shuffle: bool | None = None, num_workers: int = 0,
               pin_memory: bool = False, generator: torch.Generator | None = None, drop_last: bool = False):
        ds, collate_fn = batch_form(self.splits[split], self.collate_fn)
        if shuffle is None:
            shuffle = split == "train"
        if shuffle and generator is None:
            generator = torch.Generator().manual_seed(self.seed)
        batches = batch_sampler_of(collate_fn, ds, batch_size, shuffle, generator, drop_last)
        order = dict(batch_size=batch_size, shuffle=shuffle, drop_last=drop_last) if batches is None else \
            dict(batch_sampler=batches)  # the collate function chose the batches
        return DataLoader(ds, num_workers=num_workers, pin_memory=pin_memory, collate_fn=collate_fn,
                          generator=generator, persistent_workers=num_workers > 0, **order)

    def batch(self, split: str = "train", size: int = 4):
        """The first few samples of a split, collated: for dry runs, model graphs and exports."""
        ds = self.splits[split]
        return collate_items([ds[i] for i in range(min(size, len(ds)))], self.collate_fn, split)

    def transform_states(self) -> list:
        return [t.state_dict() if hasattr(t, "fit") and hasattr(t, "state_dict") else None
                for t in self.transforms]


@dataclass
class BatchForm:
    """A transform's offer to do its work, and that of the ``taken`` transforms before it, once per
    batch: ``collate(items) -> batch`` makes the batch from the items read without those transforms,
    and ``source(raw_split)``, when given, says what to read per sample instead of the split's own
    items (a dataset of undecoded pixels, say), or None to read the split as it is."""

    taken: int
    collate: Callable
    source: Callable | None = None


def batch_form(split, collate_fn=None):
    """A split as a loader reads it: per sample up to the transforms that offer to work on whole
    batches, which then run once per batch as it is collated. Returns ``(dataset, collate_fn)``.

    The last transform may offer ``batched(before)``, ``before`` being the transforms ahead of it,
    and answer None or a :class:`BatchForm` (vision.Normalize: a random flip and the normalisation
    in one pass over a uint8 batch). Only where samples would be stacked plainly (no collate function
    of the dataset's or a transform's own). Items read one at a time (``split[i]``, previews,
    exports) keep the per-sample path, which computes the same.
    """
    transforms = split.transforms if isinstance(split, Transformed) else None
    offer = getattr(transforms[-1], "batched", None) if transforms and collate_fn is None else None
    form = offer(transforms[:-1]) if offer is not None else None
    if form is None:
        return split, collate_fn
    base = (form.source(split.base) if form.source else None) or split.base
    per_sample = Transformed(base, transforms[:len(transforms) - 1 - form.taken], split.target_transforms,
                             split.task)
    return per_sample, form.collate


def collate_items(items: list, collate_fn=None, split: str = "train"):
    """Samples made into a batch; samples that cannot be stacked are a KernelError that says why."""
    collate = collate_fn or torch.utils.data.default_collate
    try:
        return collate(items)
    except KernelError:
        raise
    except Exception as exc:
        raise KernelError(f"dataset: samples of the {split} split cannot be made into a batch: "
                          f"{_unequal(items) or first_line(exc)}") from exc


def _unequal(items: list) -> str:
    """What differs between samples that do not stack, with the usual fix; '' when nothing is found."""
    for position, role in ((0, "inputs"), (1, "targets")):
        shapes = []
        for item in items:
            value = item[position] if isinstance(item, (tuple, list)) and len(item) > position else None
            shape = tuple(value.shape) if hasattr(value, "shape") else None
            if shape is not None and shape not in shapes:
                shapes.append(shape)
        if len(shapes) > 1:
            shown = " and ".join(str(s) for s in shapes[:2])
            return (f"their {role} have different shapes ({shown}); add a transform that gives every sample "
                    f"one size (a resize, crop or pad: `kernel list transforms`), or a dataset with a collate_fn")
    return ""


def check_batches(data: "Data"):
    """Samples from across the train split must stack into a batch: a few are read and collated,
    so that images of mixed sizes are found before training, with the fix, not in its first epoch.
    (Building the data does not need batches; training does: the dry run and ``kernel run`` check.)"""
    train, collate = batch_form(data.train, data.collate_fn)  # as the loaders will read it
    n = len(train)
    spread = sorted({i * (n - 1) // 7 for i in range(8)}) if n > 1 else [0]
    collate_items([train[i] for i in spread], collate, "train")


def check_labels(data: "Data"):
    """Class labels outside the classes, or a single class, are refused when the data is built:
    read from the ``targets`` the source already holds (no sample is loaded)."""
    task = data.facts.get("task")
    if task not in ("multiclass", "binary"):
        return
    n_classes = data.facts.get("num_classes")
    if not isinstance(n_classes, int):
        return
    if n_classes < 2:
        raise KernelError(f"dataset: the targets hold a single class ({n_classes} class); classification "
                          f"needs at least 2 (or a dataset whose `classes` lists them all)")
    for name, split in data.raw.items():
        found = label_range(split)
        if found is None:
            continue
        low, high = found
        if low < 0 or high >= n_classes:
            bad = low if low < 0 else high
            source = "the dataset's classes" if data.classes else "the training labels"
            raise KernelError(f"dataset: the {name} split has label {bad}, but {source} give {n_classes} "
                              f"classes (labels 0 to {n_classes - 1}); fix the labels or the class list")


def label_range(split) -> tuple[int, int] | None:
    """The smallest and largest class label of a split, from the ``targets`` its source holds
    (at once, as one tensor: no sample is read); None when the source has no integer targets."""
    ds, indices, targets = source_targets(split)
    try:
        labels = torch.as_tensor(targets) if targets is not None else None
    except (TypeError, ValueError, RuntimeError):
        return None
    if labels is None or labels.ndim != 1 or labels.is_floating_point() or labels.is_complex() \
            or len(labels) != len(ds):
        return None
    if indices is not None:
        labels = labels[torch.as_tensor(indices, dtype=torch.long)]
    if labels.numel() == 0:
        return None
    return int(labels.min()), int(labels.max())


def batch_sampler_of(collate_fn, dataset, batch_size: int, shuffle: bool = False, generator=None,
                     drop_last: bool = False):
    """The batches a collate function chooses itself, or None for the DataLoader's own batching.

    A collate function may offer ``batch_sampler(dataset, batch_size, shuffle, generator, drop_last)``
    returning a batch sampler (lists of indices), for example to put samples of similar length
    together; returning None keeps plain batching.
    """
    make = getattr(collate_fn, "batch_sampler", None)
    if make is None:
        return None
    return make(dataset, batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last)


def collate_from(dataset_root, transforms) -> Callable | None:
    """The collate function a dataset or transform offers (the last transform that has one wins)."""
    fn = getattr(dataset_root, "collate_fn", None)
    for t in transforms:
        fn = getattr(t, "collate_fn", None) or fn
    return fn


def fingerprint(spec: dict, splits: dict) -> str:
    """A hash of the data recipe and of sampled content: runs are compared within one fingerprint."""
    h = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
    for name in sorted(splits):
        ds = splits[name]
        h.update(f"{name}:{len(ds)}".encode())
        step = max(1, len(ds) // 8)
        for i in range(0, len(ds), step)[:8]:
            x, y = ds[i]
            for part in (x, y):
                h.update(_content_bytes(part))
    return h.hexdigest()[:16]


def _content_bytes(value) -> bytes:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous().numpy().tobytes()[:65536]
    tobytes = getattr(value, "tobytes", None)
    if callable(tobytes):
        return tobytes()[:65536]
    return repr(value).encode()[:65536]


def forward(model, inputs):
    """Call a model on a batch's inputs: a dict goes in as keywords, a tuple or list as arguments."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def to_device(obj, device, non_blocking: bool = False):
    """Move tensors, possibly nested in dicts, lists and tuples, to a device."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return {k: to_device(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device, non_blocking) for v in obj)
    return obj


def batch_size_of(inputs) -> int:
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0])
    if isinstance(inputs, dict):
        return batch_size_of(next(iter(inputs.values())))
    if isinstance(inputs, (list, tuple)):
        return batch_size_of(inputs[0]) if inputs and not isinstance(inputs[0], (str, bytes)) else len(inputs)
    return 1

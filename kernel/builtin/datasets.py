"""Generic datasets: random data for smoke runs, and tensors from a local file."""
from __future__ import annotations

from pathlib import Path

from ..errors import KernelError


class TensorPairs:
    """A map-style dataset over two aligned tensors, with ``targets`` and ``classes`` for the kernel."""

    def __init__(self, inputs, targets, classes=None):
        if len(inputs) != len(targets):
            raise KernelError(f"inputs and targets differ in length ({len(inputs)} vs {len(targets)})")
        self.inputs, self.targets = inputs, targets
        if classes is not None:
            self.classes = list(classes)

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, index):
        return self.inputs[index], self.targets[index]


def synthetic(num_samples: int = 512, shape: tuple = (16,), num_classes: int = 4,
              task: str = "classification", noise: float = 0.5, seed: int = 0):
    """Random inputs whose labels a model can learn (each class has its own mean).

    Args:
        num_samples: how many samples to make.
        shape: the shape of one input, without the batch dimension.
        num_classes: number of classes (for classification).
        task: "classification" (integer labels) or "regression" (a float target per sample).
        noise: standard deviation of the noise around each class mean; higher is harder.
        seed: the random seed; the same seed gives the same data.
    """
    import torch

    if task not in ("classification", "regression"):
        raise KernelError(f"task must be 'classification' or 'regression', not {task!r}")
    g = torch.Generator().manual_seed(seed)
    shape = tuple(int(s) for s in shape)
    if task == "regression":
        x = torch.randn((num_samples, *shape), generator=g)
        w = torch.randn(shape, generator=g)
        y = (x * w).flatten(1).sum(1, keepdim=True) / max(1, w.numel()) ** 0.5
        y = y + noise * 0.1 * torch.randn(y.shape, generator=g)
        return TensorPairs(x, y)
    centres = torch.randn((num_classes, *shape), generator=g)
    y = torch.randint(0, num_classes, (num_samples,), generator=g)
    x = centres[y] + noise * torch.randn((num_samples, *shape), generator=g)
    return TensorPairs(x, y, classes=[f"class_{i}" for i in range(num_classes)])


def tensors(path: str, inputs: str = "inputs", targets: str = "targets", classes: list | None = None):
    """Inputs and targets from a local ``.pt`` (a dict of tensors) or ``.npz`` file.

    Args:
        path: the file to read.
        inputs: the key of the inputs in the file.
        targets: the key of the targets in the file.
        classes: class names, if the file has none under "classes".
    """
    import numpy as np
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise KernelError(f"dataset file not found: {file} (kernel.tensors reads a .pt or .npz file)")
    try:
        if file.suffix == ".npz":
            with np.load(file, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        else:
            data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise KernelError(f"cannot read {file}: {exc}") from exc
    if not isinstance(data, dict):
        raise KernelError(f"{file} must hold a dict with {inputs!r} and {targets!r}")
    for key in (inputs, targets):
        if key not in data:
            raise KernelError(f"{file} has no {key!r}; it has: {', '.join(map(str, data))}")
    names = classes if classes is not None else data.get("classes")
    if names is not None and not isinstance(names, list):
        names = [str(n) for n in np.asarray(names).tolist()]
    x = torch.as_tensor(data[inputs])
    if x.dtype == torch.float64:  # numpy's default; models' weights are float32
        x = x.float()
    return TensorPairs(x, torch.as_tensor(data[targets]), names)

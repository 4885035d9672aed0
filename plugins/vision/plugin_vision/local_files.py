"""Reading dataset files that are already on disk, the way a machine that never downloads needs to.

Two things torchvision does assume a download:

- it compares files with the MD5 sums of the official archives (CIFAR, SVHN, STL10, ...), so a
  subset, a re-packed copy or a test's small file in the same format is refused as "corrupted".
  Here a file must exist; a damaged one fails when it is parsed, and the error names it.
- the MNIST family reads the unpacked IDX files its download step writes; the ``.gz`` files as
  they are published are read here as they are (unpacked in memory, nothing written beside them).
"""
from __future__ import annotations

import gzip
import os
import sys
import tempfile
import threading
from contextlib import contextmanager

_LOCK = threading.Lock()


def _exists(fpath, md5=None) -> bool:
    return os.path.isfile(fpath)


@contextmanager
def without_checksums(cls):
    """While ``cls`` is built, its module's ``check_integrity`` only asks that the file exists."""
    module = sys.modules.get(cls.__module__)
    if module is None or not callable(getattr(module, "check_integrity", None)):
        yield
        return
    with _LOCK:
        original = module.check_integrity
        module.check_integrity = _exists
        try:
            yield
        finally:
            module.check_integrity = original


def unpacked_or_gz(path: str) -> str | None:
    """``path`` when it is there, ``path.gz`` when only that is, else None."""
    if os.path.isfile(path):
        return path
    if os.path.isfile(path + ".gz"):
        return path + ".gz"
    return None


def read_idx(path: str, reader):
    """Read an IDX file with torchvision's ``reader``, unpacking a ``.gz`` into a temporary file first."""
    found = unpacked_or_gz(path)
    if found is None:
        raise FileNotFoundError(path)
    if not found.endswith(".gz"):
        return reader(found)
    try:
        data = gzip.decompress(open(found, "rb").read())
    except (OSError, EOFError) as exc:
        raise ValueError(f"{found} is not a readable gzip file: {exc}") from None
    with tempfile.TemporaryDirectory() as tmp:
        unpacked = os.path.join(tmp, os.path.basename(path))
        with open(unpacked, "wb") as f:
            f.write(data)
        return reader(unpacked)


def local_class(cls):
    """``cls``, or a subclass of the same name that also reads the MNIST family's ``.gz`` files."""
    from torchvision.datasets import MNIST

    if not (isinstance(cls, type) and issubclass(cls, MNIST) and cls._load_data is MNIST._load_data):
        return cls  # EMNIST and QMNIST read other files in other ways: left as torchvision has them
    from torchvision.datasets.mnist import read_image_file, read_label_file

    def _check_exists(self) -> bool:
        return all(unpacked_or_gz(os.path.join(self.raw_folder, os.path.splitext(os.path.basename(url))[0]))
                   for url, _ in self.resources)

    def _load_data(self):
        prefix = "train" if self.train else "t10k"
        data = read_idx(os.path.join(self.raw_folder, f"{prefix}-images-idx3-ubyte"), read_image_file)
        targets = read_idx(os.path.join(self.raw_folder, f"{prefix}-labels-idx1-ubyte"), read_label_file)
        return data, targets

    # same name: torchvision finds the files under root/<class name>/raw
    return type(cls.__name__, (cls,), {"_check_exists": _check_exists, "_load_data": _load_data,
                                        "__module__": cls.__module__, "__doc__": cls.__doc__})

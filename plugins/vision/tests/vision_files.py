"""Small files in the real formats torchvision reads: CIFAR python batches, MNIST IDX, image folders,
FlyingChairs pairs and flows, VOC segmentation masks.

The tests write these instead of downloading anything; the pixels are seeded random bytes, so a
test can compare what the plugin hands out with what was written.
"""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar10(root: Path, per_batch: int = 6, test: int = 4, seed: int = 0) -> dict:
    """``root/cifar-10-batches-py`` with five training batches, a test batch and ``batches.meta``.

    Returns what was written: {"train": (images, labels), "test": (images, labels)}, images as
    uint8 (N, 32, 32, 3) the way CIFAR stores them (rows of 3072 bytes: all red, then green, then blue).
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    written = {"train": ([], []), "test": ([], [])}

    def batch(name: str, n: int, split: str):
        rows = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        entry = {"batch_label": name, "labels": labels, "data": rows,
                 "filenames": [f"{name}_{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        written[split][0].append(rows.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1))
        written[split][1].extend(labels)

    for i in range(1, 6):
        batch(f"data_batch_{i}", per_batch, "train")
    batch("test_batch", test, "test")
    meta = {"label_names": CIFAR10_CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return {split: (np.concatenate(images), labels) for split, (images, labels) in written.items()}


def idx(path: Path, array: np.ndarray, compress: bool = False):
    """One IDX file (the MNIST format): magic 0x0000 08 ndim, big-endian sizes, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        Path(str(path) + ".gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def mnist(root: Path, train: int = 12, test: int = 5, compress: bool = False, seed: int = 0,
          name: str = "MNIST") -> dict:
    """``root/MNIST/raw/`` with the four IDX files (gzipped as downloaded, or unpacked)."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / name / "raw"
    out = {}
    for split, prefix, n in (("train", "train", train), ("test", "t10k", test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        idx(raw / f"{prefix}-images-idx3-ubyte", images, compress)
        idx(raw / f"{prefix}-labels-idx1-ubyte", labels, compress)
        out[split] = (images, labels.tolist())
    return out


def image_folder(root: Path, classes=("cat", "dog"), per_class: int = 3, size=(12, 10), seed: int = 0,
                 formats=("PNG", "JPEG")) -> list[Path]:
    """``root/<class>/<n>.<png|jpg>``: RGB images of ``size`` (width, height), formats taking turns."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = []
    for c in classes:
        (Path(root) / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            fmt = formats[i % len(formats)]
            ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
            pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            path = Path(root) / c / f"{i}.{ext}"
            Image.fromarray(pixels, "RGB").save(path, fmt)
            files.append(path)
    return files


def corrupt_image(path: Path) -> Path:
    """A file with an image's name whose bytes are not an image (a truncated download, say)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is not the rest of a PNG file")
    return path


def flying_chairs(root: Path, pairs: int = 4, size=(64, 48), seed: int = 0) -> list:
    """``root/FlyingChairs/data/NNNNN_img1.ppm, _img2.ppm, _flow.flo`` and the train/val list
    (1 = train, 2 = val: the last pair validates). Returns the flows written, (2, H, W) each."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    data = Path(root) / "FlyingChairs" / "data"
    data.mkdir(parents=True, exist_ok=True)
    w, h = size
    flows = []
    for i in range(1, pairs + 1):
        for k in (1, 2):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(data / f"{i:05d}_img{k}.ppm")
        flow = rng.normal(size=(h, w, 2)).astype("<f4")  # Middlebury .flo: magic, width, height, (u, v) per pixel
        (data / f"{i:05d}_flow.flo").write_bytes(b"PIEH" + struct.pack("<ii", w, h) + flow.tobytes())
        flows.append(flow.transpose(2, 0, 1))
    (Path(root) / "FlyingChairs" / "FlyingChairs_train_val.txt").write_text("\n".join(["1"] * (pairs - 1) + ["2"]))
    return flows


def voc_segmentation(root: Path, train: int = 3, val: int = 2, size=(20, 16), seed: int = 0) -> dict:
    """``root/VOCdevkit/VOC2012``: JPEG images, palette PNG masks of class indices (255 on a border),
    and the train/val lists. Returns {split: [mask arrays]}."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    w, h = size
    out = {}
    for split, n in (("train", train), ("val", val)):
        names, masks = [], []
        for i in range(n):
            name = f"2012_{split}_{i:03d}"
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(voc / "JPEGImages" / f"{name}.jpg")
            mask = np.zeros((h, w), dtype=np.uint8)
            mask[2:h // 2, 3:w // 2] = rng.integers(1, 21)
            mask[0, :] = 255  # VOC marks object borders "ignore"
            png = Image.fromarray(mask, "P")
            png.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])  # 256 colours, as VOC's
            png.save(voc / "SegmentationClass" / f"{name}.png")
            names.append(name)
            masks.append(mask)
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
        out[split] = masks
    return out

"""Images per second through the vision plugin's data path against the same pipeline written by hand.

Plugin: a workflow's ``[dataset]`` (``vision.CIFAR10`` or ``vision.ImageFolder``, then
``vision.RandomHorizontalFlip`` and ``vision.Normalize``) built by ``kernel.build.prepare``, read
through ``Data.loader`` (a shuffled DataLoader, batches of 128, no worker processes).
Baseline: what one writes with torchvision: ``torchvision.datasets.CIFAR10`` / ``ImageFolder`` with
``v2.Compose([ToImage(), ToDtype(float32, scale=True), RandomHorizontalFlip(), Normalize(...)])``
and a DataLoader with the same settings.

The images are 32x32 RGB made here: CIFAR-10 python batches (the format torchvision reads) and a
folder of PNG files, one sub-folder per class. The pipelines take turns (``--rounds``) and the
median epoch counts. Two clocks: the process's CPU time decides the ratio (the machine may be
shared; no worker processes, one torch thread, so all the work is this process's); wall time beside it.

Target (issue 4): ratio (plugin / hand-written images per second) at least 0.95.
Run: .venv/bin/python benchmarks/vision_pipeline.py [--images N] [--rounds N]
"""
from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from _rates import timed_pass  # noqa: E402  (beside this script)

MEAN, STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
BATCH = 128


def write_cifar(root: Path, images: int, seed: int = 0):
    """``root/cifar-10-batches-py``: five training batches, a small test batch, batches.meta."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    per = images // 5
    for name, n in [(f"data_batch_{i}", per) for i in range(1, 6)] + [("test_batch", 100)]:
        entry = {"batch_label": name, "labels": rng.integers(0, 10, n).tolist(),
                 "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "filenames": [f"{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return per * 5


def write_folder(root: Path, images: int, seed: int = 0):
    """``root/<class>/<n>.png``: 32x32 RGB PNGs in ten class folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(images):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB").save(folder / f"{i}.png")
    return images


# -- the two pipelines -------------------------------------------------------------------------------------
def plugin_loader(source: str, root: Path):
    from kernel.build import prepare
    from kernel.workflow import Workflow

    dataset = {"use": source, "root": str(root), "split": {"valid": 0.0},
               "transforms": [{"use": "vision.RandomHorizontalFlip"},
                              {"use": "vision.Normalize", "mean": MEAN, "std": STD}]}
    plan = prepare(Workflow(name="bench", dataset=dataset, models=[{"use": "vision.simple_cnn"}]))
    return plan.data.loader("train", batch_size=BATCH, shuffle=True)


def torchvision_loader(source: str, root: Path):
    import torch
    import torchvision
    from torchvision.transforms import v2

    transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.RandomHorizontalFlip(),
                            v2.Normalize(MEAN, STD)])
    if source == "vision.CIFAR10":
        class LocalCIFAR10(torchvision.datasets.CIFAR10):
            """The files made here are not the official ones: skip the MD5 comparison, as the plugin does."""

            def _check_integrity(self):
                return True

            def _load_meta(self):
                with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
                    self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]

        dataset = LocalCIFAR10(str(root), train=True, transform=transform)
    else:
        dataset = torchvision.datasets.ImageFolder(str(root), transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True,
                                       generator=torch.Generator().manual_seed(0))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10000, help="training images in each source")
    parser.add_argument("--rounds", type=int, default=5, help="the pipelines take turns this many times")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"vision.CIFAR10": (Path(tmp) / "cifar", write_cifar),
                   "vision.ImageFolder": (Path(tmp) / "folder", write_folder)}
        for source, (root, write) in sources.items():
            n = write(root, args.images)
            loaders = {"torchvision by hand": torchvision_loader(source, root), "plugin": plugin_loader(source, root)}
            for loader in loaders.values():
                timed_pass(loader)  # warm-up: first-touch of files and lazily imported code
            times = {name: [] for name in loaders}
            for _ in range(args.rounds):
                for name, loader in loaders.items():
                    count, wall, cpu = timed_pass(loader)
                    assert count == n, (name, count, n)
                    times[name].append((wall, cpu))
            med = {name: tuple(statistics.median(t[i] for t in ts) for i in (0, 1)) for name, ts in times.items()}
            rows.append((source, n, med))
    print(f"vision pipeline: 32x32 RGB images, RandomHorizontalFlip + Normalize, batch {BATCH}, shuffled, "
          f"no worker processes, {torch.get_num_threads()} torch thread(s), median of {args.rounds} epochs")
    print(f"{'source':<20} {'images':>6} {'hand-written img/s (cpu)':>25} {'plugin img/s (cpu)':>19} {'ratio':>6}"
          f" {'ratio (wall)':>12}")
    for source, n, med in rows:
        (bw, bc), (pw, pc) = med["torchvision by hand"], med["plugin"]
        ratio = bc / pc
        print(f"{source:<20} {n:>6} {n / bc:>25,.0f} {n / pc:>19,.0f} {ratio:>6.2f} {bw / pw:>12.2f}  "
              f"{'ok' if ratio >= 0.95 else 'BELOW 0.95'}")


if __name__ == "__main__":
    main()

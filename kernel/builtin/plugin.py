"""The built-in plugin: its hooks only describe components; the targets live in sibling modules."""
from __future__ import annotations

from .. import hookimpl
from ..component import Component

B = "kernel.builtin."


@hookimpl
def kernel_datasets():
    return [
        Component("kernel.synthetic", B + "datasets:synthetic",
                  "Random inputs of a given shape with learnable labels, for tests and smoke runs",
                  tags=("generic", "classification")),
        Component("kernel.tensors", B + "datasets:tensors",
                  "Inputs and targets from a local .pt or .npz file", tags=("generic",)),
    ]


@hookimpl
def kernel_models():
    return [
        Component("kernel.mlp", B + "models:mlp", "Multi-layer perceptron over flattened inputs",
                  tags=("generic", "classification", "regression")),
        Component("kernel.linear", B + "models:linear", "One linear layer over flattened inputs",
                  tags=("generic", "classification", "regression")),
    ]


@hookimpl
def kernel_renderers():
    return [
        Component("kernel.labels", B + "renderers:Labels",
                  "Class name of a label, or a bar chart of class probabilities", tags=("generic",)),
        Component("kernel.values", B + "renderers:Values",
                  "Fallback picture of any tensor (heat map, line or histogram)", tags=("generic",)),
    ]


@hookimpl
def kernel_analyzers():
    return [
        Component("kernel.class_balance", B + "analyzers:ClassBalance",
                  "Counts per class, and whether the label order looks shuffled", tags=("generic",)),
        Component("kernel.value_stats", B + "analyzers:ValueStats",
                  "Per-channel mean and std, streamed; suggests normalisation", tags=("generic",)),
    ]


@hookimpl
def kernel_metrics():
    m = B + "metrics:"
    return [
        Component("kernel.accuracy", m + "accuracy", "Share of correct predictions", tags=("classification",)),
        Component("kernel.top_k_accuracy", m + "top_k_accuracy", "Target among the k best scores",
                  tags=("classification",)),
        Component("kernel.precision", m + "precision", "Precision, macro-averaged over classes",
                  tags=("classification",)),
        Component("kernel.recall", m + "recall", "Recall, macro-averaged over classes", tags=("classification",)),
        Component("kernel.f1", m + "f1", "F1 score, macro-averaged over classes", tags=("classification",)),
        Component("kernel.confusion_matrix", m + "confusion_matrix", "Counts of (target, prediction) pairs",
                  tags=("classification",)),
        Component("kernel.mse", m + "mse", "Mean squared error", tags=("regression",)),
        Component("kernel.mae", m + "mae", "Mean absolute error", tags=("regression",)),
        Component("kernel.iou", m + "iou", "Jaccard index (intersection over union), per-pixel or per-label",
                  tags=("segmentation", "classification")),
    ]


@hookimpl
def kernel_trainers():
    return [Component("kernel.supervised", "kernel.training.supervised:Supervised",
                      "Supervised training loop with automatic defaults", tags=("generic",))]


@hookimpl
def kernel_callbacks():
    c = "kernel.training.callbacks:"
    return [
        Component("kernel.early_stopping", c + "EarlyStopping", "Stop when the monitored metric stops improving"),
        Component("kernel.stop_on_nan", c + "StopOnNaN", "Fail the run when the loss becomes NaN or infinite"),
        Component("kernel.checkpoint", c + "Checkpoint", "Write last.pt every epoch and best.pt on improvement"),
        Component("kernel.tensorboard", c + "TensorBoard", "Write TensorBoard event files"),
        Component("kernel.progress", c + "Progress", "Progress bars on a terminal, periodic lines otherwise"),
    ]


@hookimpl
def kernel_commands(cli):
    from ..commands import register

    register(cli)

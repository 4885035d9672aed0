"""Metrics, all from torchmetrics. ``task`` and ``num_classes`` come from the data facts."""
from __future__ import annotations


def _task(task: str, num_classes: int) -> dict:
    if task == "multilabel":
        return {"task": "multilabel", "num_labels": num_classes}
    if num_classes == 2 and task == "binary":
        return {"task": "binary"}
    return {"task": "multiclass", "num_classes": num_classes}


def accuracy(num_classes: int, task: str = "multiclass", average: str = "micro"):
    """Share of correct predictions.

    Args:
        num_classes: number of classes (filled from the data).
        task: "multiclass", "multilabel" or "binary" (filled from the data).
        average: "micro" (over samples) or "macro" (mean over classes).
    """
    from torchmetrics import Accuracy

    return Accuracy(average=average, **_task(task, num_classes))


def top_k_accuracy(num_classes: int, k: int = 5):
    """Share of samples whose target is among the k highest scores.

    Args:
        num_classes: number of classes (filled from the data).
        k: how many of the best scores count.
    """
    from torchmetrics import Accuracy

    return Accuracy(task="multiclass", num_classes=num_classes, top_k=min(k, num_classes))


def precision(num_classes: int, task: str = "multiclass", average: str = "macro"):
    """Precision.

    Args:
        num_classes: number of classes (filled from the data).
        task: "multiclass", "multilabel" or "binary" (filled from the data).
        average: "macro", "micro" or "weighted".
    """
    from torchmetrics import Precision

    return Precision(average=average, **_task(task, num_classes))


def recall(num_classes: int, task: str = "multiclass", average: str = "macro"):
    """Recall.

    Args:
        num_classes: number of classes (filled from the data).
        task: "multiclass", "multilabel" or "binary" (filled from the data).
        average: "macro", "micro" or "weighted".
    """
    from torchmetrics import Recall

    return Recall(average=average, **_task(task, num_classes))


def f1(num_classes: int, task: str = "multiclass", average: str = "macro"):
    """F1 score.

    Args:
        num_classes: number of classes (filled from the data).
        task: "multiclass", "multilabel" or "binary" (filled from the data).
        average: "macro", "micro" or "weighted".
    """
    from torchmetrics import F1Score

    return F1Score(average=average, **_task(task, num_classes))


def confusion_matrix(num_classes: int, task: str = "multiclass", normalize: str | None = None):
    """Counts of (target, prediction) pairs, a num_classes x num_classes tensor.

    Args:
        num_classes: number of classes (filled from the data).
        task: "multiclass", "multilabel" or "binary" (filled from the data).
        normalize: None, "true", "pred" or "all".
    """
    from torchmetrics import ConfusionMatrix

    return ConfusionMatrix(normalize=normalize, **_task(task, num_classes))


def mse():
    """Mean squared error."""
    from torchmetrics import MeanSquaredError

    return MeanSquaredError()


def mae():
    """Mean absolute error."""
    from torchmetrics import MeanAbsoluteError

    return MeanAbsoluteError()


def iou(num_classes: int, task: str = "multiclass"):
    """Jaccard index (intersection over union), averaged over classes.

    Args:
        num_classes: number of classes (filled from the data).
        task: "multiclass", "multilabel" or "binary" (filled from the data).
    """
    from torchmetrics import JaccardIndex

    return JaccardIndex(**_task(task, num_classes))

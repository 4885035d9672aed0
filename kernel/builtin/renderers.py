"""Generic renderers: labels as text or a bar chart, and a fallback picture of any tensor."""
from __future__ import annotations


from ..figures import figure_to_image, pyplot


class Labels:
    """A class label as its name, or class scores as a bar chart of probabilities."""

    def __init__(self, top: int = 10):
        """
        Args:
            top: how many classes a probability chart shows at most.
        """
        self.top = top

    def score(self, meta) -> float:
        shape, classes = tuple(meta["shape"]), meta.get("classes")
        if meta["role"] in ("input", "attribution"):
            return 0.0
        if shape == () and "int" in meta["dtype"]:
            return 0.9
        if len(shape) == 1 and classes and shape[0] == len(classes):
            return 0.8
        return 0.0

    def render(self, tensor, context):
        import torch

        classes = context.get("classes")
        plt = pyplot()
        t = torch.as_tensor(tensor).detach().cpu()
        if t.ndim == 0:
            index = int(t)
            name = classes[index] if classes and 0 <= index < len(classes) else str(index)
            fig, ax = plt.subplots(figsize=(2.5, 0.9))
            ax.axis("off")
            ax.text(0.5, 0.5, name, ha="center", va="center", fontsize=14)
            return figure_to_image(fig)
        probs = t.float()
        if probs.min() < 0 or abs(float(probs.sum()) - 1) > 1e-3:
            probs = probs.softmax(0)
        k = min(self.top, probs.numel())
        values, order = probs.topk(k)
        names = [classes[i] if classes else str(i) for i in order.tolist()]
        fig, ax = plt.subplots(figsize=(3, 0.3 * k + 0.6))
        ax.barh(range(k)[::-1], values.tolist(), color="#4C72B0")
        ax.set_yticks(range(k)[::-1], names)
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability")
        return figure_to_image(fig)


class Values:
    """Any tensor as a picture: a line for 1-D, a heat map for 2-D, a histogram otherwise."""

    def score(self, meta) -> float:
        # the last resort: every other renderer wins when it can. Not for attributions: a line or a
        # histogram of one says nothing about the input; the plugin that makes them draws them
        return 0.0 if meta.get("role") == "attribution" else 0.01

    def render(self, tensor, context):
        import torch

        plt = pyplot()
        t = torch.as_tensor(tensor).detach().cpu()
        if t.is_complex():
            t = t.abs()
        t = t.float()
        fig, ax = plt.subplots(figsize=(3.2, 2.4))
        if t.ndim == 0:
            ax.axis("off")
            ax.text(0.5, 0.5, f"{float(t):.4g}", ha="center", va="center", fontsize=14)
        elif t.ndim == 1:
            ax.plot(t.numpy(), lw=1)
        elif t.ndim == 2 or (t.ndim == 3 and t.shape[0] == 1):
            im = ax.imshow(t.reshape(t.shape[-2], t.shape[-1]).numpy(), cmap="viridis", aspect="auto")
            fig.colorbar(im, ax=ax)
        else:
            ax.hist(t.flatten().numpy(), bins=40)
            ax.set_title(f"values of a {tuple(t.shape)} tensor", fontsize=8)
        return figure_to_image(fig)

"""The fallback picture of an attribution, for a domain that ships no renderer of its own: signed
bars for a vector (a tabular sample's features), a signed heat map for anything with two or more
axes. Domain plugins draw better ones (an overlay on the image, tinted tokens) and score higher."""
from __future__ import annotations

#: below the domain plugins' attribution renderers (0.9 and up): they know what the input is
SCORE = 0.5
MAX_BARS = 64


class Heatmap:
    """Signed bars for a 1-D attribution, a signed heat map (channels summed) for more axes."""

    def score(self, meta) -> float:
        return SCORE if meta.get("role") == "attribution" and len(tuple(meta.get("shape") or ())) >= 1 else 0.0

    def render(self, tensor, context):
        import torch

        from kernel import figure_to_image, pyplot

        a = torch.as_tensor(tensor).detach().float().cpu()
        context = context or {}
        plt = pyplot()
        title = _title(context)
        if a.ndim == 1:
            values = a[:MAX_BARS]
            fig, ax = plt.subplots(figsize=(max(4, 0.22 * len(values) + 1.5), 3), dpi=100)
            colours = ["#c0392b" if v > 0 else "#2e6da4" for v in values.tolist()]
            ax.bar(range(len(values)), values.tolist(), color=colours)
            ax.axhline(0, color="#555555", linewidth=0.8)
            ax.set_xlabel("feature" + (f" (first {MAX_BARS} of {a.numel()})" if a.numel() > MAX_BARS else ""))
            ax.set_ylabel("attribution")
        else:
            grid = a.sum(0) if a.ndim >= 3 else a
            while grid.ndim > 2:
                grid = grid.sum(0)
            limit = float(grid.abs().max()) or 1.0
            fig, ax = plt.subplots(figsize=(4, 3.4), dpi=100)
            image = ax.imshow(grid.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
            fig.colorbar(image, ax=ax, fraction=0.046)
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        return figure_to_image(fig)  # closes the figure


def _title(context) -> str:
    method = str(context.get("method") or "attribution").replace("interpret.", "")
    explained, classes = context.get("explained"), context.get("classes")
    if explained is None:
        return method
    name = classes[explained] if classes and 0 <= explained < len(classes) else explained
    return f"{method} for class {name}"

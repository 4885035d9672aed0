"""Matplotlib without a display: the one place that picks the Agg backend and turns a figure into
a PIL image (renderers and analyzers of every plugin draw through these two)."""
from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed, safe in workers and servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_to_image(fig, dpi: int = 80):
    """A matplotlib figure as an RGB PIL image; the figure is closed (pyplot keeps open ones alive)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")

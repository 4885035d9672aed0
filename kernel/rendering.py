"""Which renderer draws a tensor, and what it drew as a file.

The choice, for one tensor described by ``meta``: the renderer with the highest ``score(meta)``
wins. Scores tie often (two plugins each sure of "their" 3-D float tensor), so ties are broken by
a fixed rule, never by the order plugins happen to load in:

1. the higher score;
2. then the renderer whose component tags share more tags with the dataset's tags (an audio
   dataset's spectrogram goes to ``audio.spectrogram``, not to ``vision.bitmap``);
3. then a plugin's renderer before the kernel's generic ones (tagged ``generic``);
4. then the name, in alphabetical order.

The scale of scores is documented in docs/plugin-guide.md ("Renderers").
"""
from __future__ import annotations

from .component import Media
from .errors import KernelError


def rank_key(name: str, score: float, component_tags, dataset_tags) -> tuple:
    """What orders candidate renderers, best first when sorted (see the module's rule)."""
    shared = len(set(component_tags) & set(dataset_tags))
    generic = "generic" in component_tags
    return (-score, -shared, generic, name)


def choose_renderer(catalog, meta: dict, notes: list | None = None):
    """``(name, renderer)`` of the best renderer for a tensor; a KernelError when none can draw it.

    A renderer whose ``score`` raises is left out, with a line in ``notes``.
    """
    candidates = []
    for comp in catalog.list("renderer"):
        try:
            renderer = catalog.target(comp)()
            score = float(renderer.score(meta))
        except Exception as exc:  # a plugin's bug must not stop the others from drawing
            if notes is not None:
                notes.append(f"renderer {comp.name} failed to score: {exc}")
            continue
        if score > 0:
            candidates.append((rank_key(comp.name, score, comp.tags, meta.get("tags") or ()), comp.name, renderer))
    if not candidates:
        raise KernelError(f"no renderer can draw a {meta['role']} of shape {meta['shape']}")
    _, name, renderer = min(candidates, key=lambda c: c[0])
    return name, renderer


def as_media(rendered, who: str = "renderer") -> Media:
    """What a renderer returned, as a :class:`kernel.Media`: a PIL image becomes a PNG, text an
    HTML page; a Media passes through."""
    if isinstance(rendered, Media):
        return rendered
    if isinstance(rendered, str):
        return Media("html", rendered.encode("utf-8"), ".html")
    if hasattr(rendered, "save") and hasattr(rendered, "mode"):  # a PIL image, without importing PIL
        import io

        from PIL.PngImagePlugin import PngInfo

        # text the renderer put in the image's info (the words a text picture drew) stays in the file
        text = PngInfo()
        for key, value in (getattr(rendered, "info", None) or {}).items():
            if isinstance(key, str) and isinstance(value, str):
                text.add_itxt(key, value)
        buf = io.BytesIO()
        rendered.save(buf, format="PNG", pnginfo=text)
        return Media("image", buf.getvalue(), ".png")
    raise KernelError(f"{who} returned a {type(rendered).__name__}; a renderer returns a PIL image, "
                      f"HTML text or a kernel.Media")

"""A picture of a text sample: its tokens in boxes, unknown tokens in red, specials in grey.

The sample is a 1-D tensor of token ids; the vocabulary (data fact ``vocabulary``, offered by
``text.vocab``) turns them back into tokens. Targets and predictions are left to the kernel's
label renderer.
"""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

WIDTH = 640
PAD = 8
COLOURS = {"token": ("#e8eef7", "#1f2d3d"), "unknown": ("#f4c7c3", "#a50e0e"), "special": ("#e0e0e0", "#666666")}
MAX_TOKENS = 400  # a longer text is cut, and says so


class Tokens:
    """Token ids as the tokens they stand for, each in a box; ``<unk>`` stands out in red."""

    def score(self, meta) -> float:
        shape, dtype = tuple(meta.get("shape") or ()), str(meta.get("dtype", ""))
        if meta.get("role") != "input" or len(shape) != 1 or "int" not in dtype:
            return 0.0
        return 0.9 if "text" in tuple(meta.get("tags") or ()) else 0.0

    def render(self, tensor, context) -> Image.Image:
        import torch

        facts = (context or {}).get("facts") or {}
        vocabulary = facts.get("vocabulary")
        unk, pad = facts.get("unk_idx"), facts.get("padding_idx")
        ids = [int(i) for i in torch.as_tensor(tensor).flatten().tolist()]
        while ids and pad is not None and ids[-1] == pad:  # trailing padding is not part of the text
            ids.pop()
        shown = ids[:MAX_TOKENS]
        boxes = []
        for i in shown:
            if vocabulary is not None and 0 <= i < len(vocabulary):
                token = vocabulary[i]
            else:
                token = f"#{i}"
            kind = "unknown" if i == unk else ("special" if token.startswith("<") and token.endswith(">")
                                               and vocabulary is not None and i < 4 else "token")
            boxes.append((token, kind))
        unknown = sum(1 for _, k in boxes if k == "unknown")
        header = f"{len(ids)} tokens, {unknown} unknown" + (f" (first {MAX_TOKENS} shown)" if len(ids) > MAX_TOKENS else "")
        if vocabulary is None:
            header += " - no vocabulary known: ids shown"
        return draw(header, boxes)


def draw(header: str, boxes) -> Image.Image:
    """The header line, then each ``(token, kind)`` in a box of its kind's colours."""
    return draw_boxes([header], [(token, *COLOURS[kind], None) for token, kind in boxes])


def draw_boxes(header_lines, boxes) -> Image.Image:
    """Header lines, then boxes ``(label, fill, ink, outline or None)`` flowed into lines of WIDTH."""
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = 24
    x, y = PAD, PAD + 18 * len(header_lines) + 4
    placed = []
    for token, fill, ink, outline in boxes:
        label = token.replace("\n", "\\n") or " "
        w = int(probe.textlength(label, font=font)) + 8
        if x + w > WIDTH - PAD and x > PAD:
            x, y = PAD, y + line_h
        placed.append((x, y, w, label, fill, ink, outline))
        x += w + 4
    height = y + line_h + PAD
    image = Image.new("RGB", (WIDTH, height), "white")
    pen = ImageDraw.Draw(image)
    for i, line in enumerate(header_lines):
        pen.text((PAD, PAD + 18 * i), line, fill="#333333", font=small)
    for x, y, w, label, fill, ink, outline in placed:
        pen.rounded_rectangle((x, y, x + w, y + line_h - 4), radius=4, fill=fill, outline=outline,
                              width=2 if outline else 0)
        pen.text((x + 4, y + 2), label, fill=ink, font=font)
    return image

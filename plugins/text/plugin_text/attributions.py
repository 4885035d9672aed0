"""A picture of a text attribution: the sample's words in boxes tinted by their attribution.

The interpretability plugin asks the kernel's renderer choice to draw each sample's attribution
(meta role ``"attribution"``, one value per token); ``text.attribution`` draws those of token-id
inputs. Subword pieces are merged back into words, their values summed, so a reader sees words:
WordPiece continues a word with ``##x``, SentencePiece (``text.unigram``) and byte-level BPE start
one with ``▁x`` / ``Ġx``, and a ``x</w>`` piece ends one. ``text.bpe`` pieces carry no such mark, so
they are shown as the pieces they are. Padding is dropped; unknown tokens keep their tint and get
a dark red outline and a ``?``.

What was drawn is also given as data, for tests and tools: the returned PIL image's
``info["tokens"]`` is the JSON text of ``[[word, value], ...]`` in reading order and
``info["unknown"]`` the JSON list of the positions of unknown words in it. (PIL keeps ``info`` on
the image object; a PNG written by ``image.save`` keeps it only when saved with ``pnginfo``.)
"""
from __future__ import annotations

import json

from PIL import Image

from .renderers import MAX_TOKENS, draw_boxes

POSITIVE = (214, 39, 40)  # red: evidence for the explained class
NEGATIVE = (31, 119, 180)  # blue: evidence against it
UNKNOWN_OUTLINE = "#a50e0e"  # the ink of text.tokens' unknown tokens
MAX_TINT = 0.8  # the strongest word keeps a little white, so its ink stays readable
TOP = 3  # words named in the header for and against the class
WORD_START = ("▁", "Ġ")  # SentencePiece / byte-level BPE: a piece that starts a word


class TokenAttributions:
    """A text sample's words, each in a box tinted by its attribution: red for the class, blue against."""

    def score(self, meta) -> float:
        if meta.get("role") != "attribution" or "text" not in tuple(meta.get("tags") or ()):
            return 0.0
        input_shape = tuple(meta.get("input_shape") or ())
        return 0.95 if len(input_shape) == 1 and "int" in str(meta.get("input_dtype", "")) else 0.0

    def render(self, tensor, context) -> Image.Image:
        context = context or {}
        facts = context.get("facts") or {}
        tokens = token_values(context.get("input"), tensor, facts)
        words = merge_words(tokens)
        shown = words[:MAX_TOKENS]
        scale = max((abs(w["value"]) for w in words), default=0.0) or 1.0
        boxes = [_box(w, scale) for w in shown]
        image = draw_boxes(header_lines(context, words, scale, len(shown)), boxes)
        image.info["tokens"] = json.dumps([[w["word"], w["value"]] for w in shown], ensure_ascii=False)
        image.info["unknown"] = json.dumps([i for i, w in enumerate(shown) if w["kind"] == "unknown"])
        return image


def token_values(ids, attribution, facts: dict) -> list[tuple[str, float, str]]:
    """``(token, value, kind)`` per token, padding dropped; kind is "token", "unknown" or "special".

    ``ids`` is the sample's 1-D token ids; without them (or a vocabulary) tokens show as ``#id``.
    An attribution with an embedding dimension left ``(L, E)`` is summed over it.
    """
    import torch

    values = torch.nan_to_num(torch.as_tensor(attribution).detach().cpu().float())
    while values.ndim > 1:
        values = values.sum(-1)
    values = values.reshape(-1).tolist()
    ids = [int(i) for i in torch.as_tensor(ids).reshape(-1).tolist()] if ids is not None else [None] * len(values)
    vocabulary, unk, pad = facts.get("vocabulary"), facts.get("unk_idx"), facts.get("padding_idx")
    out = []
    for i, value in zip(ids, values):
        if i is not None and i == pad:
            continue
        known = vocabulary is not None and i is not None and 0 <= i < len(vocabulary)
        token = vocabulary[i] if known else f"#{i}"
        if (i is not None and i == unk) or token in ("<unk>", "[UNK]"):  # the vocabulary's, or a subword model's
            kind = "unknown"
        elif known and i < 4 and token.startswith("<") and token.endswith(">"):  # text.vocab's specials
            kind = "special"
        else:
            kind = "token"
        out.append((token, float(value), kind))
    return out


def merge_words(tokens) -> list[dict]:
    """Subword pieces joined into words, values summed: ``{"word", "value", "kind"}`` per word.

    A word is unknown when any of its pieces is. The ``▁``/``Ġ`` convention is used only when the
    sample has such pieces: then a piece without the mark continues the word before it; likewise
    ``</w>`` ends a word only when the sample has such pieces.
    """
    marked = any(t.startswith(WORD_START) for t, _, kind in tokens if kind == "token")
    end_marked = any(t.endswith("</w>") for t, _, kind in tokens if kind == "token")  # a word runs to its "x</w>"
    words: list[dict] = []
    open_word = False  # whether the next piece may continue the last word
    for token, value, kind in tokens:
        text, continues, ends = token, False, False
        if kind == "token":
            if token.startswith("##") and len(token) > 2:
                text, continues = token[2:], True
            elif marked:
                continues = not token.startswith(WORD_START)
                text = token[1:] if not continues else token
            elif end_marked:
                continues = True  # joins the last word unless that one ended
            if text.endswith("</w>"):
                text, ends = text[:-4], True
        if continues and open_word and words[-1]["kind"] != "special":
            words[-1]["word"] += text
            words[-1]["value"] += value
        else:
            words.append({"word": text, "value": value, "kind": kind})
        if kind == "unknown":
            words[-1]["kind"] = "unknown"
        open_word = kind != "special" and not ends
    for w in words:
        w["value"] = round(w["value"], 6)
    return words


def _tint(value: float, scale: float) -> tuple[str, float]:
    strength = min(1.0, abs(value) / scale) * MAX_TINT
    colour = POSITIVE if value >= 0 else NEGATIVE
    rgb = tuple(round(255 * (1 - strength) + c * strength) for c in colour)
    return "#%02x%02x%02x" % rgb, strength


def _box(word: dict, scale: float):
    fill, strength = _tint(word["value"], scale)
    ink = "#ffffff" if strength > 0.5 else ("#666666" if word["kind"] == "special" else "#1f2d3d")
    if word["kind"] == "unknown":
        return word["word"] + "?", fill, ink, UNKNOWN_OUTLINE
    return word["word"], fill, ink, None


def header_lines(context, words, scale: float, shown: int) -> list[str]:
    """Method and explained class; the top words for and against it; counts and the full-colour value."""
    classes = context.get("classes")
    explained = context.get("explained")
    name = "?" if explained is None else (str(classes[int(explained)]) if classes and 0 <= int(explained) < len(classes)
                                          else str(int(explained)))
    method = str(context.get("method") or "attribution")
    if context.get("layer"):
        method += f" at {context['layer']}"
    ranked = sorted((w for w in words if w["kind"] != "special"), key=lambda w: w["value"])
    positive = [f"{w['word']} {w['value']:+.3g}" for w in reversed(ranked[-TOP:]) if w["value"] > 0]
    negative = [f"{w['word']} {w['value']:+.3g}" for w in ranked[:TOP] if w["value"] < 0]
    unknown = sum(1 for w in words if w["kind"] == "unknown")
    count = f"{len(words)} words, {unknown} unknown (outlined, ?); full colour at {scale:.3g}"
    if shown < len(words):
        count += f"; first {shown} shown"
    return [f"{method} - explains: {name}",
            f"for: {', '.join(positive) or '-'}    against: {', '.join(negative) or '-'}", count]

"""The token renderer: a PNG of the sample's tokens, unknown tokens in their own colour, chosen by the
kernel for text inputs."""
from __future__ import annotations

import json

import torch
from PIL import Image

import kernel

from plugin_text.renderers import COLOURS
from plugin_text.vocab import UNK
from textfiles import prepared, rows, write_csv

UNKNOWN_FILL = COLOURS["unknown"][0]


def _has_colour(image: Image.Image, hex_colour: str) -> bool:
    rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return any(pixel == rgb for _, pixel in image.convert("RGB").getcolors(maxcolors=1 << 20))


def _plan(tmp_path):
    train = write_csv(tmp_path / "train.csv", rows(2))
    valid = write_csv(tmp_path / "valid.csv", [("a wonderful film", "pos"), ("a zzzunseen film", "neg")])
    return prepared({"use": "text.csv", "path": str(train), "valid_path": str(valid),
                     "transforms": [{"use": "text.basic_english"}, {"use": "text.vocab"}]})


def test_the_kernel_writes_token_pictures_with_unknown_tokens_marked(tmp_path):
    plan = _plan(tmp_path)
    known, unknown = plan.data.splits["valid"][0][0], plan.data.splits["valid"][1][0]
    assert UNK not in known.tolist() and UNK in unknown.tolist()
    entries = kernel.write_samples(plan, tmp_path / "samples", count=2)
    assert [e["renderers"]["input"] for e in entries] == ["text.tokens", "text.tokens"]
    # one sample per class, in class order (neg is class 0): the valid split's second row comes first
    assert [(e["index"], e["target_text"]) for e in entries] == [(1, "neg"), (0, "pos")]
    saved = sorted(json.loads((tmp_path / "samples" / "samples.json").read_text()), key=lambda e: e["index"])
    pictures = [Image.open(tmp_path / "samples" / e["input"]) for e in saved]
    assert all(p.format == "PNG" and p.width == 640 for p in pictures)
    assert not _has_colour(pictures[0], UNKNOWN_FILL)  # every token known: nothing in the unknown colour
    assert _has_colour(pictures[1], UNKNOWN_FILL)  # "zzzunseen" is <unk>: marked


def test_trailing_padding_is_not_drawn_and_ids_without_a_vocabulary_still_draw(tmp_path):
    from plugin_text.renderers import Tokens

    plan = _plan(tmp_path)
    x = plan.data.splits["valid"][1][0]
    context = {"facts": plan.data.facts}
    renderer = Tokens()
    plain = renderer.render(x, context)
    padded = renderer.render(torch.cat([x, torch.full((30,), plan.data.facts["padding_idx"])]), context)
    assert plain.size == padded.size and plain.tobytes() == padded.tobytes()
    bare = renderer.render(torch.tensor([5, 6, 7]), {})
    assert isinstance(bare, Image.Image) and not _has_colour(bare, UNKNOWN_FILL)


def test_scores_text_inputs_only():
    from plugin_text.renderers import Tokens

    r = Tokens()
    text = {"shape": (12,), "dtype": "int64", "role": "input", "tags": ("text", "classification")}
    assert r.score(text) > 0.5
    assert r.score({**text, "role": "target", "shape": ()}) == 0
    assert r.score({**text, "tags": ("audio",)}) == 0
    assert r.score({**text, "dtype": "float32"}) == 0
    assert r.score({**text, "shape": (3, 32, 32)}) == 0

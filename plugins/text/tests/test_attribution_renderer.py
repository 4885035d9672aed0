"""text.attribution: the kernel's renderer choice gives it token attributions; it draws the sample's words
tinted by their attribution, subword pieces merged into words, unknown words marked, padding dropped,
and says what it drew in the image's ``info``."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import kernel
from kernel import choose_renderer
from plugin_text.attributions import UNKNOWN_OUTLINE, TokenAttributions, header_lines, merge_words, token_values
from plugin_text.renderers import Tokens
from plugin_text.vocab import UNK
from textfiles import prepared, rows, write_csv


def _has_colour(image: Image.Image, hex_colour: str) -> bool:
    rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return any(pixel == rgb for _, pixel in image.convert("RGB").getcolors(maxcolors=1 << 20))


def attribution_meta(attribution, ids, tags=("text", "classification")):
    """The meta the interpretability plugin gives the renderer choice (the contract's section 2)."""
    return {"role": "attribution", "shape": tuple(attribution.shape), "dtype": "float32", "tags": tags,
            "classes": ["neg", "pos"], "input_shape": tuple(ids.shape), "input_dtype": str(ids.dtype).replace("torch.", "")}


def context(plan, ids, attribution, **more):
    return {"input": ids, "attribution": attribution, "facts": plan.data.facts, "classes": plan.data.classes,
            "explained": 1, "method": "interpret.integrated_gradients", "layer": None, **more}


def drawn(picture):
    return [tuple(pair) for pair in json.loads(picture.info["tokens"])], json.loads(picture.info["unknown"])


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    """basic_english then the real text.vocab, fitted on a few sentences; the valid split has an unknown word."""
    folder = tmp_path_factory.mktemp("texts")
    train = write_csv(folder / "train.csv", rows(2))
    valid = write_csv(folder / "valid.csv", [("a wonderful film", "pos"), ("a zzzunseen, boring film", "neg")])
    return prepared({"use": "text.csv", "path": str(train), "valid_path": str(valid),
                     "transforms": [{"use": "text.basic_english"}, {"use": "text.vocab"}]})


def test_the_kernel_chooses_it_for_token_attributions(plan):
    ids = plan.data.splits["valid"][1][0]
    meta = attribution_meta(torch.randn(len(ids)), ids, tags=tuple(plan.dataset_tags))
    name, renderer = choose_renderer(kernel.get_catalog(), meta)
    assert name == "text.attribution" and isinstance(renderer, TokenAttributions)
    assert Tokens().score(meta) == 0  # the plain token picture is for inputs only
    assert renderer.score({**meta, "tags": ("vision",)}) == 0 and renderer.score({**meta, "role": "input"}) == 0
    assert renderer.score({**meta, "input_dtype": "float32", "input_shape": (3, 8, 8)}) == 0


def test_drawn_words_are_the_texts_words_with_their_values_and_the_unknown_marked(plan):
    ids = plan.data.splits["valid"][1][0]  # "a zzzunseen, boring film"
    assert UNK in ids.tolist()
    attribution = torch.tensor([0.1, -0.2, 0.0, -0.9, 0.4])
    picture = TokenAttributions().render(attribution, context(plan, ids, attribution))
    words, unknown = drawn(picture)
    assert [w for w, _ in words] == ["a", "<unk>", ",", "boring", "film"]
    assert [v for _, v in words] == pytest.approx(attribution.tolist())
    assert unknown == [1]
    assert picture.width == 640 and _has_colour(picture, UNKNOWN_OUTLINE)  # the unknown word's outline
    known = plan.data.splits["valid"][0][0]
    plain = TokenAttributions().render(torch.ones(len(known)), context(plan, known, torch.ones(len(known))))
    assert drawn(plain)[1] == [] and not _has_colour(plain, UNKNOWN_OUTLINE)


def test_padding_is_dropped_and_strong_words_are_tinted_more(plan):
    ids = plan.data.splits["valid"][1][0]
    pad = plan.data.facts["padding_idx"]
    padded = torch.cat([ids, torch.full((6,), pad)])
    attribution = torch.cat([torch.tensor([0.0, 0.0, 0.0, -1.0, 1.0]), torch.full((6,), 5.0)])
    picture = TokenAttributions().render(attribution, context(plan, padded, attribution))
    words, _ = drawn(picture)
    assert [w for w, _ in words] == ["a", "<unk>", ",", "boring", "film"]  # padding's large values are not drawn
    colours = {rgb for _, rgb in picture.convert("RGB").getcolors(maxcolors=1 << 20)}
    # the strongest word for the class is deep red, the one against deep blue
    assert any(r > 200 and g < 110 and b < 110 for r, g, b in colours)
    assert any(b > 170 and r < 100 for r, g, b in colours)


def test_the_header_names_method_class_and_top_words(plan):
    ids = plan.data.splits["valid"][1][0]
    attribution = torch.tensor([0.1, -0.2, 0.0, -0.9, 0.4])
    ctx = context(plan, ids, attribution, layer="embedding")
    words = merge_words(token_values(ids, attribution, plan.data.facts))
    header = "\n".join(header_lines(ctx, words, 0.9, len(words)))
    assert "interpret.integrated_gradients at embedding" in header and "explains: pos" in header
    assert "for: film +0.4, a +0.1" in header and "against: boring -0.9, <unk> -0.2" in header
    assert "5 words, 1 unknown" in header


@pytest.mark.parametrize("pieces,words", [
    # WordPiece (text.wordpiece): "##" continues a word
    (["a", "wonder", "##ful", "film", "[UNK]", "##s"], ["a", "wonderful", "film", "[UNK]s"]),
    # SentencePiece (text.unigram) and byte-level BPE: a mark starts a word; a bare mark, then pieces
    (["▁a", "▁wonder", "ful", "▁", "d", "ul", "l"], ["a", "wonderful", "dull"]),
    (["Ġa", "Ġwonder", "ful"], ["a", "wonderful"]),
    # end-of-word pieces
    (["wonder", "ful</w>", "film</w>"], ["wonderful", "film"]),
    # text.bpe's pieces carry no mark: shown as they are
    (["a", "wonderful", "l", "y"], ["a", "wonderful", "l", "y"]),
])
def test_subword_pieces_are_merged_into_words_with_summed_values(pieces, words):
    tokens = [(p, 1.0, "unknown" if p == "[UNK]" else "token") for p in pieces]
    merged = merge_words(tokens)
    assert [w["word"] for w in merged] == words
    assert sum(w["value"] for w in merged) == pytest.approx(len(pieces))
    assert [w["kind"] for w in merged if w["word"].startswith("[UNK]")] in ([], ["unknown"])


def test_a_trained_wordpiece_tokenizer_gives_whole_words(tmp_path):
    train = write_csv(tmp_path / "train.csv", rows(3))
    plan = prepared({"use": "text.csv", "path": str(train),
                     "transforms": [{"use": "text.wordpiece", "vocab_size": 60, "min_frequency": 1},
                                    {"use": "text.vocab"}]})
    x, _ = plan.data.splits["train"][0]
    tokens = plan.data.facts["vocabulary"]
    pieces = [tokens[i] for i in x.tolist()]
    picture = TokenAttributions().render(torch.ones(len(x)), context(plan, x, torch.ones(len(x))))
    words, _ = drawn(picture)
    assert "".join(w for w, _ in words) == "".join(p.removeprefix("##") for p in pieces)
    assert len(words) == sum(1 for p in pieces if not p.startswith("##"))
    assert sum(v for _, v in words) == pytest.approx(len(pieces))

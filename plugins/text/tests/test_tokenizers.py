"""Tokenizers: torchtext's basic_english rule for rule, and subwords learnt from the training split."""
from __future__ import annotations

import pytest

import kernel
from textfiles import prepared, rows, write_csv

# (text, what torchtext.data.get_tokenizer("basic_english") returns for it)
BASIC_ENGLISH = [
    ("You can now install TorchText using pip!", ["you", "can", "now", "install", "torchtext", "using", "pip", "!"]),
    ("Don't stop; it's great: (really)?", ["don", "'", "t", "stop", "it", "'", "s", "great", "(", "really", ")", "?"]),
    ('He said "hello", then left.', ["he", "said", "hello", ",", "then", "left", "."]),
    ("First line.<br />Second   line\tthird", ["first", "line", ".", "second", "line", "third"]),
    ("3.5 stars... e.g. OK", ["3", ".", "5", "stars", ".", ".", ".", "e", ".", "g", ".", "ok"]),
    ("", []),
]


@pytest.mark.parametrize("text,expected", BASIC_ENGLISH)
def test_basic_english_matches_torchtext(text, expected):
    assert kernel.create("text.basic_english")(text) == expected


def _torchtext_basic_english(line: str) -> list[str]:
    """torchtext.data.utils._basic_english_normalize, copied: the reference the plugin's faster rules meet."""
    import re

    patterns = [r"\'", r"\"", r"\.", r"<br \/>", r",", r"\(", r"\)", r"\!", r"\?", r"\;", r"\:", r"\s+"]
    replacements = [" '  ", "", " . ", " ", " , ", " ( ", " ) ", " ! ", " ? ", " ", " ", " "]
    line = line.lower()
    for pattern, replacement in zip(patterns, replacements):
        line = re.compile(pattern).sub(replacement, line)
    return line.split()


TRICKY = ['<br "/>quotes removed first make a break', "<BR />upper", "no\u00a0break\u2028space\u3000ideographic",
          "it's 'quoted' \"twice\"", "a;b:c", "...!!!???", "(nested (brackets))", "\t\n\r\x0b\x0c", "İstanbul ΣΑΣ"]


def test_basic_english_equals_torchtexts_rules_on_a_whole_corpus():
    tokenize = kernel.create("text.basic_english")
    texts = [t for t, _ in kernel.create("text.rotten_tomatoes")] + TRICKY
    different = [t for t in texts if tokenize(t) != _torchtext_basic_english(t)]
    assert not different, different[:3]


def test_whitespace_and_char():
    assert kernel.create("text.whitespace")("Great film, really!") == ["Great", "film,", "really!"]
    assert kernel.create("text.whitespace", lower=True)("Great Film") == ["great", "film"]
    assert kernel.create("text.char")("Ab c") == ["A", "b", " ", "c"]
    assert kernel.create("text.char", lower=True)("Ab") == ["a", "b"]


def test_a_tokenizer_given_ids_says_where_it_belongs():
    import torch

    with pytest.raises(kernel.KernelError, match="tokenizer first in dataset.transforms"):
        kernel.create("text.basic_english")(torch.tensor([1, 2]))


def _split_files(tmp_path):
    """A training file, and a validation file whose words never occur in training."""
    train = write_csv(tmp_path / "train.csv", rows(4))
    valid = write_csv(tmp_path / "valid.csv", [("zyxwvut qqqjjj zyxwvut qqqjjj", "pos"),
                                               ("qqqjjj zyxwvut kkkxxx", "neg")] * 20)
    return train, valid


@pytest.mark.parametrize("name,size", [("text.bpe", 60), ("text.wordpiece", 60), ("text.unigram", 40)])
def test_subwords_learn_from_the_training_split_only(tmp_path, name, size):
    train, valid = _split_files(tmp_path)
    plan = prepared({"use": "text.csv", "path": str(train), "valid_path": str(valid),
                     "transforms": [{"use": name, "vocab_size": size, "min_frequency": 1}, {"use": "text.vocab"}]})
    tokenizer = plan.data.transforms[0]
    learnt = tokenizer.tokenizer.get_vocab()
    assert len(learnt) == size  # the training split has enough text for every requested subword
    # letters that only the validation split has cannot be in any piece
    train_letters = set("".join(t for t, _ in rows()).lower())
    valid_only = set("zyxwvut qqqjjj kkkxxx") - train_letters - {" "}
    assert valid_only >= {"z", "q", "x"}
    pieces = [p for p in learnt if p not in ("[UNK]", "<unk>")]
    assert not any(ch in piece for piece in pieces for ch in valid_only)
    # training words come out whole or in learnt pieces
    tokens = tokenizer("a wonderful film")
    assert "".join(t.replace("▁", "").replace("##", "") for t in tokens) == "awonderfulfilm"
    assert all(t in learnt for t in tokens)


def test_subword_state_survives_a_checkpoint(tmp_path):
    import torch

    train, _ = _split_files(tmp_path)
    from plugin_text.datasets import csv_dataset

    bpe = kernel.create("text.bpe", vocab_size=50, min_frequency=1).fit(csv_dataset(str(train)))
    state = torch.load(_saved(tmp_path, bpe.state_dict()), weights_only=True)
    again = kernel.create("text.bpe", vocab_size=50)
    again.load_state_dict(state)
    assert again("great acting, boring story") == bpe("great acting, boring story")


def _saved(tmp_path, state):
    import torch

    path = tmp_path / "state.pt"
    torch.save(state, path)
    return path


def test_an_untrained_subword_tokenizer_says_so():
    with pytest.raises(kernel.KernelError, match="not trained"):
        kernel.create("text.wordpiece")("text")
    with pytest.raises(kernel.KernelError, match="vocab_size must be at least 2"):
        kernel.create("text.bpe", vocab_size=1)

"""The vocabulary: learnt from the training split only, specials, limits, vectors, and saved with the run."""
from __future__ import annotations

import json

import pytest
import torch

import kernel
from plugin_text.vocab import BOS, EOS, PAD, SPECIALS, UNK

from textfiles import prepared, rows, write_csv


def fitted(texts, **params):
    """A vocabulary fitted on (tokens, label) items, as the kernel fits it on the training split."""
    tokenize = kernel.create("text.whitespace")
    return kernel.create("text.vocab", **params).fit([(tokenize(t), 0) for t in texts])


def test_specials_come_first_then_tokens_by_frequency():
    v = fitted(["b a b", "c b a", "d"])
    assert v.tokens[:4] == list(SPECIALS) == ["<unk>", "<pad>", "<bos>", "<eos>"]
    assert v.tokens[4:] == ["b", "a", "c", "d"]  # most frequent first, ties alphabetical
    assert v(["a", "zzz", "b"]).tolist() == [5, UNK, 4]
    assert v.facts()["vocab_size"] == 8 and v.facts()["padding_idx"] == PAD


def test_min_freq_and_max_size():
    texts = ["a a a b b c", "a b d"]
    assert fitted(texts, min_freq=2).tokens[4:] == ["a", "b"]
    assert fitted(texts, max_size=1).tokens[4:] == ["a"]
    assert fitted(texts, min_freq=1, max_size=3).tokens[4:] == ["a", "b", "c"]


def test_bos_eos_and_truncation():
    v = fitted(["a b c d e"], add_bos=True, add_eos=True, max_length=4)
    ids = v(["a", "b", "c", "d", "e"]).tolist()
    assert ids == [BOS, v.stoi["a"], v.stoi["b"], EOS]  # truncated to 4, <eos> kept
    assert fitted(["a b c"], max_length=2)(["a", "b", "c"]).tolist() == [4, 5]


def test_the_vocabulary_is_built_from_the_training_split_only(tmp_path):
    train = write_csv(tmp_path / "train.csv", rows(2))
    valid = write_csv(tmp_path / "valid.csv", [("unseenword appears only here", "pos"), ("unseenword again", "neg")])
    plan = prepared({"use": "text.csv", "path": str(train), "valid_path": str(valid),
                     "transforms": [{"use": "text.basic_english"}, {"use": "text.vocab"}]})
    vocab = plan.data.transforms[1]
    assert "unseenword" not in vocab.stoi and "wonderful" in vocab.stoi
    x, _ = plan.data.splits["valid"][1]
    assert x[0].item() == UNK
    # the kernel fills the models' facts from the fitted vocabulary
    assert plan.data.facts["vocab_size"] == len(vocab.tokens)
    model, filled = plan.model(0)
    assert filled["vocab_size"] == len(vocab.tokens) and filled["padding_idx"] == PAD


def test_vectors_from_a_glove_file_with_coverage(tmp_path):
    glove = tmp_path / "glove.6B.3d.txt"
    glove.write_text("great 0.1 0.2 0.3\nfilm 1 2 3\nBoring -1 -2 -3\nthe 0 0 1\n", encoding="utf-8")
    v = fitted(["great film", "boring music"], vectors_path=str(glove))
    assert v.vectors.shape == (len(v.tokens), 3)
    assert v.vectors[v.stoi["film"]].tolist() == [1.0, 2.0, 3.0]
    assert v.vectors[PAD].abs().sum() == 0
    assert v.vectors_coverage == pytest.approx(2 / 4)  # great, film of great, film, boring, music
    facts = v.facts()
    assert facts["vectors_coverage"] == 0.5 and facts["pretrained_vectors"].dim == 3
    model = kernel.create("text.embedding_bag", vocab_size=len(v.tokens), num_classes=2, padding_idx=PAD,
                          pretrained_vectors=facts["pretrained_vectors"], freeze_embeddings=True)
    assert torch.equal(model.embedding.weight[v.stoi["film"]], torch.tensor([1.0, 2.0, 3.0]))
    assert not model.embedding.weight.requires_grad


def test_vectors_from_a_fasttext_file(tmp_path):
    vec = tmp_path / "cc.en.4.vec"
    vec.write_text("3 4\ngreat 1 1 1 1\nfilm 2 2 2 2\nmusic 3 3 3 3\n", encoding="utf-8")
    v = fitted(["great film", "great music boring"], vectors_path=str(vec))
    assert v.vectors.shape[1] == 4 and v.vectors_coverage == pytest.approx(3 / 4)


def test_vector_file_problems_are_named(tmp_path):
    with pytest.raises(kernel.KernelError, match="vectors file not found"):
        fitted(["a"], vectors_path=str(tmp_path / "absent.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2\nb 1 2 3\n", encoding="utf-8")
    with pytest.raises(kernel.KernelError, match="bad.txt line 2: 3 numbers, earlier lines have 2"):
        fitted(["a b"], vectors_path=str(bad))


def test_a_vocabulary_given_text_asks_for_a_tokenizer():
    v = fitted(["a"])
    with pytest.raises(kernel.KernelError, match="put a tokenizer before it"):
        v("a whole text")


@pytest.mark.slow
def test_a_trained_run_predicts_raw_text(tmp_path, workspace, cli, workflow_file, reviews_csv):
    """A real (tiny) training run through the CLI; kernel.load gets the fitted vocabulary back."""
    wf = workflow_file(f"""
        name = "tiny-text"
        [dataset]
        use = "text.csv"
        path = "{reviews_csv}"
        transforms = [{{ use = "text.basic_english" }}, {{ use = "text.vocab", bucket = true }}]
        [[models]]
        use = "text.embedding_bag"
        [trainer]
        epochs = 2
        batch_size = 8
        tensorboard = false
        progress = false
        """)
    done = cli("run", wf, "--quiet")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(cli("runs", "--json").stdout)[0]["id"]
    loaded = kernel.load(run_id, workspace=workspace)
    vocab = loaded.transforms[1]
    assert "wonderful" in vocab.stoi  # the fitted state came back from the checkpoint
    out = loaded.predict(["a wonderful film", "some text it never saw, with more words"])
    assert out.shape == (2, 2) and torch.isfinite(out).all()
    assert loaded.classes == ["neg", "pos"]

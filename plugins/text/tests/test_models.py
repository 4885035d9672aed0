"""Text models: sizes filled by the kernel from the vocabulary and the dataset, padding really ignored,
bidirectional recurrent encoders, and a training step for each."""
from __future__ import annotations

import pytest
import torch

import kernel
from plugin_text.vocab import PAD
from textfiles import prepared, rows, write_csv

MODELS = ["text.embedding_bag", "text.cnn", "text.lstm", "text.gru", "text.transformer"]


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    """One plan (splits, fitted vocabulary, facts) with every text model, as `kernel run` builds it."""
    records = rows(3) + [("an unusually long review that goes on and on about the great acting and the dull "
                          "story and the moving music from start to end", "pos")]
    path = write_csv(tmp_path_factory.mktemp("models") / "reviews.csv", records)
    return prepared({"use": "text.csv", "path": str(path),
                     "transforms": [{"use": "text.basic_english"}, {"use": "text.vocab"}]}, models=MODELS)


def _batch(plan, indices):
    ds = plan.data.splits["train"]
    return plan.data.collate_fn([ds[i] for i in indices])


@pytest.mark.parametrize("index,name", list(enumerate(MODELS)), ids=MODELS)
def test_the_kernel_fills_vocab_size_num_classes_and_padding_idx(plan, index, name):
    vocab = plan.data.transforms[1]
    model, filled = plan.model(index)
    assert filled["vocab_size"] == len(vocab.tokens) == plan.data.facts["vocab_size"]
    assert filled["num_classes"] == 2 and filled["padding_idx"] == PAD
    embedding = model.embedding
    assert embedding.num_embeddings == len(vocab.tokens) and embedding.padding_idx == PAD
    inputs, targets = _batch(plan, range(6))
    model.eval()
    with torch.no_grad():
        out = model(**inputs)
    assert out.shape == (6, 2) and torch.isfinite(out).all()


@pytest.mark.parametrize("index,name", list(enumerate(MODELS)), ids=MODELS)
def test_extra_padding_does_not_change_the_output(plan, index, name):
    torch.manual_seed(0)
    model, _ = plan.model(index)
    model.eval()
    ds = plan.data.splits["train"]
    short = [i for i in range(len(ds)) if len(ds[i][0]) < 12][:5]
    longest = max(range(len(ds)), key=lambda i: len(ds[i][0]))
    inputs, _ = _batch(plan, short)
    # the same samples beside a much longer one: more padding in the batch
    beside_long, _ = _batch(plan, short + [longest])
    assert beside_long["input_ids"].shape[1] > inputs["input_ids"].shape[1] + 10
    # and the batch padded further by hand, as any collate function may do
    extra = 7
    padded = {"input_ids": torch.nn.functional.pad(inputs["input_ids"], (0, extra), value=PAD),
              "padding_mask": torch.nn.functional.pad(inputs["padding_mask"], (0, extra), value=True),
              "lengths": inputs["lengths"]}
    with torch.no_grad():
        alone = model(**inputs)
        assert torch.allclose(model(**beside_long)[:len(short)], alone, atol=1e-5)
        assert torch.allclose(model(**padded), alone, atol=1e-5)
        # the ids alone (a plain tensor): the padding is found from padding_idx
        assert torch.allclose(model(padded["input_ids"]), alone, atol=1e-5)
        # one sample on its own, unpadded
        x, _ = ds[short[0]]
        assert torch.allclose(model(x.unsqueeze(0))[0], alone[0], atol=1e-5)


@pytest.mark.parametrize("index,name", list(enumerate(MODELS)), ids=MODELS)
def test_one_training_step_reaches_every_weight_but_the_padding_row(plan, index, name):
    torch.manual_seed(0)
    model, _ = plan.model(index)
    model.train()
    inputs, targets = _batch(plan, range(8))
    loss = torch.nn.functional.cross_entropy(model(**inputs), targets)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    weight = model.embedding.weight
    assert weight.grad[PAD].abs().sum() == 0  # padding is never read
    assert weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["text.lstm", "text.gru"])
def test_recurrent_models_read_both_directions_or_one(plan, name):
    vocab_size = plan.data.facts["vocab_size"]
    both = kernel.create(name, vocab_size=vocab_size, num_classes=2, padding_idx=PAD, hidden_size=16)
    one = kernel.create(name, vocab_size=vocab_size, num_classes=2, padding_idx=PAD, hidden_size=16,
                        bidirectional=False)
    assert both.rnn.bidirectional and not one.rnn.bidirectional
    assert both.fc.in_features == 32 and one.fc.in_features == 16
    inputs, _ = _batch(plan, range(4))
    for model in (both, one):
        model.eval()
        with torch.no_grad():
            assert model(**inputs).shape == (4, 2)
    two_layers = kernel.create(name, vocab_size=vocab_size, num_classes=2, padding_idx=PAD, hidden_size=8,
                               num_layers=2)
    assert two_layers.rnn.num_layers == 2 and two_layers.fc.in_features == 16
    with torch.no_grad():
        assert two_layers.eval()(**inputs).shape == (4, 2)


def test_models_say_what_they_need():
    with pytest.raises(kernel.KernelError, match=r"text.cnn needs vocab_size: put a vocabulary in dataset.transforms"):
        kernel.create("text.cnn", num_classes=2)
    with pytest.raises(kernel.KernelError, match="embed_dim .* must be a multiple of num_heads"):
        kernel.create("text.transformer", vocab_size=10, num_classes=2, embed_dim=30, num_heads=4)

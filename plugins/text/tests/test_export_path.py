"""The recurrent classifiers' export path: without packing, it computes the packed path's function, and
torch.export (dynamic batch) and torch.jit.trace capture it for batches of other sizes and lengths."""
from __future__ import annotations

import warnings

import pytest
import torch

from plugin_text.models import GRUClassifier, LSTMClassifier, RNNClassifier

PAD = 0
VOCAB = 30
CONFIGS = [(cls, bidirectional, layers) for cls in (GRUClassifier, LSTMClassifier)
           for bidirectional in (False, True) for layers in (1, 2)]
IDS = [f"{cls.who}-{'bi' if bi else 'uni'}-{layers}" for cls, bi, layers in CONFIGS]
# torch.export takes about a second a model: each cell uni- and bidirectional, with 1 and 2 layers
EXPORTED = [c for c in CONFIGS if c[1] == ((c[0] is GRUClassifier) == (c[2] == 2))]
EXPORTED_IDS = [i for i, c in zip(IDS, CONFIGS) if c in EXPORTED]


def _model(cls, bidirectional, layers):
    torch.manual_seed(0)
    model = cls(vocab_size=VOCAB, num_classes=3, padding_idx=PAD, embed_dim=8, hidden_size=6, num_layers=layers,
                bidirectional=bidirectional, dropout=0.3)
    return model.eval()


def _batch(lengths, steps, seed=1):
    """Token ids (len(lengths), steps), each row real tokens then padding; a length of 0 is an empty text."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (len(lengths), steps), generator=g)
    for row, n in enumerate(lengths):
        ids[row, n:] = PAD
    return ids


EXAMPLE = _batch([7, 1, 0, 3, 5], 7)  # the full length, 1, an empty text
OTHER = _batch([2, 11, 0], 11, seed=2)  # another batch size and length
OTHER_SAME_LENGTH = _batch([2, 0, 7, 4], 7, seed=3)  # another batch size, other lengths


class Ids(torch.nn.Module):
    """The model called with token ids alone, as exporters call it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids)


def _packed(model, ids, **kw):
    with torch.no_grad():
        return model(ids, **kw)


def _unpacked(model, ids, monkeypatch, **kw):
    with monkeypatch.context() as m, torch.no_grad():
        m.setattr(torch.compiler, "is_exporting", lambda: True)
        return model(ids, **kw)


@pytest.mark.parametrize("cls,bidirectional,layers", CONFIGS, ids=IDS)
def test_the_export_path_computes_the_packed_paths_function(cls, bidirectional, layers, monkeypatch):
    model = _model(cls, bidirectional, layers)
    for ids in (EXAMPLE, OTHER):
        torch.testing.assert_close(_unpacked(model, ids, monkeypatch), _packed(model, ids), atol=1e-5, rtol=0)
    # the batch dict's padding_mask and lengths, as the collate function gives them
    mask = EXAMPLE == PAD
    kw = {"padding_mask": mask, "lengths": (~mask).sum(1)}
    torch.testing.assert_close(_unpacked(model, EXAMPLE, monkeypatch, **kw), _packed(model, EXAMPLE), atol=1e-5,
                               rtol=0)


def test_eager_calls_take_the_packed_path_and_the_state_dict_is_unchanged(monkeypatch):
    model = _model(LSTMClassifier, True, 2)
    monkeypatch.setattr(RNNClassifier, "_unpacked", lambda *a: pytest.fail("eager call took the export path"))
    model.train()(EXAMPLE)
    model.eval()(EXAMPLE)
    assert {k.split(".")[0] for k in model.state_dict()} == {"embedding", "rnn", "fc"}
    assert not list(model.buffers())


@pytest.mark.parametrize("cls,bidirectional,layers", EXPORTED, ids=EXPORTED_IDS)
def test_torch_export_with_a_dynamic_batch(cls, bidirectional, layers):
    model = _model(cls, bidirectional, layers)
    # the sequence axis is specialised by torch.export: aten.gru/aten.lstm's shape propagation unrolls
    # over time (in torch 2.11), so only the batch axis is dynamic
    program = torch.export.export(Ids(model), (EXAMPLE,), dynamic_shapes={"input_ids": {0: torch.export.Dim("batch")}})
    exported = program.module()
    for ids in (EXAMPLE, OTHER_SAME_LENGTH):
        with torch.no_grad():
            torch.testing.assert_close(exported(ids), _packed(model, ids), atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")
@pytest.mark.parametrize("cls,bidirectional,layers", CONFIGS, ids=IDS)
def test_torch_jit_trace(cls, bidirectional, layers):
    model = _model(cls, bidirectional, layers)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("error", torch.jit.TracerWarning)  # nothing of the example is baked in
        traced = torch.jit.trace(Ids(model), (EXAMPLE,))
    for ids in (EXAMPLE, OTHER, OTHER_SAME_LENGTH):
        with torch.no_grad():
            torch.testing.assert_close(traced(ids), _packed(model, ids), atol=1e-5, rtol=0)


def test_embedding_bag_exports_for_any_batch_size():
    """text.embedding_bag's mean written out while exporting equals nn.EmbeddingBag's (padding left out,
    an all-padding text zeros), and the exported program takes a single text: torch.export guards
    nn.EmbeddingBag's offsets on a batch of at least 2."""
    from plugin_text.models import EmbeddingBagClassifier

    torch.manual_seed(0)
    model = EmbeddingBagClassifier(vocab_size=50, num_classes=3, padding_idx=1).eval()
    ids = torch.randint(2, 50, (4, 7))
    mask = torch.zeros(4, 7, dtype=torch.bool)
    mask[1, 3:] = True
    mask[2, :] = True  # an empty text
    ids = ids.masked_fill(mask, 1)
    free = {0: torch.export.Dim.AUTO, 1: torch.export.Dim.AUTO}
    program = torch.export.export(model, (ids, mask), dynamic_shapes=(free, free))
    with torch.no_grad():
        assert torch.allclose(program.module()(ids, mask), model(ids, mask), atol=1e-6)
        one, one_mask = ids[:1, :2], mask[:1, :2]
        assert torch.allclose(program.module()(one, one_mask), model(one, one_mask), atol=1e-6)

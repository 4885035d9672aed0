"""Text classifiers over padded token ids.

Every model is called as ``model(input_ids, padding_mask=None, lengths=None)`` (the batch dict of
``text.vocab``'s collate function, passed as keywords) and returns class scores (batch, classes).
``vocab_size``, ``num_classes`` and ``padding_idx`` come from the data facts; ``pretrained_vectors``
too, when ``text.vocab`` was given a ``vectors_path``. Given only ``input_ids`` (a plain tensor),
a model finds the padding from ``padding_idx``.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import nn

from kernel import KernelError


def _need(vocab_size, num_classes, who: str):
    if vocab_size is None:
        raise KernelError(f"{who} needs vocab_size: put a vocabulary in dataset.transforms "
                          f"([{{ use = \"text.basic_english\" }}, {{ use = \"text.vocab\" }}]) or set it")
    if num_classes is None:
        raise KernelError(f"{who} needs num_classes: the dataset has no classes; set it")


def exporting() -> bool:
    """Whether the model is being captured (torch.export, the dynamo ONNX exporter, TorchScript): some
    models then compute the same function in a form the capture can keep general."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing() or torch.jit.is_scripting()


class TextClassifier(nn.Module):
    """The common part: embedding (optionally pretrained), padding bookkeeping, a linear head."""

    def __init__(self, vocab_size, num_classes, padding_idx, embed_dim, pretrained_vectors, freeze_embeddings,
                 who):
        super().__init__()
        _need(vocab_size, num_classes, who)
        self.padding_idx = padding_idx if padding_idx is not None else 0
        if pretrained_vectors is not None:
            weights = getattr(pretrained_vectors, "weights", pretrained_vectors)
            weights = torch.as_tensor(weights, dtype=torch.float32)
            if weights.shape[0] != vocab_size:
                raise KernelError(f"{who}: pretrained_vectors has {weights.shape[0]} rows for a vocabulary of "
                                  f"{vocab_size}")
            embed_dim = int(weights.shape[1])  # the file decides the width
        self.embed_dim = embed_dim
        self.embedding = self.make_embedding(vocab_size, embed_dim)
        if pretrained_vectors is not None:
            with torch.no_grad():
                self.embedding.weight.copy_(weights)
            self.embedding.weight.requires_grad_(not freeze_embeddings)

    def make_embedding(self, vocab_size, embed_dim):
        return nn.Embedding(vocab_size, embed_dim, padding_idx=self.padding_idx)

    def masks(self, input_ids, padding_mask, lengths):
        """``(padding_mask, lengths)``, derived from the padding index when the batch does not carry them."""
        if padding_mask is None:
            padding_mask = input_ids == self.padding_idx
        if lengths is None:
            lengths = (~padding_mask).sum(1)
        return padding_mask, lengths


class EmbeddingBagClassifier(TextClassifier):
    """The EmbeddingBag classifier of the PyTorch text tutorial: the mean of the token embeddings,
    then one linear layer.

    Args:
        vocab_size: number of token ids (from the vocabulary).
        num_classes: number of classes (from the dataset).
        padding_idx: the padding id, left out of the mean (from the vocabulary).
        embed_dim: width of the embeddings.
        pretrained_vectors: starting embeddings (from text.vocab's vectors_path).
        freeze_embeddings: keep pretrained embeddings fixed.
    """

    def __init__(self, vocab_size: int | None = None, num_classes: int | None = None, padding_idx: int | None = None,
                 embed_dim: int = 64, pretrained_vectors=None, freeze_embeddings: bool = False):
        super().__init__(vocab_size, num_classes, padding_idx, embed_dim, pretrained_vectors, freeze_embeddings,
                         "text.embedding_bag")
        self.fc = nn.Linear(self.embed_dim, num_classes)
        if pretrained_vectors is None:  # the tutorial's initialisation
            self.embedding.weight.data.uniform_(-0.5, 0.5)
        self.fc.weight.data.uniform_(-0.5, 0.5)
        self.fc.bias.data.zero_()

    def make_embedding(self, vocab_size, embed_dim):
        from kernel import fused

        return fused.EmbeddingBag(vocab_size, embed_dim, mode="mean", padding_idx=self.padding_idx)

    def forward(self, input_ids, padding_mask=None, lengths=None):
        if padding_mask is not None:  # any id may pad; EmbeddingBag skips padding_idx
            input_ids = input_ids.masked_fill(padding_mask, self.padding_idx)
        if exporting():
            # the same mean written out: torch.export guards nn.EmbeddingBag's offsets on a batch of at
            # least 2, so the exported program would refuse a single text
            keep = (input_ids != self.padding_idx).unsqueeze(-1) if self.padding_idx is not None \
                else torch.ones_like(input_ids, dtype=torch.bool).unsqueeze(-1)
            summed = (nn.functional.embedding(input_ids, self.embedding.weight) * keep).sum(dim=1)
            return self.fc(summed / keep.sum(dim=1).clamp(min=1))
        return self.fc(self.embedding(input_ids))


class CNNClassifier(TextClassifier):
    """Convolutions of several widths over the embeddings, max over time, then a linear layer (Kim, 2014).

    Args:
        vocab_size: number of token ids (from the vocabulary).
        num_classes: number of classes (from the dataset).
        padding_idx: the padding id (from the vocabulary).
        embed_dim: width of the embeddings.
        kernel_sizes: widths of the convolutions, in tokens.
        num_filters: filters per width.
        dropout: dropout before the linear layer.
        pretrained_vectors: starting embeddings (from text.vocab's vectors_path).
        freeze_embeddings: keep pretrained embeddings fixed.
    """

    def __init__(self, vocab_size: int | None = None, num_classes: int | None = None, padding_idx: int | None = None,
                 embed_dim: int = 128, kernel_sizes: tuple = (3, 4, 5), num_filters: int = 100, dropout: float = 0.5,
                 pretrained_vectors=None, freeze_embeddings: bool = False):
        super().__init__(vocab_size, num_classes, padding_idx, embed_dim, pretrained_vectors, freeze_embeddings,
                         "text.cnn")
        self.kernel_sizes = tuple(kernel_sizes)
        self.convs = nn.ModuleList(nn.Conv1d(self.embed_dim, num_filters, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(num_filters * len(self.kernel_sizes), num_classes)

    def forward(self, input_ids, padding_mask=None, lengths=None):
        padding_mask, lengths = self.masks(input_ids, padding_mask, lengths)
        # widest - 1 masked padding columns, always: every convolution has a position even for a one-token
        # batch, and no branch on the batch's length, which an exported graph would freeze at the example's
        # (the windows over them are masked below, so the scores are those of the text alone)
        extra = max(self.kernel_sizes) - 1
        input_ids = nn.functional.pad(input_ids, (0, extra), value=self.padding_idx)
        padding_mask = nn.functional.pad(padding_mask, (0, extra), value=True)
        x = self.embedding(input_ids).masked_fill(padding_mask.unsqueeze(-1), 0).transpose(1, 2)
        lengths = lengths.to(x.device).unsqueeze(1)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            y = conv(x)
            # the max runs over windows that start inside the text and fit it (the first window
            # when the text is shorter than k): windows over padding alone would make a sample's
            # output depend on the longest text of its batch
            valid = torch.arange(y.shape[2], device=y.device).unsqueeze(0) < (lengths - k + 1).clamp(min=1)
            pooled.append(torch.relu(y.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(dim=2)))
        return self.fc(self.dropout(torch.cat(pooled, dim=1)))


class RNNClassifier(TextClassifier):
    """A recurrent encoder over packed sequences; the last hidden state of each direction is classified."""

    cell = nn.LSTM
    who = "text.rnn"

    def __init__(self, vocab_size: int | None = None, num_classes: int | None = None, padding_idx: int | None = None,
                 embed_dim: int = 128, hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.3, pretrained_vectors=None, freeze_embeddings: bool = False):
        super().__init__(vocab_size, num_classes, padding_idx, embed_dim, pretrained_vectors, freeze_embeddings,
                         self.who)
        self.rnn = self.cell(self.embed_dim, hidden_size, num_layers=num_layers, batch_first=True,
                             bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, input_ids, padding_mask=None, lengths=None):
        _, lengths = self.masks(input_ids, padding_mask, lengths)
        x = self.dropout(self.embedding(input_ids))
        # Two paths computing the same function. Training and eager inference pack the batch
        # (pack_padded_sequence: padding is never read, and cuDNN runs it fast); but packing has
        # data-dependent sizes that torch.export (and so the dynamo ONNX exporter) cannot capture and
        # that torch.jit.trace would bake in from the example. When exporting or tracing, `_unpacked`
        # runs each layer and direction over the padded batch with index arithmetic instead: same
        # weights, no new parameters or buffers, equal to the packed path up to float rounding.
        if exporting():
            last = self._unpacked(x, lengths)
        else:
            # an empty text still gets one step (over padding), so every sample has a final state
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True,
                                                       enforce_sorted=False)
            _, hidden = self.rnn(packed)
            if isinstance(hidden, tuple):  # LSTM: (h, c)
                hidden = hidden[0]
            directions = 2 if self.rnn.bidirectional else 1
            last = list(hidden.view(self.rnn.num_layers, directions, hidden.shape[1], hidden.shape[2])[-1])
        return self.fc(self.dropout(torch.cat(last, dim=1)))

    def _unpacked(self, x, lengths):
        """The packed path's final states of the last layer (one (batch, hidden) tensor per direction),
        computed over the padded batch ``x`` (batch, T, embed) without packing, so that it can be exported.

        Each layer and direction runs alone (num_layers=1, unidirectional) with its own weights. The
        forward direction reads the left-aligned batch; its state after the last real token is its
        output at ``len - 1`` (what comes later reads padding and is never used). The backward
        direction reads each text reversed, left-aligned: position t holds token ``len - 1 - t``, so it
        reads exactly the real tokens, last first; its final state is again its output at
        ``len - 1``, and the same index (the reversal is its own inverse on real positions) puts its
        outputs back in text order for the next layer. Padding positions of a layer's output hold
        junk that no later step reads.
        """
        rnn = self.rnn
        directions = 2 if rnn.bidirectional else 1
        per = len(rnn._flat_weights) // (rnn.num_layers * directions)  # w_ih, w_hh[, b_ih, b_hh]
        batch, steps = x.shape[0], x.shape[1]
        lengths = lengths.to(x.device).long().clamp(min=1)  # as the packed path: an empty text gets one step
        t = torch.arange(steps, device=x.device).unsqueeze(0)
        reverse = (lengths.unsqueeze(1) - 1 - t).clamp(min=0)  # (batch, T); past the text: any index will do
        last_step = (lengths - 1).view(-1, 1, 1)

        def take(seq, index):  # seq (batch, T, width), index (batch, k): seq[b, index[b, i]]
            return seq.gather(1, index.unsqueeze(-1).expand(-1, -1, seq.shape[2]))

        def run(seq, weights):
            h0 = seq.new_zeros(1, batch, rnn.hidden_size)
            if isinstance(rnn, nn.LSTM):
                return torch._VF.lstm(seq, (h0, h0), weights, rnn.bias, 1, 0.0, False, False, True)[0]
            if isinstance(rnn, nn.GRU):
                return torch._VF.gru(seq, h0, weights, rnn.bias, 1, 0.0, False, False, True)[0]
            raise KernelError(f"{self.who}: no export path for {type(rnn).__name__}")

        finals = []
        for layer in range(rnn.num_layers):
            if layer and rnn.dropout and self.training:  # as nn.LSTM/GRU: between layers, in training only
                x = nn.functional.dropout(x, rnn.dropout, True)
            outputs, finals = [], []
            for d in range(directions):
                k = (layer * directions + d) * per
                weights = rnn._flat_weights[k:k + per]
                out = run(x if d == 0 else take(x, reverse), weights)
                finals.append(out.gather(1, last_step.expand(-1, 1, out.shape[2])).squeeze(1))
                outputs.append(out if d == 0 else take(out, reverse))  # back in text order
            x = torch.cat(outputs, dim=2)
        return finals


class LSTMClassifier(RNNClassifier):
    """An LSTM over the embeddings (packed, so padding is not read); optionally bidirectional.

    Args:
        vocab_size: number of token ids (from the vocabulary).
        num_classes: number of classes (from the dataset).
        padding_idx: the padding id (from the vocabulary).
        embed_dim: width of the embeddings.
        hidden_size: width of the hidden state, per direction.
        num_layers: stacked layers.
        bidirectional: read the text in both directions.
        dropout: dropout on the embeddings, between layers and before the linear layer.
        pretrained_vectors: starting embeddings (from text.vocab's vectors_path).
        freeze_embeddings: keep pretrained embeddings fixed.
    """

    cell = nn.LSTM
    who = "text.lstm"


class GRUClassifier(RNNClassifier):
    """A GRU over the embeddings (packed, so padding is not read); optionally bidirectional.

    Args:
        vocab_size: number of token ids (from the vocabulary).
        num_classes: number of classes (from the dataset).
        padding_idx: the padding id (from the vocabulary).
        embed_dim: width of the embeddings.
        hidden_size: width of the hidden state, per direction.
        num_layers: stacked layers.
        bidirectional: read the text in both directions.
        dropout: dropout on the embeddings, between layers and before the linear layer.
        pretrained_vectors: starting embeddings (from text.vocab's vectors_path).
        freeze_embeddings: keep pretrained embeddings fixed.
    """

    cell = nn.GRU
    who = "text.gru"


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """The positional encoding of "Attention is all you need", for any length."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return pe


#: the transformer's feed-forward activations, as nn.TransformerEncoderLayer takes them
ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_tanh": functools.partial(nn.functional.gelu, approximate="tanh")}


class GELUEncoderLayer(nn.TransformerEncoderLayer):
    """nn.TransformerEncoderLayer whose feed-forward adds linear1's bias and applies GELU in one
    operator (``kernel.fused.bias_gelu``); the same arithmetic as the parent's, fused where installed.
    (In evaluation PyTorch's own fast path may take over, with the exact GELU: the same function.)"""

    def _ff_block(self, x):
        from kernel import fused

        approximate = "tanh" if isinstance(self.activation, functools.partial) else "none"
        hidden = fused.bias_gelu(nn.functional.linear(x, self.linear1.weight), self.linear1.bias, approximate)
        return self.dropout2(self.linear2(self.dropout(hidden)))


class TransformerClassifier(TextClassifier):
    """A small Transformer encoder: embeddings plus sinusoidal positions, self-attention that skips
    padding, the mean over real tokens, then a linear layer.

    Args:
        vocab_size: number of token ids (from the vocabulary).
        num_classes: number of classes (from the dataset).
        padding_idx: the padding id (from the vocabulary).
        embed_dim: model width (a multiple of num_heads).
        num_heads: attention heads.
        num_layers: encoder layers.
        ff_dim: width of the feed-forward layers.
        dropout: dropout inside the encoder and before the linear layer.
        pretrained_vectors: starting embeddings (from text.vocab's vectors_path).
        freeze_embeddings: keep pretrained embeddings fixed.
        activation: of the feed-forward layers: "relu", "gelu" (exact) or "gelu_tanh" (tanh
            approximation); GELU's bias and activation run as one fused operator where installed.
    """

    def __init__(self, vocab_size: int | None = None, num_classes: int | None = None, padding_idx: int | None = None,
                 embed_dim: int = 64, num_heads: int = 4, num_layers: int = 2, ff_dim: int = 128,
                 dropout: float = 0.1, pretrained_vectors=None, freeze_embeddings: bool = False,
                 activation: str = "relu"):
        super().__init__(vocab_size, num_classes, padding_idx, embed_dim, pretrained_vectors, freeze_embeddings,
                         "text.transformer")
        if self.embed_dim % num_heads:
            raise KernelError(f"text.transformer: embed_dim ({self.embed_dim}) must be a multiple of num_heads "
                              f"({num_heads})")
        if activation not in ACTIVATIONS:
            raise KernelError(f"text.transformer: activation must be one of {', '.join(ACTIVATIONS)}, not "
                              f"{activation!r}")
        make = nn.TransformerEncoderLayer if activation == "relu" else GELUEncoderLayer
        layer = make(self.embed_dim, num_heads, ff_dim, dropout, batch_first=True,
                     activation=ACTIVATIONS[activation])
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.embed_dim, num_classes)

    def forward(self, input_ids, padding_mask=None, lengths=None):
        padding_mask, _ = self.masks(input_ids, padding_mask, lengths)
        # a sample that is all padding would make attention divide by zero: let it see its first slot
        padding_mask = padding_mask.clone()
        padding_mask[:, 0] &= ~padding_mask.all(dim=1)
        x = self.embedding(input_ids) * math.sqrt(self.embed_dim)
        x = x + sinusoids(input_ids.shape[1], self.embed_dim).to(x.device, x.dtype)
        x = self.encoder(self.dropout(x), src_key_padding_mask=padding_mask)
        keep = (~padding_mask).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1)
        return self.fc(self.dropout(pooled))

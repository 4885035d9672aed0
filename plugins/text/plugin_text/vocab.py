"""The vocabulary: tokens to ids, learnt from the training split (``text.vocab``).

It comes after a tokenizer in ``dataset.transforms``. ``fit`` counts the tokens of the training
split; the kept tokens follow four specials, ``<unk>`` (0), ``<pad>`` (1), ``<bos>`` (2) and
``<eos>`` (3). The fitted state (the token list and, when asked, pretrained vectors) is plain data
saved with the run, so ``kernel.load(RUN).predict(["some text"])`` numbers new text the same way.
It offers the data facts ``vocab_size``, ``padding_idx`` (filled into models by name), ``unk_idx``
and ``vocabulary`` (for renderers and analyzers), and the collate function that pads batches.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from kernel import KernelError

from .batching import PadBatch

SPECIALS = ("<unk>", "<pad>", "<bos>", "<eos>")
UNK, PAD, BOS, EOS = range(4)


class TokenTable:
    """The vocabulary's tokens by id, as a data fact; prints short (dry runs list every fact)."""

    def __init__(self, tokens):
        self.tokens = list(tokens)

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, index):
        return self.tokens[index]

    def __iter__(self):
        return iter(self.tokens)

    def __repr__(self):
        return f"<{len(self.tokens):,} tokens>"

    __str__ = __repr__


class PretrainedVectors:
    """Embedding rows aligned with the vocabulary, as a data fact for models (``pretrained_vectors``)."""

    def __init__(self, weights: torch.Tensor, coverage: float, path: str):
        self.weights, self.coverage, self.path = weights, coverage, path

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1])

    def __repr__(self):
        return f"<{Path(self.path).name}: {self.weights.shape[0]:,} x {self.dim}, {self.coverage:.0%} found>"

    __str__ = __repr__


class Vocabulary:
    """Numbers tokens by the vocabulary learnt from the training split; pads batches.

    Args:
        min_freq: a token is kept when it occurs at least this often in the training split.
        max_size: keep at most this many tokens (the most frequent), besides the four specials.
        max_length: truncate each sample to this many ids (``<bos>``/``<eos>`` included).
        add_bos: start every sample with ``<bos>``.
        add_eos: end every sample with ``<eos>``.
        bucket: batch samples of similar length together (less padding, faster RNNs).
        vectors_path: a local GloVe or fastText ``.vec`` text file; models that take
            ``pretrained_vectors`` start from these embeddings. The share of the vocabulary found in
            the file is reported (fact ``vectors_coverage``).
    """

    def __init__(self, min_freq: int = 1, max_size: int | None = None, max_length: int | None = None,
                 add_bos: bool = False, add_eos: bool = False, bucket: bool = False,
                 vectors_path: str | None = None):
        if min_freq < 1:
            raise KernelError(f"text.vocab: min_freq must be at least 1, got {min_freq}")
        if max_size is not None and max_size < 1:
            raise KernelError(f"text.vocab: max_size must be at least 1, got {max_size}")
        if max_length is not None and max_length < 1 + add_bos + add_eos:
            raise KernelError(f"text.vocab: max_length={max_length} leaves no room for a token")
        self.min_freq, self.max_size, self.max_length = min_freq, max_size, max_length
        self.add_bos, self.add_eos, self.vectors_path = add_bos, add_eos, vectors_path
        self.collate_fn = PadBatch(PAD, bucket=bucket)
        self.tokens: list[str] | None = None
        self.stoi: dict[str, int] = {}
        self.vectors: torch.Tensor | None = None
        self.vectors_coverage: float | None = None

    # -- learning -------------------------------------------------------------------------------
    def fit(self, dataset):
        counts: Counter = Counter()
        for i in range(len(dataset)):
            counts.update(_tokens(dataset[i][0]))
        if not counts:
            source = getattr(dataset, "source", None)
            raise KernelError(f"text.vocab: the training split{f' of {source}' if source else ''} has no tokens; "
                              f"check the dataset's text column")
        kept = sorted((t for t, c in counts.items() if c >= self.min_freq and t not in SPECIALS),
                      key=lambda t: (-counts[t], t))
        if not kept:
            top, n = counts.most_common(1)[0]
            source = getattr(dataset, "source", None)  # the file, for the plugin's datasets
            raise KernelError(f"text.vocab: no token occurs at least min_freq={self.min_freq} times in the "
                              f"training split{f' of {source}' if source else ''} ({len(dataset)} samples; the "
                              f"most frequent, {top!r}, occurs {n} time{'s' if n != 1 else ''}); lower min_freq "
                              f"to {n}")
        if self.max_size is not None:
            kept = kept[:self.max_size]
        self._set_tokens(list(SPECIALS) + kept)
        if self.vectors_path:
            self.vectors, self.vectors_coverage = read_vectors(self.vectors_path, self.tokens)
        return self

    def _set_tokens(self, tokens):
        self.tokens = tokens
        self.stoi = {t: i for i, t in enumerate(tokens)}

    # -- using ------------------------------------------------------------------------------------
    def __call__(self, tokens) -> torch.Tensor:
        if self.tokens is None:
            raise KernelError("text.vocab is not fitted: call fit(dataset) first (the kernel does this on the "
                              "training split)")
        get = self.stoi.get
        ids = [get(t, UNK) for t in (tokens if type(tokens) is list else _tokens(tokens))]
        if not (self.add_bos or self.add_eos or self.max_length):  # the common case, per sample: no more checks
            return torch.tensor(ids, dtype=torch.long)
        if self.add_bos:
            ids.insert(0, BOS)
        if self.max_length is not None and len(ids) + self.add_eos > self.max_length:
            ids = ids[:self.max_length - self.add_eos]
        if self.add_eos:
            ids.append(EOS)
        return torch.tensor(ids, dtype=torch.long)

    def portable(self) -> dict | None:
        """The fitted vocabulary as data for a torch-free runtime (plugin-onnx); None before ``fit``."""
        if self.tokens is None:
            return None
        return {"step": "vocab", "tokens": list(self.tokens), "unk_index": UNK, "max_length": self.max_length,
                "add_bos": self.add_bos, "bos_index": BOS, "add_eos": self.add_eos, "eos_index": EOS}

    def lookup(self, ids) -> list[str]:
        """The tokens of a sequence of ids (for people: renderers, predictions)."""
        return [self.tokens[i] for i in torch.as_tensor(ids).tolist()]

    def facts(self) -> dict:
        if self.tokens is None:
            return {}
        out = {"vocab_size": len(self.tokens), "padding_idx": PAD, "unk_idx": UNK,
               "vocabulary": TokenTable(self.tokens)}
        if self.vectors is not None:
            out["pretrained_vectors"] = PretrainedVectors(self.vectors, self.vectors_coverage, self.vectors_path)
            out["vectors_coverage"] = round(self.vectors_coverage, 4)
        return out

    # -- saved with the run (plain data and tensors only) -------------------------------------------
    def state_dict(self) -> dict:
        return {"tokens": self.tokens, "vectors": self.vectors, "vectors_coverage": self.vectors_coverage}

    def load_state_dict(self, state: dict):
        if state.get("tokens") is not None:
            self._set_tokens(list(state["tokens"]))
        self.vectors, self.vectors_coverage = state.get("vectors"), state.get("vectors_coverage")


def _tokens(x):
    if isinstance(x, (list, tuple)):
        return x
    if isinstance(x, str):
        raise KernelError("text.vocab numbers tokens, but received a whole text; put a tokenizer before it: "
                          "transforms = [{ use = \"text.basic_english\" }, { use = \"text.vocab\" }]")
    raise KernelError(f"text.vocab numbers a list of tokens, but received a {type(x).__name__}; put a "
                      f"tokenizer (text.basic_english, text.bpe, ...) right before it")


def read_vectors(path: str, tokens: list[str]) -> tuple[torch.Tensor, float]:
    """Rows of a GloVe / fastText text file for the vocabulary's tokens, and the share found.

    Tokens missing from the file start small and random; ``<pad>`` starts at zero. A token is looked
    up as it is, then lower-cased (GloVe files are lower-case).
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise KernelError(f"text.vocab: vectors file not found: {file} (vectors_path: a local GloVe .txt or "
                          f"fastText .vec file)")
    wanted = {t: i for i, t in enumerate(tokens) if t not in SPECIALS}
    lower = {}
    for t, i in wanted.items():
        lower.setdefault(t.lower(), []).append(i)
    rows: dict[int, list[float]] = {}
    exact: set[int] = set()
    dim = None
    with open(file, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            parts = line.rstrip().split(" ")
            if line_no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # fastText header: "count dim"
            if len(parts) < 2:
                continue
            word, values = parts[0], parts[1:]
            if dim is None:
                dim = len(values)
            elif len(values) != dim:
                raise KernelError(f"{file} line {line_no}: {len(values)} numbers, earlier lines have {dim}")
            if word in wanted:
                index = wanted[word]
                rows[index] = values
                exact.add(index)
            for index in lower.get(word, ()):
                if index not in exact:
                    rows[index] = values
    if dim is None:
        raise KernelError(f"{file}: no vectors found (expected lines of 'word v1 v2 ...')")
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(len(tokens), dim, generator=g) * 0.1
    weights[PAD] = 0
    try:
        for index, values in rows.items():
            weights[index] = torch.tensor([float(v) for v in values])
    except ValueError as exc:
        raise KernelError(f"{file}: a vector holds something that is not a number ({exc})") from None
    return weights, len(rows) / max(1, len(wanted))

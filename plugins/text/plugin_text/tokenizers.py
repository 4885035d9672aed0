"""Tokenizers: transforms from a text (str) to its tokens (list of str).

Word and character tokenizers are rules; the subword tokenizers (BPE, WordPiece, Unigram) are
trained on the training split with HF ``tokenizers`` when the kernel calls ``fit``, and their
trained state travels with the run as the tokenizer's JSON text. A tokenizer is always followed by
``text.vocab``, which turns tokens into ids (see docs/text.md).
"""
from __future__ import annotations

from kernel import KernelError

# torchtext's basic_english, rule for rule: its patterns (r"\'", r"\"", r"\.", r"<br \/>", r",", ...) are
# all literal strings, so str.replace in the same order gives the same text as its re.sub calls,
# several times faster; its last rule (r"\s+" -> " ") and split() are what str.split() does alone.
_BASIC_ENGLISH = (("'", " '  "), ('"', ""), (".", " . "), ("<br />", " "), (",", " , "), ("(", " ( "),
                  (")", " ) "), ("!", " ! "), ("?", " ? "), (";", " "), (":", " "))


def _text(x, who: str) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, bytes):
        raise KernelError(f"{who} received bytes, not text; read the file as UTF-8 (the text datasets do)")
    raise KernelError(f"{who} tokenizes text (str), but received a {type(x).__name__}; put the tokenizer "
                      f"first in dataset.transforms, on a text dataset")


class BasicEnglish:
    """Lower-cases, splits punctuation off words and drops quotes, as torchtext's ``basic_english``."""

    def __call__(self, text) -> list[str]:
        line = (text if type(text) is str else _text(text, "text.basic_english")).lower()
        for old, new in _BASIC_ENGLISH:
            line = line.replace(old, new)
        return line.split()

    def portable(self) -> dict:
        """This tokenizer as data for a torch-free runtime (plugin-onnx): lower-case, replace, split."""
        return {"step": "tokenize", "lower": True, "replace": [list(r) for r in _BASIC_ENGLISH], "split": "whitespace"}


class Whitespace:
    """Splits at white space, keeping punctuation attached and case as it is.

    Args:
        lower: lower-case the text first.
    """

    def __init__(self, lower: bool = False):
        self.lower = lower

    def __call__(self, text) -> list[str]:
        text = _text(text, "text.whitespace")
        return (text.lower() if self.lower else text).split()

    def portable(self) -> dict:
        return {"step": "tokenize", "lower": self.lower, "replace": [], "split": "whitespace"}


class Characters:
    """One token per character (white space included, as a space token).

    Args:
        lower: lower-case the text first.
    """

    def __init__(self, lower: bool = False):
        self.lower = lower

    def __call__(self, text) -> list[str]:
        text = _text(text, "text.char")
        return list(text.lower() if self.lower else text)

    def portable(self) -> dict:
        return {"step": "tokenize", "lower": self.lower, "replace": [], "split": "characters"}


class Subword:
    """A subword tokenizer trained on the training split with HF ``tokenizers``.

    The tokens are strings (``"▁the"``, ``"##ing"``), so ``text.vocab`` after it numbers them the
    same way as words.
    """

    algorithm = ""

    def __init__(self, vocab_size: int = 8000, lower: bool = True, min_frequency: int = 2):
        if vocab_size < 2:
            raise KernelError(f"text.{self.algorithm}: vocab_size must be at least 2, got {vocab_size}")
        self.vocab_size, self.lower, self.min_frequency = vocab_size, lower, min_frequency
        self.tokenizer = None

    def _build(self):
        raise NotImplementedError

    def fit(self, dataset):
        texts = (_text(dataset[i][0], f"text.{self.algorithm}") for i in range(len(dataset)))
        tokenizer, trainer = self._build()
        tokenizer.train_from_iterator(texts, trainer=trainer, length=len(dataset))
        if tokenizer.get_vocab_size() == 0:
            raise KernelError(f"text.{self.algorithm}: the training split has no text to learn subwords from")
        self.tokenizer = tokenizer
        return self

    def __call__(self, text) -> list[str]:
        if self.tokenizer is None:
            raise KernelError(f"text.{self.algorithm} is not trained: call fit(dataset) first "
                              f"(the kernel does this on the training split)")
        return self.tokenizer.encode(_text(text, f"text.{self.algorithm}")).tokens

    def portable(self) -> dict | None:
        """The trained tokenizer's JSON text: a runtime needs HF ``tokenizers`` (no torch) to apply it."""
        if self.tokenizer is None:
            return None
        return {"step": "hf_tokenizer", "tokenizer": self.tokenizer.to_str()}

    def _normalizer(self):
        from tokenizers import normalizers

        steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if self.lower else [])
        return normalizers.Sequence(steps)

    # the trained tokenizer as its JSON text: plain data, so checkpoints load with weights_only=True
    def state_dict(self) -> dict:
        return {"tokenizer": self.tokenizer.to_str() if self.tokenizer is not None else None}

    def load_state_dict(self, state: dict):
        from tokenizers import Tokenizer

        text = state.get("tokenizer")
        self.tokenizer = Tokenizer.from_str(text) if text else None


class BPE(Subword):
    """Byte-pair encoding learnt from the training split (HF ``tokenizers``).

    Args:
        vocab_size: number of subwords to learn (the vocabulary after it may be smaller).
        lower: lower-case the text first.
        min_frequency: a merge must occur this often in the training split.
    """

    algorithm = "bpe"

    def _build(self):
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.normalizer = self._normalizer()
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        return tok, trainers.BpeTrainer(vocab_size=self.vocab_size, min_frequency=self.min_frequency,
                                        special_tokens=["[UNK]"], show_progress=False)


class WordPiece(Subword):
    """WordPiece subwords (continuations marked ``##``) learnt from the training split.

    Args:
        vocab_size: number of subwords to learn.
        lower: lower-case the text first.
        min_frequency: a subword must occur this often in the training split.
    """

    algorithm = "wordpiece"

    def _build(self):
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = self._normalizer()
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        return tok, trainers.WordPieceTrainer(vocab_size=self.vocab_size, min_frequency=self.min_frequency,
                                              special_tokens=["[UNK]"], show_progress=False)


class Unigram(Subword):
    """Unigram language-model subwords (SentencePiece style, ``▁`` marks a word start).

    Args:
        vocab_size: number of subwords to learn.
        lower: lower-case the text first.
        min_frequency: unused by the unigram trainer; kept so the three subword tokenizers agree.
    """

    algorithm = "unigram"

    def _build(self):
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        tok = Tokenizer(models.Unigram())
        tok.normalizer = self._normalizer()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        return tok, trainers.UnigramTrainer(vocab_size=self.vocab_size, special_tokens=["<unk>"],
                                            unk_token="<unk>", show_progress=False)

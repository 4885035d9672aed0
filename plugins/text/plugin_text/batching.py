"""Batches of token ids: dynamic padding with a padding mask, and optional length bucketing.

``PadBatch`` is the ``collate_fn`` that ``text.vocab`` offers the kernel. A batch's inputs are a
dict, so models are called as ``model(input_ids=..., padding_mask=..., lengths=...)``:

- ``input_ids``: (batch, longest) int64, padded with the vocabulary's padding index;
- ``padding_mask``: (batch, longest) bool, True at padding (``nn.Transformer``'s convention);
- ``lengths``: (batch,) int64, the number of real tokens per sample.

With bucketing on, ``PadBatch.batch_sampler`` groups samples of similar length so that little of a
batch is padding; the kernel's DataLoader asks the collate function for it.
"""
from __future__ import annotations

import torch
from torch.nn.utils.rnn import pad_sequence

POOL_BATCHES = 50  # bucketing sorts pools of this many batches: similar lengths, yet shuffled


class PadBatch:
    """Pads a list of ``(ids, label)`` samples to the longest of the batch."""

    def __init__(self, padding_idx: int, bucket: bool = False):
        self.padding_idx = padding_idx
        self.bucket = bucket

    def __call__(self, items):
        tensor = torch.Tensor
        ids = [x if type(x) is tensor and x.dtype == torch.long else torch.as_tensor(x, dtype=torch.long)
               for x, _ in items]
        lengths = torch.tensor([x.shape[0] for x in ids], dtype=torch.long)
        if int(lengths.max()) == 0:  # every text empty after truncation: keep one padding column
            ids[0] = torch.full((1,), self.padding_idx, dtype=torch.long)
        input_ids = pad_sequence(ids, batch_first=True, padding_value=self.padding_idx)
        padding_mask = torch.arange(input_ids.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)
        return ({"input_ids": input_ids, "padding_mask": padding_mask, "lengths": lengths},
                collate_targets([y for _, y in items]))

    def portable(self) -> dict:
        """This batching as data for a torch-free runtime (plugin-onnx): names, padding value, the mask's
        sense, and the empty-batch rule (``min_width``: at least one column)."""
        return {"step": "pad_tokens", "padding_index": int(self.padding_idx), "min_width": 1, "mask_marks": "padding",
                "names": {"ids": "input_ids", "mask": "padding_mask", "lengths": "lengths"}}

    def batch_sampler(self, dataset, batch_size: int, shuffle: bool = False, generator=None,
                      drop_last: bool = False):
        """Batches of similar length when bucketing is on; None leaves the DataLoader's own batching."""
        if not self.bucket:
            return None
        return BucketBatches(dataset, batch_size, shuffle, generator, drop_last)


def collate_targets(targets):
    if all(y is None for y in targets):
        return None  # predicting: inputs without labels
    if all(isinstance(y, int) for y in targets):
        return torch.tensor(targets, dtype=torch.long)
    return torch.utils.data.default_collate(targets)


class BucketBatches(torch.utils.data.Sampler):
    """Index batches whose samples have similar lengths.

    Lengths are measured once per dataset (one pass through its transforms). Each epoch, a shuffled
    order is cut into pools of ``POOL_BATCHES`` batches, each pool is sorted by length and cut into
    batches, and the batches are shuffled; without shuffling, the whole split is sorted by length.
    """

    def __init__(self, dataset, batch_size: int, shuffle: bool, generator, drop_last: bool):
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.generator, self.drop_last = generator, drop_last
        self._lengths = None

    @property
    def lengths(self) -> list[int]:
        if self._lengths is None:
            self._lengths = [len(self.dataset[i][0]) for i in range(len(self.dataset))]
        return self._lengths

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        lengths = self.lengths
        n = len(lengths)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).tolist()
            pool = self.batch_size * POOL_BATCHES
            batches = []
            for start in range(0, n, pool):
                chunk = sorted(order[start:start + pool], key=lengths.__getitem__)
                batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        else:
            order = sorted(range(n), key=lengths.__getitem__)
            batches = [order[i:i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=self.generator).tolist()]
        yield from batches

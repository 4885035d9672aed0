"""Batches of token ids: padded to the longest sample of each batch, a padding mask, lengths, length
bucketing and truncation at max_length."""
from __future__ import annotations

import statistics

import torch

from plugin_text.vocab import PAD
from textfiles import prepared, write_csv

WORDS = "the a film story great dull music acting moving boring".split()


def _varied(tmp_path, n=120, longest=40, name="varied.csv"):
    """``n`` texts of 1 to ``longest`` words, in a shuffled order of lengths."""
    g = torch.Generator().manual_seed(0)
    lengths = (torch.randperm(n, generator=g) % longest + 1).tolist()
    records = [(" ".join(WORDS[(i + j) % len(WORDS)] for j in range(k)), ("neg", "pos")[i % 2])
               for i, k in enumerate(lengths)]
    return write_csv(tmp_path / name, records)


def _plan(path, **vocab):
    return prepared({"use": "text.csv", "path": str(path), "split": {"valid": 0.2},
                     "transforms": [{"use": "text.whitespace"}, {"use": "text.vocab", **vocab}]})


def test_batches_pad_to_their_longest_sample_with_a_mask_and_lengths(tmp_path):
    plan = _plan(_varied(tmp_path))
    train = plan.data.splits["train"]
    widths = set()
    for inputs, targets in plan.data.loader("train", batch_size=8, shuffle=False):  # the kernel's DataLoader
        ids, mask, lengths = inputs["input_ids"], inputs["padding_mask"], inputs["lengths"]
        assert ids.dtype == torch.long and mask.dtype == torch.bool and lengths.dtype == torch.long
        assert ids.shape == mask.shape and ids.shape[0] == len(targets) == len(lengths)
        assert ids.shape[1] == int(lengths.max())  # padded to this batch's longest, not the split's
        widths.add(ids.shape[1])
        for row, n in zip(range(len(lengths)), lengths.tolist()):
            assert not mask[row, :n].any() and mask[row, n:].all()  # True exactly at the padding
            assert (ids[row, n:] == PAD).all() and not (ids[row, :n] == PAD).any()
    assert len(widths) > 1  # batches of different widths: the padding is dynamic
    # the samples come back whole: ids of the first batch equal the split's items
    first, _ = next(iter(plan.data.loader("train", batch_size=8, shuffle=False)))
    for row in range(8):
        x, _ = train[row]
        assert torch.equal(first["input_ids"][row, :len(x)], x)


def test_an_all_empty_batch_still_has_one_column(tmp_path):
    from plugin_text.batching import PadBatch

    inputs, targets = PadBatch(PAD)([(torch.zeros(0, dtype=torch.long), 0), (torch.zeros(0, dtype=torch.long), 1)])
    assert inputs["input_ids"].shape == (2, 1) and inputs["padding_mask"].all()
    assert inputs["lengths"].tolist() == [0, 0] and targets.tolist() == [0, 1]


def test_truncation_at_max_length(tmp_path):
    plan = _plan(_varied(tmp_path), max_length=10)
    train = plan.data.splits["train"]
    assert max(len(train[i][0]) for i in range(len(train))) == 10
    for inputs, _ in plan.data.loader("train", batch_size=16):
        assert inputs["input_ids"].shape[1] <= 10 and int(inputs["lengths"].max()) <= 10
    with_specials = _plan(_varied(tmp_path), max_length=6, add_bos=True, add_eos=True)
    x, _ = with_specials.data.splits["train"][0]
    assert len(x) <= 6 and x[0].item() == 2 and x[-1].item() == 3  # <bos> ... <eos>, still within max_length


def _bucketed(plan, split="train", batch_size=8, shuffle=True, seed=0, drop_last=False):
    """The batch sampler text.vocab offers for its split (bucket = true), through a DataLoader."""
    data = plan.data
    sampler = data.collate_fn.batch_sampler(data.splits[split], batch_size, shuffle=shuffle,
                                            generator=torch.Generator().manual_seed(seed), drop_last=drop_last)
    return sampler, torch.utils.data.DataLoader(data.splits[split], batch_sampler=sampler,
                                                collate_fn=data.collate_fn)


def test_bucketing_groups_similar_lengths_and_covers_every_sample_once(tmp_path):
    plan = _plan(_varied(tmp_path, n=400), bucket=True)
    train = plan.data.splits["train"]
    n = len(train)
    sampler, loader = _bucketed(plan)
    epoch1 = [list(b) for b in sampler]
    assert sorted(i for b in epoch1 for i in b) == list(range(n))  # every index once per epoch
    assert len(epoch1) == len(sampler) == -(-n // 8)
    lengths = [len(train[i][0]) for i in range(n)]
    spread = statistics.mean(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch1)
    # in random batches of 8 out of lengths 1..40 the spread is about 30 tokens; buckets hold similar ones
    assert spread <= 3, spread
    padding = sum(int(x["padding_mask"].sum()) for x, _ in loader)
    plain = _plan(tmp_path / "varied.csv")  # the same data, bucket = false
    unbucketed = sum(int(x["padding_mask"].sum()) for x, _ in plain.data.loader("train", batch_size=8))
    assert padding * 5 < unbucketed
    # the kernel's own loaders take the batches the collate function chooses
    kernel_loader = sum(int(x["padding_mask"].sum()) for x, _ in plan.data.loader("train", batch_size=8))
    assert kernel_loader * 5 < unbucketed
    epoch2 = [list(b) for b in sampler]  # another epoch: another order, the same coverage
    assert epoch2 != epoch1 and sorted(i for b in epoch2 for i in b) == list(range(n))
    again, _ = _bucketed(plan)
    assert [list(b) for b in again] == epoch1  # the same seed, the same batches


def test_bucketing_without_shuffling_sorts_by_length_and_drop_last(tmp_path):
    plan = _plan(_varied(tmp_path, n=100), bucket=True)
    train = plan.data.splits["train"]
    sampler, _ = _bucketed(plan, shuffle=False)
    order = [i for b in sampler for i in b]
    lengths = [len(train[i][0]) for i in order]
    assert lengths == sorted(lengths) and sorted(order) == list(range(len(train)))
    dropped, _ = _bucketed(plan, drop_last=True)
    batches = list(dropped)
    assert all(len(b) == 8 for b in batches) and len(batches) == len(dropped) == len(train) // 8


def test_without_bucketing_the_dataloader_batches_as_usual(tmp_path):
    plan = _plan(_varied(tmp_path, n=40))
    assert plan.data.collate_fn.batch_sampler(plan.data.splits["train"], 8) is None


def test_a_bucketed_workflow_trains_through_the_kernel(tmp_path, monkeypatch):
    """The trainer's loaders take the bucketed batches too: shuffled for training, sorted for validation."""
    import kernel
    from kernel import Workflow
    from plugin_text import batching

    passes = []  # (shuffled, batches) for each pass the trainer made over a bucketed sampler

    class Counted(batching.BucketBatches):
        def __iter__(self):
            batches = list(super().__iter__())
            passes.append((self.shuffle, len(batches)))
            return iter(batches)

    monkeypatch.setattr(batching, "BucketBatches", Counted)
    monkeypatch.setenv("KERNEL_HOME", str(tmp_path / "home"))
    wf = Workflow(name="buckets", seed=0, dataset={
        "use": "text.csv", "path": str(_varied(tmp_path, n=200)), "split": {"valid": 0.2},
        "transforms": [{"use": "text.whitespace"}, {"use": "text.vocab", "bucket": True}]},
        models=[{"use": "text.embedding_bag"}],
        trainer={"epochs": 2, "batch_size": 16, "progress": False, "tensorboard": False})
    results = wf.run()
    (run,) = results.runs
    assert run.info["status"] == "completed" and run.info["epochs_done"] == 2
    # 160 training texts in batches of 16, then the 40 validation texts, in each epoch (what follows
    # the training is the runner's confusion matrix of the best model, in one batch of 256)
    assert passes[:4] == [(True, 10), (False, 3)] * 2, passes
    assert kernel.load(run.id).predict(["the great film"]) is not None

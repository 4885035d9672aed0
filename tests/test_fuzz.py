"""Mutated workflows go through validation and the dry run: each is accepted or refused with a
KernelError, never with a traceback.

A small valid workflow (the kernel's synthetic data, a small MLP) is mutated at random, with a fixed
seed: wrong types, missing keys, unknown names, nested junk, huge and negative numbers, strings for
numbers, lists for scalars, unicode, long names. Each goes the way ``kernel run --dry-run`` takes it:
``Workflow.from_dict`` (the model), ``prepare`` (validation, the data, its checks) and
``describe_plan`` (each model through one real batch, the loss and the metrics).
"""
from __future__ import annotations

import copy
import math
import random
import traceback

from kernel import KernelError
from kernel.build import prepare
from kernel.dryrun import describe_plan
from kernel.workflow import Workflow

CASES = 320
SEED = 11

BASE = {
    "name": "fuzz",
    "seed": 0,
    "dataset": {"use": "kernel.synthetic", "num_samples": 24, "shape": [4], "num_classes": 3,
                "split": {"valid": 0.25}},
    "models": [{"use": "kernel.mlp", "hidden": 8, "dropout": 0.1}, {"use": "kernel.linear"}],
    "trainer": {"epochs": 1, "batch_size": 8, "optimizer": {"use": "torch.optim.SGD", "lr": 0.1},
                "metrics": ["kernel.accuracy"]},
    "analyzers": [],
}

# names only from this list: an import path in `use` is called, so the fuzz names nothing harmful
NAMES = ["kernel.mlp", "kernel.linear", "kernel.mlpp", "KERNEL.MLP", "kernel.synthetic", "kernel.accuracy",
         "kernel.mse", "kernel.supervised", "torch.optim.Adam", "torch.optim.AdamX", "nope", "a.b:c", "",
         "kernel.", ".mlp", "kernel..mlp", "kernel.mlp:x", "t\u00e9st.\U0001f642", "x" * 300]
JUNK = [5, -1, 0, 1, 10**15, -10**15, 1e308, -1e-308, math.nan, math.inf, -math.inf, True, False, None,
        "abc", "0.1", "", "\u00e9\U0001f642\u202e", "x" * 300, "../../etc", [], [5], [[3]], ["a"], [None],
        [1, "b", [2]], {}, {"a": 1}, {"use": {}}, {"use": 5}, {"use": "kernel.mlp"}, {"use": "nope.thing"},
        {"use": "kernel.accuracy", "num_classes": -1}, {"params": 5}, {"use": "kernel.mlp", "params": []},
        [{"use": {}}], [{"use": "kernel.f1"}], "auto", "kernel.accuracy", 0.5, -0.5, 2**63 - 1]
KEYS = ["use", "params", "name", "epochs", "batch_size", "hidden", "dropout", "num_samples", "shape", "task",
        "num_classes", "noise", "lr", "metrics", "loss", "optimizer", "monitor", "mode", "split", "valid",
        "fraction", "transforms", "models", "dataset", "trainer", "seed", "renderers", "callbacks",
        "analyzers", "tags", "input_shape", "layers", "zzz", "\u00fcnicode", ""]


def paths(node, prefix=()):
    """Every place in the workflow: ``(path, value)``, the root included."""
    yield prefix, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, prefix + (i,))


def parent_of(data, path):
    node = data
    for part in path[:-1]:
        node = node[part]
    return node


def mutate(data, rng: random.Random):
    """One random change somewhere in ``data`` (in place)."""
    places = list(paths(data))
    path, value = rng.choice(places)
    op = rng.choice(["junk", "junk", "name", "delete", "add", "wrap", "unwrap", "number", "string"])
    if not path:  # the root: add or remove a top-level setting
        if op == "delete" and data:
            del data[rng.choice(list(data))]
        else:
            data[rng.choice(KEYS)] = rng.choice(JUNK)
        return
    parent, key = parent_of(data, path), path[-1]
    if op == "junk":
        parent[key] = copy.deepcopy(rng.choice(JUNK))
    elif op == "name":
        parent[key] = rng.choice(NAMES)
    elif op == "delete":
        del parent[key]
    elif op == "add":
        target = value if isinstance(value, (dict, list)) else parent
        if isinstance(target, dict):
            target[rng.choice(KEYS)] = copy.deepcopy(rng.choice(JUNK))
        else:
            target.append(copy.deepcopy(rng.choice(JUNK + NAMES)))
    elif op == "wrap":
        parent[key] = [value] if rng.random() < 0.7 else {"use": value}
    elif op == "unwrap":
        if isinstance(value, list) and value:
            parent[key] = value[0]
        elif isinstance(value, dict) and value:
            parent[key] = next(iter(value.values()))
    elif op == "number":
        parent[key] = rng.choice([-1, 0, 10**15, -10**15, 1e308, math.nan, 3.5, 2**31])
    elif op == "string":
        parent[key] = str(value)


def dry_run(data) -> str:
    """'accepted' or 'refused'; anything but a KernelError escapes."""
    try:
        plan = prepare(Workflow.from_dict(data))
        info = describe_plan(plan)
    except KernelError as exc:
        assert str(exc).strip(), "a KernelError without a message"
        return "refused"
    return "refused" if any(m.get("error") for m in info["models"]) else "accepted"


def test_mutated_workflows_are_accepted_or_refused_with_a_kernel_error(workspace, capsys):
    rng = random.Random(SEED)
    counts = {"accepted": 0, "refused": 0, "traceback": 0}
    failures = []
    for case in range(CASES):
        data = copy.deepcopy(BASE)
        for _ in range(rng.choice([1, 1, 2, 3])):
            mutate(data, rng)
        try:
            counts[dry_run(data)] += 1
        except Exception:
            counts["traceback"] += 1
            failures.append(f"case {case}: {data!r}\n{traceback.format_exc(limit=-3)}")
    with capsys.disabled():
        print(f"\nfuzz: {CASES} mutated workflows: {counts['accepted']} accepted, {counts['refused']} refused "
              f"with a KernelError, {counts['traceback']} other errors")
    assert not failures, "\n\n".join(failures[:5])
    assert counts["accepted"] > 0 and counts["refused"] > CASES // 2  # the mutations reach both outcomes


SET_PATHS = ["trainer.epochs", "trainer.optimizer.lr", "trainer.optimizer.use", "trainer.metrics", "trainer.metrics[0]",
             "models[0].hidden", "models[0].params.dropout", "models[1].use", "models[2].hidden", "dataset.shape",
             "dataset.split.valid", "dataset.transforms[0]", "name", "name.x", "seed", "models", "dataset",
             "trainer.optimizer", "renderers.input", "x[0].y", "models[0].name", "dataset.use.x"]
SET_VALUES = ["5", "-1", "1e400", "nan", '"0.1"', "true", "[5]", '["a"]', "[[3]]", "{use={}}", "[{use={}}]",
              '"abc"', '"kernel.mlpp"', '"x"', "{}", "[]", "not toml at all", '"\u00e9"', "9" * 30, '"' + "n" * 300 + '"']


def test_set_overrides_are_accepted_or_refused_with_a_kernel_error(workspace):
    """`--set PATH=VALUE` as the command line reads it: a value parsed as TOML, set at a path."""
    from kernel.workflow import parse_value

    rng = random.Random(SEED + 1)
    counts = {"accepted": 0, "refused": 0}
    for case in range(120):
        overrides = {rng.choice(SET_PATHS): parse_value(rng.choice(SET_VALUES)) for _ in range(rng.choice([1, 2]))}
        try:
            data = Workflow.from_dict(copy.deepcopy(BASE)).with_overrides(overrides).to_dict()
        except KernelError:
            counts["refused"] += 1
            continue
        try:
            counts[dry_run(data)] += 1
        except Exception:
            raise AssertionError(f"case {case}: --set {overrides!r}\n{traceback.format_exc(limit=-3)}") from None
    assert counts["accepted"] and counts["refused"]


def test_the_unmutated_workflow_is_accepted(workspace):
    assert dry_run(copy.deepcopy(BASE)) == "accepted"  # so each refusal above comes from its mutation

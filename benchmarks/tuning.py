"""plugin-tuning: what the median pruner saves, and what the plugin costs per trial (issue 12).

Part 1, pruning. One workflow (kernel.synthetic, kernel.mlp, SGD) whose trials differ widely: the
learning rate is searched log-uniformly over four decades (1e-4 to 1). The same study (TPE sampler,
same number of trials) runs once without pruning (baseline) and once per pruner setting given, each
in a workspace of its own, and all of that once per sampler seed (``--seeds``: how much pruning saves
depends on where the sampler happens to look). Counted: the epochs trained over all trials (the
runs' ``epochs_done``) and the study's best score. Target: at least 2x fewer epochs with pruning
(all seeds together), every seed's best score within 1 % of the unpruned study's. The pruners
compared by default: ``"median"`` with Optuna's settings, and ``{ use = "median", n_startup_trials = 3 }``.

Part 2, overhead per trial. A small study of the same workflow without pruning, run (i) through the
plugin (``Workflow.tune``) and (ii) written by hand: ``optuna.create_study`` and an objective with a
plain PyTorch loop on the same data (same model, epochs, batch size, optimizer, seed; the valid
accuracy each epoch, reported to the trial). The by-hand study keeps its trials in memory, as one
writes it; a second by-hand row stores them in SQLite as the plugin does. The paths take turns
``--rounds`` times; each study is timed whole (setup included) and divided by its trials; the median
round counts. The clock that decides is the process's CPU time (all threads), wall time beside it.
Both paths sample the same learning rates and must reach the same best score ("same best").
The plugin's time is then split into the trainer's fit (training, validation, metrics.jsonl,
checkpoints, TensorBoard; its pictures at the start and the pruning callback shown apart), the
artifacts a completed run writes (rendered samples; analyzer reports and confusion matrix), the
check on one batch before each run, and the rest (Optuna's storage, the run store, plans, the study
snapshot). Target: plugin / by hand at most 1.05 (CPU time per trial).

Run: .venv/bin/python benchmarks/tuning.py [--trials N] [--seeds S ...] [--epochs N] [--samples N]
     [--rounds N] [--overhead-trials N] [--pruner JSON ...] [--part pruning|overhead|both]
The defaults take about 5.5 minutes on a 2-core machine (docs/benchmarks.md has the results).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

SPACE_PATH = "trainer.optimizer.lr"
LOW, HIGH = 1e-4, 1.0
DEFAULT_PRUNERS = ['"median"', '{"use": "median", "n_startup_trials": 3}']


def workflow(args, name: str, trials: int, pruner, sampler_seed: int):
    """The workflow of every study here, its [tuning] table included. ``--seed`` is the workflow's
    (the data's split, the model's initial weights); ``sampler_seed`` the study's."""
    import kernel

    return kernel.Workflow.from_dict({
        "name": name, "seed": args.seed,
        "dataset": {"use": "kernel.synthetic", "num_samples": args.samples, "shape": [args.features],
                    "num_classes": args.classes, "noise": args.noise},
        "models": [{"use": "kernel.mlp", "params": {"hidden": args.hidden}}],
        "trainer": {"epochs": args.epochs, "batch_size": args.batch_size, "metrics": ["kernel.accuracy"],
                    "optimizer": {"use": "torch.optim.SGD", "lr": 0.01}},
        "tuning": {"trials": trials, "sampler": "tpe", "pruner": pruner, "seed": sampler_seed, "study": name,
                   "space": {SPACE_PATH: {"float": [LOW, HIGH], "log": True}}},
    })


def pruner_label(pruner) -> str:
    if isinstance(pruner, str):
        return f"{pruner}, defaults" if pruner != "none" else "none"
    settings = ", ".join(f"{k}={v}" for k, v in pruner.items() if k != "use")
    return f"{pruner['use']}, {settings}" if settings else pruner["use"]


# -- part 1: pruning ------------------------------------------------------------------------------
def run_study(args, name: str, pruner, seed: int, folder: str) -> dict:
    """One study in a workspace of its own: its trials' states, epochs trained, best score, time."""
    from optuna.trial import TrialState

    workspace = Path(folder) / name
    wf = workflow(args, name, args.trials, pruner, seed)
    wall, cpu = time.perf_counter(), time.process_time()
    study = wf.tune(workspace=workspace, quiet=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    epochs, states = 0, {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
    for trial in study.trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
        run = trial.user_attrs.get("run")
        if run:
            info = json.loads((workspace / "runs" / run / "run.json").read_text())
            epochs += int(info.get("epochs_done") or 0)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    return {"states": states, "epochs": epochs, "best": study.best_value if done else float("nan"),
            "best_lr": study.best_params.get(SPACE_PATH) if done else float("nan"), "cpu": cpu, "wall": wall}


def pruning_part(args):
    pruners = ["none", *(json.loads(p) for p in args.pruner)]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            for i, pruner in enumerate(pruners):
                results[seed, i] = run_study(args, f"pruning-s{seed}-{i}", pruner, seed, folder)
    print(f"pruning: {args.trials} trials per study, TPE sampler seeds {', '.join(map(str, args.seeds))}, "
          f"lr log-uniform [{LOW:g}, {HIGH:g}], SGD, {args.epochs} epochs, "
          f"MLP {args.features}->{args.hidden}->{args.hidden}->{args.classes}, {args.samples} synthetic samples "
          f"(noise {args.noise}), batch {args.batch_size}")
    print("| pruner | sampler seed | completed / pruned / failed | epochs trained | fewer epochs (x) "
          "| best valid/accuracy | best lr | gap to unpruned best | study cpu s | study wall s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for i, pruner in enumerate(pruners):
        for seed in args.seeds:
            r, base = results[seed, i], results[seed, 0]
            saved = base["epochs"] / r["epochs"] if r["epochs"] else float("inf")
            gap = (base["best"] - r["best"]) / base["best"] if base["best"] else float("nan")
            counts = f"{r['states']['COMPLETE']} / {r['states']['PRUNED']} / {r['states']['FAIL']}"
            print(f"| {pruner_label(pruner)}{' (baseline)' if i == 0 else ''} | {seed} | {counts} | {r['epochs']} "
                  f"| {saved:.2f} | {r['best']:.4f} | {r['best_lr']:.3g} | {'' if i == 0 else f'{100 * gap:+.2f} %'} "
                  f"| {r['cpu']:.1f} | {r['wall']:.1f} |")
    print("| pruner | epochs, all seeds | fewer epochs (x), all seeds | fewest (x), one seed | largest gap "
          "| seeds meeting both | target |")
    print("|---|---:|---:|---:|---:|---:|---|")
    verdicts = []
    total0 = sum(results[seed, 0]["epochs"] for seed in args.seeds)
    for i, pruner in enumerate(pruners):
        total = sum(results[seed, i]["epochs"] for seed in args.seeds)
        ratios = [results[seed, 0]["epochs"] / max(1, results[seed, i]["epochs"]) for seed in args.seeds]
        gaps = [(results[seed, 0]["best"] - results[seed, i]["best"]) / results[seed, 0]["best"] for seed in args.seeds]
        meeting = sum(r >= 2.0 and g <= 0.01 for r, g in zip(ratios, gaps))
        met = total0 / total >= 2.0 and max(gaps) <= 0.01
        if i == 0:
            print(f"| {pruner_label(pruner)} (baseline) | {total} | 1.00 | | | | |")
            continue
        print(f"| {pruner_label(pruner)} | {total} | {total0 / total:.2f} | {min(ratios):.2f} "
              f"| {100 * max(gaps):+.2f} % | {meeting} of {len(args.seeds)} | {'met' if met else 'NOT met'} |")
        verdicts.append((pruner_label(pruner), met))
    print("target (pruning): >= 2x fewer epochs over all seeds, every best within 1 % -> " + "; ".join(
        f"{label}: {'met' if met else 'NOT met'}" for label, met in verdicts))


# -- part 2: overhead per trial ---------------------------------------------------------------------
def by_hand_study(args, data, trials: int, storage, sampler_seed: int):
    """The same study as one writes it with Optuna and a plain PyTorch loop."""
    import optuna
    import torch
    import torch.nn.functional as F
    from torch import nn

    def objective(trial):
        lr = trial.suggest_float(SPACE_PATH, LOW, HIGH, log=True)
        torch.manual_seed(args.seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(args.features, args.hidden), nn.ReLU(),
                              nn.Linear(args.hidden, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.classes))
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        loader = torch.utils.data.DataLoader(data.train, batch_size=args.batch_size, shuffle=True,
                                             generator=torch.Generator().manual_seed(args.seed))
        valid = torch.utils.data.DataLoader(data.valid, batch_size=args.batch_size)
        best = float("-inf")
        for epoch in range(1, args.epochs + 1):
            model.train()
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            model.eval()
            correct, n = 0, 0
            with torch.no_grad():
                for x, y in valid:
                    correct += int((model(x).argmax(1) == y).sum())
                    n += len(y)
            accuracy = correct / n
            best = max(best, accuracy)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return best

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", storage=storage, pruner=optuna.pruners.NopPruner(),
                                sampler=optuna.samplers.TPESampler(seed=sampler_seed))
    study.optimize(objective, n_trials=trials)
    return study


class Split:
    """CPU time of the plugin's parts, by wrapping the kernel's and the plugin's functions in this
    process (their files are left as they are). A part inside another is taken out of it."""

    PARTS = {  # part: (module, owner or None, function, the part it runs inside)
        "fit": ("kernel.training.supervised", "Supervised", "fit", None),
        "tensorboard": ("kernel.training.callbacks", "TensorBoard", "on_fit_start", "fit"),
        "report": ("plugin_tuning.study", "Pruning", "on_epoch_end", "fit"),
        "artifacts": ("kernel.runner", None, "write_artifacts", None),
        "samples": ("kernel.artifacts", None, "write_samples", "artifacts"),
        "check": ("kernel.dryrun", None, "check_models", None),
    }
    LABELS = {
        "fit": "trainer fit: train, validate, metrics, checkpoints, TensorBoard scalars",
        "tensorboard": "trainer fit: TensorBoard sample pictures and model graph at its start",
        "report": "trainer fit: the pruning callback reporting each epoch to the study",
        "samples": "the best run's artifacts, once: rendered samples",
        "artifacts": "the best run's artifacts, once: analyzer reports, confusion matrix",
        "check": "check of one batch before each run",
    }

    def __init__(self):
        self.cpu = dict.fromkeys(self.PARTS, 0.0)

    def wrap(self, owner, name: str, part: str):
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)

        @functools.wraps(original)  # the same signature: the trainer's event bus calls by parameter names
        def timed(*a, **kw):
            start = time.process_time()
            try:
                return original(*a, **kw)
            finally:
                self.cpu[part] += time.process_time() - start

        setattr(owner, name, timed)
        return owner, name, original

    @contextlib.contextmanager
    def installed(self):
        import importlib

        saved = []
        for part, (module, owner, name, _) in self.PARTS.items():
            target = importlib.import_module(module)
            target = getattr(target, owner) if owner else target
            saved.append(self.wrap(target, name, part))
        try:
            yield self
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)

    def net(self) -> dict:
        """Each part's own time, the parts inside it taken out."""
        out = dict(self.cpu)
        for part, (*_, inside) in self.PARTS.items():
            if inside:
                out[inside] -= self.cpu[part]
        return out


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def overhead_part(args):
    import optuna  # noqa: F401  (imported once, as any long session would)
    import torch
    from torch.utils import tensorboard  # noqa: F401

    from kernel.build import prepare

    trials = args.overhead_trials
    seed = args.seeds[0]
    data = prepare(workflow(args, "data", trials, "none", seed)).data  # the by-hand paths' data, not timed
    names = ["by hand: in-memory study, plain loop (baseline)", "by hand: SQLite study, plain loop",
             "plugin: Workflow.tune"]
    times = {n: [] for n in names}
    best = {}
    splits = []
    with tempfile.TemporaryDirectory() as folder:
        # warm-up: the first study of a process imports and builds what every later one reuses
        workflow(args, "warmup", 1, "none", seed).tune(workspace=Path(folder) / "warmup", quiet=True)
        by_hand_study(args, data, 1, None, seed)
        for r in range(args.rounds):  # taking turns spreads the machine's ups and downs over the paths
            for name in names:
                if name.startswith("plugin"):
                    wf = workflow(args, f"overhead-{r}", trials, "none", seed)
                    with Split().installed() as split:
                        study, wall, cpu = timed(lambda: wf.tune(workspace=Path(folder) / f"plugin-{r}", quiet=True))
                    splits.append(split.net())
                elif "SQLite" in name:
                    url = f"sqlite:///{Path(folder) / f'hand-{r}.sqlite3'}"
                    study, wall, cpu = timed(lambda: by_hand_study(args, data, trials, url, seed))
                else:
                    study, wall, cpu = timed(lambda: by_hand_study(args, data, trials, None, seed))
                times[name].append((wall / trials, cpu / trials))
                best[name] = (study.best_value, [round(t.params[SPACE_PATH], 12) for t in study.trials])
    wall0, cpu0 = (statistics.median(t[i] for t in times[names[0]]) for i in (0, 1))
    print(f"overhead: {trials} trials per study, no pruning, {args.epochs} epochs each, "
          f"{int(args.samples * 0.8)} training samples, batch {args.batch_size}, {args.rounds} round(s), "
          f"{torch.get_num_threads()} torch thread(s), CPU")
    print("| path | cpu s/trial | ratio (cpu) | wall s/trial | ratio (wall) | best valid/accuracy | same best |")
    print("|---|---:|---:|---:|---:|---:|---|")
    base_best, base_lrs = best[names[0]]
    for name in names:
        wall, cpu = (statistics.median(t[i] for t in times[name]) for i in (0, 1))
        value, lrs = best[name]
        same = abs(value - base_best) < 1e-6 and lrs == base_lrs
        print(f"| {name} | {cpu:.3f} | {cpu / cpu0:.3f} | {wall:.3f} | {wall / wall0:.3f} | {value:.5f} | "
              f"{'yes' if same else 'differs'} |")
    plugin_cpu = statistics.median(t[1] for t in times[names[-1]])
    # the round whose plugin study took the median time, split into its parts
    rounds = sorted(range(len(splits)), key=lambda i: times[names[-1]][i][1])
    middle = rounds[len(rounds) // 2]
    parts = {p: v / trials for p, v in splits[middle].items()}
    total = times[names[-1]][middle][1]
    shown = {Split.LABELS[p]: parts[p] for p in ("fit", "tensorboard", "report", "samples", "artifacts", "check")}
    shown["the rest: Optuna's storage, the run store, plans, the study snapshot"] = total - sum(parts.values())
    print(f"| plugin cpu s/trial, by part (round {middle + 1}: {total:.3f} s/trial) | s/trial | share "
          f"| against the by-hand trial |")
    print("|---|---:|---:|---:|")
    for label, value in shown.items():
        print(f"| {label} | {value:.3f} | {100 * value / total:.0f} % | {value / cpu0:.3f} |")
    fit = parts["fit"] + parts["tensorboard"] + parts["report"]
    ratio = plugin_cpu / cpu0
    print(f"target (overhead): ratio <= 1.05 -> {'met' if ratio <= 1.05 else 'NOT met'} ({ratio:.3f}); "
          f"the trainer's fit alone: {fit / cpu0:.3f}")


def main():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the tables are the output, not a line per trial
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("pruning", "overhead", "both"), default="both")
    parser.add_argument("--trials", type=int, default=30, help="trials of each pruning study")
    parser.add_argument("--pruner", action="append", metavar="JSON",
                        help=f"a [tuning] pruner setting as JSON, against pruner none (default: {DEFAULT_PRUNERS})")
    parser.add_argument("--overhead-trials", type=int, default=8, help="trials of each overhead study")
    parser.add_argument("--rounds", type=int, default=3, help="the overhead paths take turns this many times")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--noise", type=float, default=2.0)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="the workflow's seed (data split, initial weights)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="the samplers' seeds: each pruning study runs once per seed (overhead: the first one)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    args.pruner = args.pruner or DEFAULT_PRUNERS
    import torch

    torch.set_num_threads(args.threads)
    if args.part in ("pruning", "both"):
        pruning_part(args)
    if args.part == "both":
        print()
    if args.part in ("overhead", "both"):
        overhead_part(args)


if __name__ == "__main__":
    main()

"""The trainer's overhead: a hand-written PyTorch loop against kernel.supervised, same model, same data,
same seed, in one process, on two cases:

  current  MLP 512->256->256->10 (kernel.mlp hidden=256, layers=2), batch 128, AdamW: a step costs enough
           to hide per-step work.
  small    MLP 32->128->10 (kernel.mlp hidden=128, layers=1: one hidden layer of 128), batch 32, Adam
           (issue 17): many cheap steps (500 an epoch), where every microsecond the trainer adds per
           step shows.

Both cases read 20,000 synthetic samples (16,000 train, 4,000 valid) of 10 classes. Time per epoch is
the median time between the starts of consecutive epochs (the first epoch is left out as warm-up, so
start-up is excluded); it includes validation and, for the kernel, everything it does at an epoch's
end (metrics line, run.json, index, checkpoints, TensorBoard, progress). Two clocks: CPU time of the
process (all threads: the kernel's writer thread counts) decides the ratio, since it does not depend
on what else the machine runs; wall time is shown beside it. The loops take turns, round after round,
so that the machine's ups and downs fall on all of them. The plain loop runs a second time each round:
its ratio to the first ("plain PyTorch again") is how far two runs of the same code differ here, the
resolution the kernel's ratios are read with.

Target (issues 3 and 17): ratio at most 1.02 on CPU for the current case, 1.03 for the small one.
Both loops must end with the same weights and losses (so the fused operators are turned off here:
KERNEL_DISABLE_PLUGINS=fused_ops).
Run: .venv/bin/python benchmarks/overhead.py [--case current|small|all] [--rounds N] [--epochs N]
(both cases with the defaults: about 85 s on a 2-core machine, 50 s for current, 35 s for small).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
# The trainer's overhead is measured on the same arithmetic as the plain loop's F.cross_entropy (the
# weights are compared bit for bit): kernel-fused-ops' cross-entropy, which the trainer takes when it
# is installed, is benchmarks/fused_ops.py's subject, not this one's.
os.environ["KERNEL_DISABLE_PLUGINS"] = ",".join(filter(None, [os.environ.get("KERNEL_DISABLE_PLUGINS"), "fused_ops"]))

# the model is kernel.mlp(hidden, layers) over `features` inputs; target: the CPU ratio the case must stay under
CASES = {
    "current": dict(features=512, hidden=256, layers=2, batch_size=128, optimizer="AdamW", target=1.02, epochs=4),
    "small": dict(features=32, hidden=128, layers=1, batch_size=32, optimizer="Adam", target=1.03, epochs=6),
}


def setup(samples: int, features: int, hidden: int, layers: int):
    from kernel.build import prepare
    from kernel.workflow import Workflow

    model = {"use": "kernel.mlp", "params": {"hidden": hidden, "layers": layers}}  # layers: hidden layers
    wf = Workflow(name="overhead", seed=0, models=[model],
                  dataset={"use": "kernel.synthetic", "num_samples": samples, "shape": [features],
                           "num_classes": 10, "noise": 4.0})
    return prepare(wf)


def plain_loop(plan, epochs: int, batch_size: int, optimizer: str):
    """What one writes by hand: shuffled loader, Adam(W), cross-entropy, a validation pass with accuracy."""
    import torch
    import torch.nn.functional as F

    from kernel.seeding import seed_everything

    seed_everything(0)
    model, _ = plan.model(0)
    data = plan.data
    loader = torch.utils.data.DataLoader(data.train, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    valid = torch.utils.data.DataLoader(data.valid, batch_size=batch_size)
    opt = getattr(torch.optim, optimizer)(model.parameters(), lr=1e-3)
    starts, train_loss = [], None
    for _ in range(epochs):
        starts.append((time.perf_counter(), time.process_time()))
        model.train()
        total, count = 0.0, 0
        for x, y in loader:
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            total += loss.item() * len(y)
            count += len(y)
        train_loss = total / count
        model.eval()
        correct, vloss, n = 0, 0.0, 0
        with torch.no_grad():
            for x, y in valid:
                out = model(x)
                vloss += F.cross_entropy(out, y).item() * len(y)
                correct += int((out.argmax(1) == y).sum())
                n += len(y)
    starts.append((time.perf_counter(), time.process_time()))
    return starts, train_loss, vloss / n, model


class EpochTimer:
    def __init__(self):
        self.starts = []

    def on_epoch_start(self, run, state):
        self.starts.append((time.perf_counter(), time.process_time()))

    def on_fit_end(self, run, state):
        self.starts.append((time.perf_counter(), time.process_time()))


def kernel_loop(plan, epochs: int, batch_size: int, optimizer: str, progress: bool, folder: str):
    from kernel.seeding import seed_everything
    from kernel.store import RunStore
    from kernel.training.supervised import Supervised

    seed_everything(0)
    model, _ = plan.model(0)
    run = RunStore(folder).create("overhead", "mlp", monitor="valid/accuracy")
    timer = EpochTimer()
    run.callbacks = [timer]
    run.quiet = not progress
    trainer = Supervised(epochs=epochs, batch_size=batch_size,
                         optimizer={"use": f"torch.optim.{optimizer}", "lr": 1e-3})
    stderr = sys.stderr
    sys.stderr = open(os.devnull, "w")  # the progress lines are made, not shown
    try:
        result = trainer.fit(model, plan.data, run)
    finally:
        sys.stderr.close()
        sys.stderr = stderr
    return timer.starts, result.final["train/loss"], result.final["valid/loss"], model


def per_epoch(starts) -> tuple[float, float]:
    """Median (wall, cpu) seconds per epoch, the first epoch left out."""
    out = []
    for clock in (0, 1):
        gaps = [b[clock] - a[clock] for a, b in zip(starts, starts[1:])]
        out.append(statistics.median(gaps[1:] if len(gaps) > 1 else gaps))
    return tuple(out)


# the plain loop runs twice a round: its second run against its first is the measurement's own noise
# (an A/A comparison), the resolution to read the kernel's ratios with
NAMES = ["plain PyTorch (baseline)", "kernel.supervised, progress off", "kernel.supervised, progress on",
         "plain PyTorch again (noise)"]


def measure(case: dict, rounds: int, folder: str) -> dict:
    """Each loop's (wall, cpu) per epoch of every round, and its last (starts, train loss, valid loss, model)."""
    plan = setup(case["samples"], case["features"], case["hidden"], case["layers"])
    times, last = {n: [] for n in NAMES}, {}
    for _ in range(rounds):  # taking turns spreads the machine's ups and downs over all loops
        for name in NAMES:
            if name.startswith("plain"):
                out = plain_loop(plan, case["epochs"], case["batch_size"], case["optimizer"])
            else:
                out = kernel_loop(plan, case["epochs"], case["batch_size"], case["optimizer"], name.endswith("on"),
                                  folder)
            times[name].append(per_epoch(out[0]))
            last[name] = out
    return {"times": times, "last": last}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=[*CASES, "all"], default="all", help="which case to run (default: all)")
    parser.add_argument("--epochs", type=int, help="epochs per loop (default: 4 current, 6 small)")
    parser.add_argument("--rounds", type=int, default=5, help="the loops take turns this many times")
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--features", type=int, help="input features (default: 512 current, 32 small)")
    parser.add_argument("--batch-size", type=int, help="default: 128 current, 32 small")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    import torch
    from torch.utils import tensorboard  # noqa: F401  (imported once, as any long run would)

    torch.set_num_threads(args.threads)
    cases = {}
    for name in CASES if args.case == "all" else [args.case]:
        case = dict(CASES[name], samples=args.samples)
        case.update({k: v for k, v in (("epochs", args.epochs), ("features", args.features),
                                       ("batch_size", args.batch_size)) if v is not None})
        cases[name] = case
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        results = {name: measure(case, args.rounds, folder) for name, case in cases.items()}
    print(f"overhead: {args.samples * 0.8:.0f} training samples, {args.rounds} rounds, {torch.get_num_threads()} "
          f"thread(s), CPU, {time.perf_counter() - began:.0f} s in all")
    print(f"{'case':<8} {'loop':<34} {'cpu s/ep':>8} {'ratio':>6} {'wall s/ep':>9} {'ratio':>6}  {'train loss':>12} "
          f"{'valid loss':>12}  same weights")
    for cname, case in cases.items():
        times, last = results[cname]["times"], results[cname]["last"]
        print(f"{cname}: {case['features']} features, kernel.mlp hidden={case['hidden']} layers={case['layers']}, "
              f"batch {case['batch_size']}, {case['optimizer']}, {case['epochs']} epochs, target {case['target']}")
        base = last[NAMES[0]]
        w0, t0 = (statistics.median(t[i] for t in times[NAMES[0]]) for i in (0, 1))
        print(f"{cname:<8} {NAMES[0]:<34} {t0:8.3f} {1.0:6.3f} {w0:9.3f} {1.0:6.3f}  {base[1]:12.8f} {base[2]:12.8f}")
        for name in NAMES[1:]:
            starts, tl, vl, model = last[name]
            same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), base[3].state_dict().values()))
            equal = abs(tl - base[1]) < 1e-9 and abs(vl - base[2]) < 1e-9
            w, t = (statistics.median(x[i] for x in times[name]) for i in (0, 1))
            target = case["target"]
            verdict = "" if name.startswith("plain") else "ok" if t / t0 <= target else f"OVER {target}"
            print(f"{cname:<8} {name:<34} {t:8.3f} {t / t0:6.3f} {w:9.3f} {w / w0:6.3f}  {tl:12.8f} {vl:12.8f}  "
                  f"{'yes' if same else 'NO'}{'' if equal else '  (losses differ)'}  {verdict}")


if __name__ == "__main__":
    main()

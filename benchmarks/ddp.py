"""Distributed training on CPU (gloo): one process against two, and the kernel's DDP against a
hand-written DDP loop, same model, same data, same global batch (issue 16).

Model and data: kernel.mlp (hidden=1024, layers=4: 1024->1024x4->10, 4.2M parameters) on
kernel.synthetic (20,480 samples of 1,024 features, 10 classes; the workflow's default split: 16,384
train, 4,096 valid), AdamW, global batch 512 (256 per process on two). A step is ~0.1 s of
arithmetic per process against an all-reduce of 17 MB of gradients: compute-bound.

Threads: each process gets OMP_NUM_THREADS = cpu_count // processes (the rule of the kernel's
launcher, passed explicitly to it here, whatever the environment says): on 2 cores, 1 process x 2
threads against 2 processes x 1 thread, so both use every core. A plain loop on 1 process x 1 thread
is shown beside them as the reference for scaling (ideal: 2 processes at 2.0x it).

1. One process against two (hand-written loops, torch.multiprocessing spawn):
   plain     the PyTorch loop one writes by hand, 1 process: shuffled loader, AdamW, cross-entropy.
   DDP       the same loop under DistributedDataParallel on 2 processes, gloo, DistributedSampler
             (each process a batch of global/2 samples, so the same global batch).
   Throughput: training samples per second of wall time, from the median training phase of the
   epochs after the first. Communication share: after training, each DDP process times the same
   step (forward, backward, AdamW step, on one fixed batch of its share) alternately with DDP's
   gradient all-reduce and under model.no_sync() (no collective at all), a barrier before each step
   and outside the clock; share = 1 - median(no_sync) / median(synced). It is the communication the
   step waits for (what DDP does not hide behind the backward pass, plus waiting for the slower
   process), not the all-reduce's own length, which is printed beside it (one all_reduce of all the
   gradients as a flat tensor, alone).
2. The kernel's DDP against the hand-written DDP loop: `kernel run workflow.toml --nproc-per-node 2
   --quiet` in a subprocess (KERNEL_HOME a temporary folder; metrics = ["kernel.accuracy"];
   checkpoint and TensorBoard left on, the trainer's defaults: last.pt every epoch, best.pt on
   improvement, event files; --kernel-files off|both runs it with them off too). Both sides validate
   every epoch, each process on its share of the valid split with the sums all-reduced (the
   hand-written loop: loss and accuracy; the kernel: loss and torchmetrics' accuracy), and both
   clocks stop at an epoch's end after that validation: the kernel's per-epoch "elapsed_s" of
   metrics.jsonl (rank 0), the hand loop's clock on rank 0 at the same point. Time per epoch is the
   least-squares slope of those epoch-end times from the first epoch's end on, so start-up (launch,
   imports, the data, the first epoch's warm-up) is left out. The loops take turns, round after
   round, and each takes the median of its rounds.
   Two clocks: wall time (the target's), and the CPU time of all the job's processes (every thread;
   the kernel's read from /proc each time metrics.jsonl gains a line, its launcher included), the
   steadier one when other work shares the machine.

Target (issue 16): kernel DDP at most 1.05x the hand-written DDP loop per epoch. On a shared machine
the wall ratios are noisy (two threads of one process suffer most): run more --rounds. CPU/gloo
only: no nccl variant (it would need one GPU per process). The fused operators are turned off
(KERNEL_DISABLE_PLUGINS=fused_ops) so both sides run the same F.cross_entropy.
Run: .venv/bin/python benchmarks/ddp.py [--rounds N] [--epochs N] [--kernel-files on|off|both]
(about 3 minutes with the defaults on an idle 2-core machine).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["KERNEL_DISABLE_PLUGINS"] = ",".join(filter(None, [os.environ.get("KERNEL_DISABLE_PLUGINS"), "fused_ops"]))

PROCESSES = 2


def workflow_dict(cfg: dict) -> dict:
    """The workflow both sides train (the hand loops take its data split and its model)."""
    return {"name": "ddp", "seed": 0,
            "dataset": {"use": "kernel.synthetic", "num_samples": cfg["samples"], "shape": [cfg["features"]],
                        "num_classes": 10, "noise": 4.0},
            "models": [{"use": "kernel.mlp", "params": {"hidden": cfg["hidden"], "layers": cfg["layers"]}}],
            "trainer": {"use": "kernel.supervised", "epochs": cfg["epochs"], "batch_size": cfg["batch_size"],
                        "optimizer": {"use": "torch.optim.AdamW", "lr": 1e-3}, "metrics": ["kernel.accuracy"],
                        "device": "cpu"}}


def workflow_toml(cfg: dict) -> str:
    return f"""name = "ddp"
seed = 0

[dataset]
use = "kernel.synthetic"
num_samples = {cfg['samples']}
shape = [{cfg['features']}]
num_classes = 10
noise = 4.0

[[models]]
use = "kernel.mlp"
params = {{ hidden = {cfg['hidden']}, layers = {cfg['layers']} }}

[trainer]
use = "kernel.supervised"
epochs = {cfg['epochs']}
batch_size = {cfg['batch_size']}
optimizer = {{ use = "torch.optim.AdamW", lr = 1e-3 }}
metrics = ["kernel.accuracy"]
device = "cpu"
"""


def threads_for(processes: int) -> int:
    """The kernel launcher's rule: the cores shared out between the processes."""
    return max(1, (os.cpu_count() or 1) // processes)


# -- the hand-written loops (one function, spawned on 1 or 2 processes) ---------------------------
def hand_worker(rank: int, world: int, threads: int, cfg: dict, port: int, out: str):
    """One process of a hand-written loop (``world`` 1: the plain loop; 2: DDP); rank 0 writes ``out``."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    result = hand_loop(rank, world, cfg)
    if world > 1:
        gc.collect()  # the DDP model gone first: its reducer, holding the group until the exit, can abort it
        dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        Path(out).write_text(json.dumps(result))


def hand_loop(rank: int, world: int, cfg: dict) -> dict:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from kernel.build import prepare
    from kernel.seeding import seed_everything
    from kernel.workflow import Workflow

    plan = prepare(Workflow(**{k: v for k, v in workflow_dict(cfg).items() if k != "trainer"}))
    train, valid = plan.data.train, plan.data.valid
    seed_everything(0)
    model, _ = plan.model(0)
    share = cfg["batch_size"] // world
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
        sampler = torch.utils.data.DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=0)
        loader = torch.utils.data.DataLoader(train, batch_size=share, sampler=sampler)
    else:
        sampler = None
        loader = torch.utils.data.DataLoader(train, batch_size=share, shuffle=True,
                                             generator=torch.Generator().manual_seed(0))
    # the valid split: every world-th sample for each process, the sums all-reduced
    mine = torch.utils.data.Subset(valid, list(range(rank, len(valid), world)))
    valid_loader = torch.utils.data.DataLoader(mine, batch_size=share)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    if world > 1:
        dist.barrier()
    began, cpu_began = time.perf_counter(), time.process_time()
    train_times, epoch_ends, cpu_ends, vloss, vacc = [], [], [], None, None
    for epoch in range(cfg["epochs"]):
        start = time.perf_counter()
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        train_times.append(time.perf_counter() - start)
        model.eval()
        sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n
        with torch.no_grad():
            for x, y in valid_loader:
                outputs = model(x)
                sums += torch.tensor([F.cross_entropy(outputs, y).item() * len(y),
                                      float((outputs.argmax(1) == y).sum()), len(y)], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(sums)
        vloss, vacc = float(sums[0] / sums[2]), float(sums[1] / sums[2])
        epoch_ends.append(time.perf_counter() - began)
        cpu_ends.append(time.process_time() - cpu_began)
    result = {"train_times": train_times, "epoch_ends": epoch_ends, "valid_loss": vloss, "valid_accuracy": vacc,
              "train_samples": len(train), "cpu_ends": cpu_ends}
    if world > 1:
        everyone = [None] * world
        dist.all_gather_object(everyone, cpu_ends)
        result["cpu_ends"] = [sum(c) for c in zip(*everyone)]  # the CPU time of all the processes
        result.update(communication(model, opt, next(iter(loader)), cfg["comm_steps"]))
    return result


def communication(model, opt, batch, steps: int) -> dict:
    """Median seconds of one step with DDP's all-reduce and of the same step under no_sync(), and of
    one all_reduce of all the gradients alone (rank 0's clock; a barrier before each, off the clock)."""
    import contextlib

    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    x, y = batch
    model.train()
    timed = {"synced": [], "no_sync": []}
    for i in range(steps + 1):
        for mode in (("synced", "no_sync") if i % 2 else ("no_sync", "synced")):
            dist.barrier()
            start = time.perf_counter()
            with model.no_sync() if mode == "no_sync" else contextlib.nullcontext():
                F.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i:  # the first pair warms up
                timed[mode].append(time.perf_counter() - start)
    flat = torch.zeros(sum(p.numel() for p in model.parameters()))
    alone = []
    for i in range(steps + 1):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(flat)
        if i:
            alone.append(time.perf_counter() - start)
    return {"step_synced": statistics.median(timed["synced"]), "step_no_sync": statistics.median(timed["no_sync"]),
            "allreduce_alone": statistics.median(alone), "parameters": flat.numel(), "step_samples": len(y)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_hand(world: int, threads: int, cfg: dict, folder: str) -> dict:
    import torch.multiprocessing as mp

    out = os.path.join(folder, f"hand-{world}-{time.monotonic_ns()}.json")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the spawned processes inherit it
    try:
        mp.spawn(hand_worker, args=(world, threads, cfg, free_port(), out), nprocs=world, join=True)
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)
    return json.loads(Path(out).read_text())


# -- the kernel's DDP ------------------------------------------------------------------------------
def run_kernel(cfg: dict, folder: str, files: bool) -> dict:
    """`kernel run --nproc-per-node 2` in a subprocess; ``files``: checkpoint and TensorBoard on (the
    trainer's defaults) or off."""
    home = Path(tempfile.mkdtemp(prefix="kernel-", dir=folder))
    text = workflow_toml(cfg) + ("" if files else "checkpoint = false\ntensorboard = false\n")
    (home / "workflow.toml").write_text(text)
    env = {**os.environ, "KERNEL_HOME": str(home), "OMP_NUM_THREADS": str(threads_for(PROCESSES))}
    logs = (open(home / "stdout.txt", "w+"), open(home / "stderr.txt", "w+"))
    proc = subprocess.Popen([sys.executable, "-m", "kernel.cli", "run", "workflow.toml", "--nproc-per-node",
                             str(PROCESSES), "--quiet"], cwd=home, env=env, stdout=logs[0], stderr=logs[1])
    cpu_ends = cpu_at_epoch_ends(proc, home / "runs")
    for log in logs:
        log.seek(0)
    if proc.returncode != 0:
        sys.exit(f"kernel run failed (exit {proc.returncode}):\n{logs[0].read()}\n{logs[1].read()}")
    rows = [json.loads(line) for f in (home / "runs").glob("*/metrics.jsonl") for line in f.read_text().splitlines()]
    rows = [r for r in rows if "elapsed_s" in r]
    if len(rows) != cfg["epochs"]:
        sys.exit(f"kernel run wrote {len(rows)} epoch lines, expected {cfg['epochs']}")
    return {"epoch_ends": [r["elapsed_s"] for r in rows], "valid_loss": rows[-1].get("valid/loss"),
            "valid_accuracy": rows[-1].get("valid/accuracy"),
            "cpu_ends": cpu_ends if len(cpu_ends) == len(rows) else None}


def cpu_at_epoch_ends(proc, runs: Path) -> list[float]:
    """While ``proc`` (kernel run) trains: the CPU seconds of all its processes (the launcher and the
    workers, every thread) each time metrics.jsonl gains an epoch's line, polled every 20 ms (a stat
    of the file: next to nothing taken from the cores the run uses). Empty where /proc is not there."""
    ends, lines, size, metrics = [], 0, -1, None
    while proc.poll() is None:
        time.sleep(0.02)
        if metrics is None:
            found = list(runs.glob("*/metrics.jsonl")) if runs.is_dir() and Path("/proc").is_dir() else []
            if not found:
                continue
            metrics = found[0]
        try:
            now = metrics.stat().st_size
        except OSError:
            continue
        if now == size:
            continue
        size = now
        done = metrics.read_bytes().count(b"\n")
        if done > lines:
            cpu = tree_cpu(proc.pid)
            ends += [cpu] * (done - lines)
            lines = done
    return ends


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and every process under it, from /proc."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0))[1]
        todo += [p for p, (parent, _) in stats.items() if parent == current]
    return total / os.sysconf("SC_CLK_TCK")


# -- the numbers -------------------------------------------------------------------------------------
def slope(ends: list[float]) -> float:
    """Seconds per epoch: the least-squares slope of the epoch-end times (the first epoch's end on)."""
    if len(ends) < 2:
        raise SystemExit("at least 2 epochs are needed for a time per epoch")
    xs = range(len(ends))
    mx, my = statistics.fmean(xs), statistics.fmean(ends)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ends)) / sum((x - mx) ** 2 for x in xs)


def train_rate(result: dict) -> float:
    """Training samples per second: the median training phase of the epochs after the first."""
    phases = result["train_times"][1:] or result["train_times"]
    return result["train_samples"] / statistics.median(phases)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="the loops take turns this many times (default 2)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per loop, at least 2 (default 4)")
    parser.add_argument("--samples", type=int, default=20480, help="synthetic samples, 80%% train (default 20480)")
    parser.add_argument("--features", type=int, default=1024, help="input features (default 1024)")
    parser.add_argument("--hidden", type=int, default=1024, help="kernel.mlp hidden width (default 1024)")
    parser.add_argument("--layers", type=int, default=4, help="kernel.mlp hidden layers (default 4)")
    parser.add_argument("--batch-size", type=int, default=512, help="the global batch (default 512)")
    parser.add_argument("--comm-steps", type=int, default=10, help="timed steps of each kind for the "
                        "communication share (default 10)")
    parser.add_argument("--kernel-files", choices=["on", "off", "both"], default="on",
                        help="the kernel's checkpoint and TensorBoard: on (the defaults, judged by the target), "
                             "off, or both (one more kernel run a round)")
    parser.add_argument("--no-single-thread", action="store_true",
                        help="leave out the plain loop on 1 process x 1 thread (the reference for scaling)")
    args = parser.parse_args()
    if args.batch_size % PROCESSES:
        parser.error(f"--batch-size must be a multiple of {PROCESSES}")
    cfg = {"samples": args.samples, "features": args.features, "hidden": args.hidden, "layers": args.layers,
           "batch_size": args.batch_size, "epochs": max(2, args.epochs), "comm_steps": max(1, args.comm_steps)}
    t1, tn = threads_for(1), threads_for(PROCESSES)
    loops = {"plain": lambda f: run_hand(1, t1, cfg, f)}
    if not args.no_single_thread and t1 > 1:
        loops["plain, 1 thread"] = lambda f: run_hand(1, 1, cfg, f)
    loops["hand"] = lambda f: run_hand(PROCESSES, tn, cfg, f)
    if args.kernel_files != "off":
        loops["kernel"] = lambda f: run_kernel(cfg, f, files=True)
    if args.kernel_files != "on":
        loops["kernel, files off"] = lambda f: run_kernel(cfg, f, files=False)
    began = time.perf_counter()
    results = {name: [] for name in loops}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):  # taking turns spreads the machine's ups and downs over all loops
            for name, loop in loops.items():
                results[name].append(loop(folder))
    report(results, args, cfg, time.perf_counter() - began)


def report(results: dict, args, cfg: dict, seconds: float):
    med = statistics.median
    hand = results["hand"]
    t1, tn = threads_for(1), threads_for(PROCESSES)
    print(f"ddp: kernel.mlp {args.features}->{args.hidden}x{args.layers}->10 ({hand[0]['parameters']:,} "
          f"parameters), {hand[0]['train_samples']} training samples, global batch {args.batch_size}, AdamW, "
          f"{cfg['epochs']} epochs, {args.rounds} round(s), CPU/gloo ({os.cpu_count()} cores), {seconds:.0f} s in all")
    print()
    print(f"1 process against {PROCESSES} (hand-written loops; OMP_NUM_THREADS = cores // processes)")
    print()
    base = med(train_rate(r) for r in results["plain"])
    print("| loop | processes x threads | train samples/s (wall) | ratio | s/epoch (wall) | CPU s/epoch |")
    print("|---|---|---|---|---|---|")
    for key, name, procs, threads in (("plain", "plain PyTorch, 1 process (baseline)", 1, t1),
                                      ("plain, 1 thread", "plain PyTorch, 1 process, 1 thread", 1, 1),
                                      ("hand", f"hand-written DDP, {PROCESSES} processes", PROCESSES, tn)):
        if key not in results:
            continue
        runs = results[key]
        rate = med(train_rate(r) for r in runs)
        print(f"| {name} | {procs} x {threads} | {rate:,.0f} | {rate / base:.3f} | "
              f"{med(slope(r['epoch_ends']) for r in runs):.3f} | {med(slope(r['cpu_ends']) for r in runs):.3f} |")
    synced, nosync = med(r["step_synced"] for r in hand), med(r["step_no_sync"] for r in hand)
    print()
    print(f"| DDP step ({hand[0]['step_samples']} samples per process, wall) | ms |")
    print("|---|---|")
    print(f"| with the gradients' all-reduce | {synced * 1e3:.1f} |")
    print(f"| under no_sync() | {nosync * 1e3:.1f} |")
    print(f"| communication share (1 - no_sync / all-reduce) | {100 * (1 - nosync / synced):.1f}% |")
    print(f"| one all_reduce of all {hand[0]['parameters']:,} gradients, alone | "
          f"{med(r['allreduce_alone'] for r in hand) * 1e3:.1f} |")
    print()
    print(f"kernel DDP against hand-written DDP ({PROCESSES} processes x {tn} thread(s); both validate every epoch)")
    print()
    keys = [k for k in ("hand", "kernel", "kernel, files off") if k in results]
    cpu = all(r["cpu_ends"] for k in keys for r in results[k])
    wall = {k: med(slope(r["epoch_ends"]) for r in results[k]) for k in keys}
    work = {k: med(slope(r["cpu_ends"]) for r in results[k]) if cpu else float("nan") for k in keys}
    names = {"hand": "hand-written DDP (baseline)",
             "kernel": f"kernel run --nproc-per-node {PROCESSES} (checkpoint, TensorBoard on)",
             "kernel, files off": f"kernel run --nproc-per-node {PROCESSES} (checkpoint, TensorBoard off)"}
    print("| loop | s/epoch (wall) | ratio | CPU s/epoch (all processes) | ratio | valid loss | valid accuracy |")
    print("|---|---|---|---|---|---|---|")
    for key in keys:
        last = results[key][-1]
        print(f"| {names[key]} | {wall[key]:.3f} | {wall[key] / wall['hand']:.3f} | {work[key]:.3f} | "
              f"{work[key] / work['hand']:.3f} | {last['valid_loss']:.4f} | {last['valid_accuracy']:.4f} |")
    judged = "kernel" if "kernel" in results else "kernel, files off"
    ratio, cpu_ratio = wall[judged] / wall["hand"], work[judged] / work["hand"]
    rounds = ", ".join(f"{slope(k['epoch_ends']) / slope(h['epoch_ends']):.3f}" for k, h in zip(results[judged], hand))
    print()
    print(f"target: kernel DDP <= 1.05x hand-written DDP per epoch ({names[judged].split('(')[1][:-1]}) -> "
          f"wall {'met' if ratio <= 1.05 else 'NOT met'} ({ratio:.3f}; each round: {rounds})"
          + (f", CPU {'met' if cpu_ratio <= 1.05 else 'NOT met'} ({cpu_ratio:.3f})" if cpu else
             ", CPU not measured (no /proc)"))

if __name__ == "__main__":
    main()

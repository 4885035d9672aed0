"""Training on several processes: `kernel run --nproc-per-node 2` (torchrun's agent, gloo on CPU,
DistributedDataParallel) trains as one process does, writes from rank 0 only, resumes exactly
after SIGKILL, marks a run whose process died as failed, and refuses what cannot work (exit 2)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kernel.distributed import ShardedBatches
from kernel.errors import KernelError

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.toml"
# the quickstart, shortened: its first model on a quarter of the digits
SHORT = ["--only", "simple_cnn", "--set", "dataset.fraction=0.25"]


def launch(workspace, *args, **popen):
    """`kernel ...` in its own session (so that a test can kill the whole job)."""
    env = {**os.environ, "KERNEL_HOME": str(workspace)}
    return subprocess.Popen([sys.executable, "-m", "kernel.cli", *map(str, args)], cwd=workspace, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            **popen)


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def runs(workspace) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((workspace / "runs").glob("*/run.json"))]


def metrics(workspace, run_id) -> list[dict]:
    return [json.loads(line) for line in (workspace / "runs" / run_id / "metrics.jsonl").read_text().splitlines()]


def descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (the launched workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def rank_of(pid: int):
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [e.split(b"=", 1)[1] for e in env if e.startswith(b"RANK=")]
    return int(ranks[0]) if ranks else None


def wait_for_checkpoint(workspace, proc, timeout=240) -> dict:
    """The run once its first epoch's checkpoint is written (the job still training)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for info in runs(workspace):
            folder = workspace / "runs" / info["id"]
            if (folder / "checkpoints" / "last.pt").exists() and (folder / "metrics.jsonl").exists():
                return info
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("no checkpoint was written in time")


def model_weights(workspace, run_id):
    from kernel.training import checkpoint as ckpt

    return ckpt.load(workspace / "runs" / run_id / "checkpoints" / "last.pt")["model"]


# -- what each process reads -----------------------------------------------------------------------
def test_the_processes_share_out_exactly_the_batches_one_process_draws():
    def global_batches():
        gen = torch.Generator().manual_seed(3)
        return torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(range(103), generator=gen), 16, False)

    one = [list(b) for b in global_batches()]
    for world in (2, 3, 4):
        shares = [list(ShardedBatches(global_batches(), rank, world)) for rank in range(world)]
        assert all(len(s) == len(ShardedBatches(global_batches(), 0, world)) for s in shares)
        # step k of every process together is batch k of one process, each share of (nearly) equal size
        for k, batch in enumerate(one):
            together = [i for s in shares for i in s[k]]
            assert together == batch
            assert max(len(s[k]) for s in shares) - min(len(s[k]) for s in shares) <= 1
    # a last batch smaller than the number of processes cannot be shared out in training: left out
    shares = [list(ShardedBatches(global_batches(), rank, 8)) for rank in range(8)]
    assert [len(s) for s in shares] == [6] * 8 and len(one) == 7 and len(one[-1]) == 7
    # validation reads every sample
    valid = [list(ShardedBatches(global_batches(), rank, 8, every_sample=True)) for rank in range(8)]
    assert sorted(i for s in valid for b in s for i in b) == list(range(103))


# -- two processes ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_train_the_quickstart_as_one_process_does(workspace):
    """Dropout is off (each process draws its own masks) and batch norm synchronised (each process
    would otherwise normalise by its half of the batch): then two processes compute what one does,
    up to the order of float sums (gradients averaged over the processes, batch statistics summed
    in float64): losses agree to 1e-3, and a prediction may flip where two classes score within
    rounding of each other, so accuracy may differ by at most two of the 90 validation samples."""
    same = [*SHORT, "--set", "trainer.epochs=3", "--set", "models[0].params.dropout=0.0",
            "--set", "trainer.sync_batchnorm=true", "--set", "trainer.optimizer.lr=0.001", "--quiet"]
    (workspace / "one").mkdir()
    code, out, err = finish(launch(workspace / "one", "run", QUICKSTART, *same))
    assert code == 0, err
    two = launch(workspace, "run", QUICKSTART, *same, "--nproc-per-node", "2")
    code, out, err = finish(two)
    assert code == 0, err
    assert out.count("simple_cnn") >= 1 and "completed" in out and "Traceback" not in err
    (single,), (info,) = runs(workspace / "one"), runs(workspace)  # rank 0 alone made the run
    assert info["defaults"]["processes"] == 2 and info["defaults"]["process_batch_size"] == 32
    assert info["defaults"]["batch_size"] == 64 and info["status"] == "completed"
    rows_one, rows_two = metrics(workspace / "one", single["id"]), metrics(workspace, info["id"])
    assert [r["epoch"] for r in rows_two] == [1, 2, 3]  # one line per epoch: only rank 0 writes
    n_valid = 90
    for a, b in zip(rows_one, rows_two):
        for key in ("train/loss", "valid/loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-3), (key, a, b)
        for key in ("train/accuracy", "valid/accuracy"):
            assert abs(a[key] - b[key]) <= 2 / n_valid + 1e-6, (key, a, b)
    run_dir = workspace / "runs" / info["id"]
    assert len(list((run_dir / "tensorboard").glob("events.*"))) == 1  # one writer of the TensorBoard files
    assert (run_dir / "artifacts" / "confusion_matrix.json").exists()


@pytest.mark.slow
def test_sigkill_of_the_whole_job_then_resume_ends_with_the_weights_of_an_uninterrupted_run(workspace):
    """Exact resume on two processes: the checkpoint holds each process's random generators and the
    shuffle order, which is drawn as one process draws it. Dropout stays on here."""
    args = [*SHORT, "--set", "trainer.epochs=4", "--set", "trainer.tensorboard=false", "--keep-checkpoints",
            "--quiet", "--nproc-per-node", "2"]
    (workspace / "whole").mkdir()
    code, out, err = finish(launch(workspace / "whole", "run", QUICKSTART, *args))
    assert code == 0, err
    (whole,) = runs(workspace / "whole")

    job = launch(workspace, "run", QUICKSTART, *args)
    info = wait_for_checkpoint(workspace, job)
    for pid in [*descendants(job.pid), job.pid]:  # every process of the job at once, as a scheduler would
        os.kill(pid, signal.SIGKILL)
    job.communicate()
    (killed,) = runs(workspace)
    assert killed["status"] == "running"  # as the kill left it: no process could write anything
    done = len(metrics(workspace, info["id"]))
    assert done < 4

    status = subprocess.run([sys.executable, "-m", "kernel.cli", "runs"], cwd=workspace, text=True,
                            capture_output=True, env={**os.environ, "KERNEL_HOME": str(workspace)})
    assert "interrupted" in status.stdout, status.stdout
    code, out, err = finish(launch(workspace, "resume", info["id"], "--quiet", "--keep-checkpoints",
                                   "--nproc-per-node", "2"))
    assert code == 0, err
    assert "resuming from" in err and f"run {info['id']}: completed" in out
    assert [r["epoch"] for r in metrics(workspace, info["id"])] == [1, 2, 3, 4]
    resumed, uninterrupted = model_weights(workspace, info["id"]), model_weights(workspace / "whole", whole["id"])
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        assert torch.equal(resumed[name], uninterrupted[name]), name


@pytest.mark.slow
def test_a_process_that_dies_fails_the_run_naming_it_and_one_process_resumes_it(workspace):
    job = launch(workspace, "run", QUICKSTART, *SHORT, "--set", "trainer.epochs=4", "--set",
                 "trainer.tensorboard=false", "--quiet", "--nproc-per-node", "2")
    info = wait_for_checkpoint(workspace, job)
    (victim,) = [pid for pid in descendants(job.pid) if rank_of(pid) == 1]
    os.kill(victim, signal.SIGKILL)
    code, out, err = finish(job)
    assert code == 1
    assert f"process 1 (pid {victim} on {socket.gethostname()}) was killed by SIGKILL" in err, err
    assert "Traceback" not in err
    (failed,) = runs(workspace)
    assert failed["status"] == "failed" and "process 1" in failed["reason"] and "SIGKILL" in failed["reason"]
    code, out, err = finish(launch(workspace, "resume", info["id"], "--quiet"))  # on one process this time
    assert code == 0, err
    (resumed,) = runs(workspace)
    assert resumed["status"] == "completed" and resumed["epochs_done"] == 4


# -- what cannot work: one line, exit 2 --------------------------------------------------------------
BAD = [
    (["--set", "trainer.batch_size=1", "--nproc-per-node", "2"],
     "trainer.batch_size = 1 is smaller than the number of processes (2): each process needs a share"),
    (["--set", "trainer.batch_size=64", "--nproc-per-node", "3"],
     "trainer.batch_size = 64 (the global batch) does not split evenly over 3 processes; use a multiple of 3 (63 or 66)"),
    (["--set", "trainer.device=\"cuda\"", "--nproc-per-node", "2"], "asks for GPUs, and this machine has none"),
    (["--parallel", "2", "--nproc-per-node", "2"], "--parallel and --nproc-per-node do not go together"),
    (["--nproc-per-node", "0"], "--nproc-per-node must be 1 or more, not 0"),
    (["--nnodes", "2", "--nproc-per-node", "1"], "--nnodes > 1 needs --rdzv-endpoint HOST:PORT"),
    (["--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"], "--node-rank 2 is not a machine of --nnodes 2"),
    (["--nnodes", "2", "--node-rank", "1", "--rdzv-endpoint", "nohost"], "expected HOST:PORT"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[b[1][:30] for b in BAD])
def test_what_cannot_work_on_several_processes_is_refused_before_launching(cli, args, message):
    if "cuda" in " ".join(args):
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    out = cli("run", QUICKSTART, *SHORT, "--quiet", *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (Path(os.environ["KERNEL_HOME"]) / "runs").exists() or not runs(Path(os.environ["KERNEL_HOME"]))


@pytest.mark.slow
def test_a_rendezvous_that_does_not_answer_is_a_clear_error_within_its_timeout(cli):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    out = cli("run", QUICKSTART, *SHORT, "--quiet", "--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "1",
              "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-timeout", "2", timeout=120)
    assert out.returncode == 2, out.stderr
    assert f"the rendezvous at 127.0.0.1:{port} did not complete" in out.stderr
    assert "is machine 0 started (--node-rank 0)" in out.stderr
    assert out.stderr.count("\n") == 1, out.stderr  # one line: no C++ retries, no traceback
    assert time.monotonic() - started < 60


# -- several machines: docs/distributed.md's SLURM script, two "machines" on this one ---------------
@pytest.mark.slow
def test_the_slurm_example_trains_one_run_over_two_machines(workspace, tmp_path):
    """The `srun` line of docs/distributed.md, run as SLURM runs it: once per machine, with
    SLURM_NNODES and SLURM_NODEID set, here on one host with one process per "machine". Machine 0
    writes the run; machine 1's workspace stays empty (it needs no run store)."""
    text = (ROOT / "docs" / "distributed.md").read_text()
    script = next(block for block in text.split("```sh\n")[1:] if "#SBATCH" in block).split("```")[0]
    command = script.split("srun ", 1)[1].replace("\\\n", " ")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = (command.replace("--nproc-per-node 4", "--nproc-per-node 1").replace(":29500", f":{port}")
               .replace("workflow.toml", f"{QUICKSTART} {' '.join(SHORT)} --set trainer.epochs=2"))
    homes = [workspace, tmp_path / "machine1"]
    homes[1].mkdir()
    machines = [subprocess.Popen(["bash", "-c", command], cwd=home, text=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env={**os.environ, "KERNEL_HOME": str(home), "head": "127.0.0.1",
                                                              "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                                                              "SLURM_NNODES": "2", "SLURM_NODEID": str(node)})
                for node, home in enumerate(homes)]
    for proc in machines:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    (info,) = runs(workspace)
    assert info["status"] == "completed" and info["defaults"]["processes"] == 2
    assert [r["epoch"] for r in metrics(workspace, info["id"])] == [1, 2]
    assert not (homes[1] / "runs").exists()


TINY = """
name = "tiny"
seed = 0
[dataset]
use = "kernel.synthetic"
num_samples = 120
shape = [8]
[trainer]
epochs = 1
tensorboard = false
[[models]]
use = "kernel.mlp"
"""


@pytest.mark.slow
def test_an_abbreviated_launch_option_launches_one_job(cli, write_workflow, workspace):
    """argparse takes --nproc for --nproc-per-node: the launched processes must not launch again."""
    out = cli("run", write_workflow(TINY), "--nproc", "2", "--quiet", timeout=300)
    assert out.returncode == 0, out.stderr
    (info,) = runs(workspace)
    assert info["status"] == "completed" and info["defaults"]["processes"] == 2


def test_a_rank_in_the_environment_alone_does_not_silence_errors(cli):
    out = cli("run", "nosuch.toml", env={"RANK": "1"})
    assert out.returncode == 2 and "nosuch.toml" in out.stderr


def test_processes_on_gpus_take_one_each_however_they_were_started(monkeypatch):
    """The trainer's own check, which torchrun- and SLURM-started processes pass too (the launcher's
    is only kernel's). No GPU here: the GPU count and local rank are stood in for, and said so."""
    from kernel.training import supervised

    with pytest.raises(KernelError, match="'cuda:0' names one GPU"):
        supervised._process_gpu("cuda:0")
    with pytest.raises(KernelError, match=r"process 0 of this machine has no GPU of its own \(the machine has 0\)"):
        supervised._process_gpu("cuda")  # this machine, as it is
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # stand-in: two GPUs
    monkeypatch.setattr(supervised.distributed, "local_rank", lambda: 1)
    assert supervised._process_gpu("cuda") == "cuda:1"
    monkeypatch.setattr(supervised.distributed, "local_rank", lambda: 2)
    with pytest.raises(KernelError, match="start at most 2 processes per machine"):
        supervised._process_gpu("cuda")

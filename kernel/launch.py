"""``kernel run/resume --nproc-per-node N``: the same command on N processes per machine, launched by
PyTorch's own launcher (``torch.distributed.run``, torchrun's elastic agent, in this process).

Each process runs ``python -m kernel.launch <the command without the launch options>``; the
trainer then finds a process group and trains under DistributedDataParallel (kernel/distributed.py).
This launcher checks what it can before starting anything (exit 2 with one line), and when a process
dies it marks the runs it was training failed, naming the rank and why.
"""
from __future__ import annotations

import importlib
import os
import sys
import time

from .errors import KernelError, first_line

#: the launch options, as the run and resume commands take them
OPTIONS = ("--nproc-per-node", "--nnodes", "--node-rank", "--rdzv-endpoint", "--rdzv-timeout")


def add_options(parser):
    """The launch options of ``kernel run`` and ``kernel resume``."""
    group = parser.add_argument_group("several processes (docs/distributed.md)")
    group.add_argument("--nproc-per-node", type=int, metavar="N",
                       help="train each run on N processes of this machine with DistributedDataParallel "
                            "(gloo on CPU, nccl on GPUs: one GPU each); trainer.batch_size is the global batch")
    group.add_argument("--nnodes", type=int, default=1, metavar="M", help="machines taking part (default 1)")
    group.add_argument("--node-rank", type=int, default=0, metavar="R",
                       help="this machine's number, 0 to M-1; machine 0 writes the runs")
    group.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                       help="where machine 0 listens for the others (needed with --nnodes > 1)")
    group.add_argument("--rdzv-timeout", type=int, default=300, metavar="SECONDS",
                       help="how long to wait for the other machines before giving up (default 300)")


def wanted(args) -> bool:
    """Whether the command asks to be launched on several processes."""
    return getattr(args, "nproc_per_node", None) is not None or getattr(args, "nnodes", 1) != 1


def run(args, load_workflow=None) -> int:
    """``kernel run/resume`` with launch options: check them (and the workflow ``load_workflow()``
    gives, when given), then launch the command; the exit code.

    torch's C++ log lines (c10d's retries while it waits for machine 0) are off in this launcher
    process: set before torch loads, then given back so the launched processes keep the user's
    setting; --debug keeps them."""
    quiet = "torch" not in sys.modules and not os.environ.get("KERNEL_DEBUG")
    level = os.environ.get("TORCH_CPP_LOG_LEVEL")
    if quiet:
        os.environ["TORCH_CPP_LOG_LEVEL"] = "FATAL"
    try:
        check(args, load_workflow() if load_workflow else None)
        importlib.import_module("torch")  # c10 reads its log level once, as torch loads: under the quiet setting
    finally:
        if quiet:
            if level is None:
                os.environ.pop("TORCH_CPP_LOG_LEVEL", None)
            else:
                os.environ["TORCH_CPP_LOG_LEVEL"] = level
    return launch(args, args.argv)


def worker_argv(argv: list[str]) -> list[str]:
    """The command line without the launch options (argparse's abbreviations of them too, such as
    ``--nproc``): what each process runs."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if len(name) > 3 and any(option.startswith(name) for option in OPTIONS):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def check(args, workflow=None):
    """The launch options, and what the workflow asks of them; a KernelError (exit 2) when they do not fit."""
    from .distributed import launched

    if launched():  # a launcher in each launched process would launch without end
        raise KernelError("this process is already one of several (torchrun, or kernel run --nproc-per-node): "
                          "give the launch options to the launcher only")
    nproc, nnodes, node_rank = _nproc(args), args.nnodes, args.node_rank
    if nproc < 1:
        raise KernelError(f"--nproc-per-node must be 1 or more, not {nproc}")
    if nnodes < 1:
        raise KernelError(f"--nnodes must be 1 or more, not {nnodes}")
    if not 0 <= node_rank < nnodes:
        raise KernelError(f"--node-rank {node_rank} is not a machine of --nnodes {nnodes} (0 to {nnodes - 1})")
    if nnodes > 1 and not args.rdzv_endpoint:
        raise KernelError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT, where machine 0 (--node-rank 0) listens")
    if args.rdzv_endpoint:
        host, _, port = args.rdzv_endpoint.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise KernelError(f"--rdzv-endpoint {args.rdzv_endpoint!r}: expected HOST:PORT, e.g. node0.cluster:29500")
    if args.rdzv_timeout < 1:
        raise KernelError(f"--rdzv-timeout must be 1 second or more, not {args.rdzv_timeout}")
    if getattr(args, "parallel", 1) > 1:
        raise KernelError("--parallel and --nproc-per-node do not go together: each run already takes every "
                          "process; use --shard I/N on each machine to spread the models instead")
    if workflow is not None:
        _check_workflow(workflow, nproc, nnodes)


def _nproc(args) -> int:
    return 1 if args.nproc_per_node is None else args.nproc_per_node


def _check_workflow(workflow, nproc: int, nnodes: int):
    params = dict(workflow.trainer.params) if workflow.trainer is not None else {}
    device = str(params.get("device", "auto"))
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        gpus = torch.cuda.device_count()
        if gpus == 0:
            raise KernelError(f"trainer.device = {device!r} asks for GPUs, and this machine has none: set "
                              f"trainer.device = \"cpu\" (the processes then talk through gloo)")
        if nproc > gpus:
            raise KernelError(f"--nproc-per-node {nproc} asks for one GPU per process, but this machine has "
                              f"{gpus}; use at most {gpus}")
    batch = params.get("batch_size", "auto")
    if isinstance(batch, int):
        from .training.supervised import check_shares

        check_shares(batch, nproc * nnodes)


def launch(args, argv: list[str]) -> int:
    """Run ``argv`` (a kernel command) on the processes the launch options ask for; the exit code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    import logging
    import tempfile
    import uuid

    nproc = _nproc(args)
    if not os.environ.get("KERNEL_DEBUG"):  # the agent's own log lines: --debug shows them
        for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")]:
            logging.getLogger(name).setLevel(logging.CRITICAL)  # each module's logger has its own level
    if "OMP_NUM_THREADS" not in os.environ:  # the processes share the cores instead of each taking all
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    if args.nnodes == 1 and not args.rdzv_endpoint:
        rdzv = dict(rdzv_backend="c10d", rdzv_endpoint="localhost:0", run_id=uuid.uuid4().hex, rdzv_configs={})
    else:  # machines numbered by --node-rank, machine 0 listening at the endpoint (torchrun's static rendezvous)
        rdzv = dict(rdzv_backend="static", rdzv_endpoint=args.rdzv_endpoint, run_id="kernel",
                    rdzv_configs={"rank": args.node_rank, "timeout": args.rdzv_timeout})
    config = LaunchConfig(min_nodes=args.nnodes, max_nodes=args.nnodes, nproc_per_node=nproc, max_restarts=0,
                          monitor_interval=0.1, start_method="spawn", **rdzv)
    record = tempfile.NamedTemporaryFile("w", prefix="kernel-launch-", suffix=".runs", delete=False)
    record.close()
    os.environ["KERNEL_LAUNCH_RUNS"] = record.name
    started = time.monotonic()
    try:
        elastic_launch(config, sys.executable)("-m", "kernel.launch", *worker_argv(argv))
        return 0
    except ChildFailedError as exc:
        return _after_failure(exc.failures, record.name)
    except (KeyboardInterrupt, SignalException):  # the agent passed the signal on: rank 0 saved the run and said so
        return 130
    except Exception as exc:  # the rendezvous: no other machine came, the endpoint did not answer
        if _is_rendezvous_error(exc):
            waited = time.monotonic() - started
            raise KernelError(f"the rendezvous at {args.rdzv_endpoint} did not complete within {waited:.0f} s "
                              f"(--rdzv-timeout {args.rdzv_timeout}): {first_line(exc).rstrip('.')}; is machine 0 started "
                              f"(--node-rank 0) and the port open to this one?") from None
        raise
    finally:
        os.environ.pop("KERNEL_LAUNCH_RUNS", None)
        try:
            os.unlink(record.name)
        except OSError:
            pass


def _is_rendezvous_error(exc: BaseException) -> bool:
    from torch.distributed import DistError

    names = {type(e).__name__ for e in _chain(exc)}
    return any(isinstance(e, (DistError, TimeoutError, ConnectionError)) for e in _chain(exc)) or \
        any("Rendezvous" in n or "Store" in n for n in names)


def _chain(exc):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def _after_failure(failures: dict, record: str) -> int:
    """Say which process failed and why, mark the run it was training failed, and choose the exit
    code: 2 when a process met a user's mistake (a KernelError: rank 0 printed its own; another
    rank's, say the data missing on its machine, is said here), else 1."""
    # the cause first: a process killed by a signal other than the SIGTERM the agent stops the
    # others with, else the earliest to fail; the others mostly failed because they lost it (a
    # closed connection) or were stopped by the agent
    ordered = sorted(failures.items(), key=lambda item: (item[1].exitcode >= 0, item[1].exitcode == -15,
                                                         item[1].timestamp, item[0]))
    mistakes = [(rank, _message(failure)) for rank, failure in ordered if failure.exitcode == 2]
    if mistakes:
        said = set()
        for rank, message in mistakes:
            if rank != 0 and message and message not in said:
                print(f"kernel: error: (process {rank}) {message}", file=sys.stderr)
            said.add(message)
        rank, message = mistakes[0]
        if rank != 0:  # rank 0 recorded its own; another's would otherwise read as a lost connection
            _mark_failed(record, f"process {rank}: {message}", over_failed=True)
        return 2
    rank, failure = ordered[0]
    message = _message(failure)
    how = (f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else
           f"exited with code {failure.exitcode}") + (f": {message}" if message else "")
    import socket

    reason = f"process {rank} (pid {failure.pid} on {socket.gethostname()}) {how}"
    print(f"kernel: error: {reason}", file=sys.stderr)
    _mark_failed(record, reason, over_failed=failure.exitcode < 0)
    return 1


def _mark_failed(record: str, reason: str, over_failed: bool):
    """The runs the job was training marked failed with ``reason``; one rank 0 marked failed keeps
    its reason unless a process was killed (rank 0's is then only the lost connection)."""
    from .store import Run

    for folder in _recorded_runs(record):
        try:
            run = Run.open(folder)  # run.json as it is now: rank 0 may have marked it meanwhile
        except KernelError:
            continue
        status = run.info.get("status")
        if status in ("running", "interrupted") or (status == "failed" and over_failed):
            run.set_status("failed", reason)
            print(f"kernel: run {run.id} failed; `kernel resume {run.id}` continues it from its last checkpoint",
                  file=sys.stderr)


def _recorded_runs(record: str) -> list[str]:
    try:
        with open(record, encoding="utf-8") as f:
            return list(dict.fromkeys(line.strip() for line in f if line.strip()))
    except OSError:
        return []


def _message(failure) -> str:
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    text = str(message or "").strip()
    if text.startswith("KernelError: "):
        text = text[len("KernelError: "):]
    return "" if text.startswith("To enable traceback") else text.splitlines()[0] if text else ""


def record_error(exc: BaseException):
    """A launched process's error, where the launcher reads it (torchelastic's error file)."""
    if not os.environ.get("TORCHELASTIC_ERROR_FILE"):
        return
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

    try:
        ErrorHandler().record_exception(exc)
    except OSError:
        pass


def worker(argv: list[str]) -> int:
    """One launched process: the kernel command (which joins the job: kernel.distributed.joined).
    An error is handed to the launcher, which says it in one line (the traceback with --debug)."""
    import traceback

    from .cli import main

    try:
        return main(argv)
    except Exception as exc:  # noqa: BLE001 - reported by the launcher, with the rank
        record_error(exc)
        if os.environ.get("KERNEL_DEBUG"):
            traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1:]))

"""Training on several processes: what a process launched by ``torch.distributed.run`` (torchrun,
``kernel run --nproc-per-node N``) needs to take part in one DistributedDataParallel job.

Rank 0 is the only process that writes (run.json, metrics, checkpoints, TensorBoard, the index);
the others compute and get what they must know (the runs, a checkpoint) from rank 0 by broadcast,
so that machines other than rank 0's need no run store at all. Without a process group every
function here is what one process does alone: ``rank() == 0``, ``world_size() == 1``,
``broadcast(x) is x``.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import os
import sys

#: the environment a launcher (torchrun, kernel run --nproc-per-node) gives each process
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched() -> bool:
    """Whether this process was started by torchrun as one of several (WORLD_SIZE > 1)."""
    try:
        return all(k in os.environ for k in LAUNCH_ENV) and int(os.environ["WORLD_SIZE"]) > 1
    except ValueError:
        return False


def active() -> bool:
    """Whether a process group of more than one process is set up in this process."""
    if "torch" not in sys.modules:  # nothing has started one: keep `import kernel` light
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    if not active():  # without importing torch: the runner asks before it prints anything
        return 0
    import torch.distributed as dist

    return dist.get_rank()


def world_size() -> int:
    if not active():
        return 1
    import torch.distributed as dist

    return dist.get_world_size()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0)) if active() else 0


def is_main() -> bool:
    """Rank 0, or a process on its own: the one that writes."""
    return rank() == 0


def start():
    """Join the job this process was launched into: gloo for CPU tensors, and nccl for CUDA tensors
    where this machine has a GPU for each of its processes. Also sets this process's GPU."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "gloo"
    local = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available() and torch.cuda.device_count() > local:
        torch.cuda.set_device(local)
        backend = "cpu:gloo,cuda:nccl"  # one group: CPU tensors through gloo, CUDA tensors through nccl
    _die_with_launcher()
    dist.init_process_group(backend)


@contextlib.contextmanager
def joined():
    """For the block, this process's part in the job it was launched into (torchrun, or kernel run
    --nproc-per-node): the process group set up, and the tables and progress left to rank 0."""
    if not launched():
        yield
        return
    start()
    stdout = sys.stdout
    if rank() != 0:
        sys.stdout = open(os.devnull, "w")
    try:
        yield
        import torch.distributed as dist

        dist.barrier()  # the others wait while rank 0 writes the artifacts (a process that leaves ends the job)
    finally:
        if sys.stdout is not stdout:
            sys.stdout.close()
            sys.stdout = stdout
        stop()


def stop():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _die_with_launcher():
    """Stop (as on Ctrl-C: the cut epoch saved) when the launcher dies: a worker left alone would go
    on training with no one to report it. Linux only (prctl); elsewhere the launcher's own shutdown."""
    import ctypes
    import signal

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# -- moving objects between processes ----------------------------------------------------------
def broadcast(obj=None):
    """Rank 0's ``obj`` on every process (any picklable object)."""
    if not active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj) -> list:
    """Every process's ``obj``, in rank order, on every process."""
    if not active():
        return [obj]
    import torch.distributed as dist

    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def total(values: list[float]) -> list[float]:
    """The element-wise sum over the processes of a few numbers (float64)."""
    if not active():
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


# -- the data each process reads ---------------------------------------------------------------
class ShardedBatches:
    """This process's share of each global batch: the batches are drawn as one process draws them
    (the same shuffle generator, seeded alike on every process), then each is cut into
    ``world_size`` nearly equal contiguous parts, so N processes together see exactly the batches
    one process would. For training, a last batch smaller than the number of processes is left out
    (a process cannot take part in a step with no sample); with ``every_sample`` (validation, where
    processes do not wait for each other per batch) its samples go to some of the processes.
    ``global_sizes`` holds, in order, the size of the global batch each yielded share belongs to
    (the loop weighs an uneven share's loss by it)."""

    def __init__(self, batches, rank: int, world: int, every_sample: bool = False):
        self.batches, self.rank, self.world, self.every_sample = batches, rank, world, every_sample
        self.global_sizes = collections.deque()

    def __len__(self):
        import torch

        count, inner = len(self.batches), self.batches
        while not isinstance(inner, torch.utils.data.BatchSampler) and hasattr(inner, "sampler"):
            inner = inner.sampler  # through SkippingSampler to torch's BatchSampler
        if self.every_sample or not isinstance(inner, torch.utils.data.BatchSampler):
            # a collate function's own batches (by length): their sizes are known only by drawing
            # them; one smaller than the number of processes would be skipped (docs/distributed.md)
            return count
        last = len(inner.sampler) % inner.batch_size
        return count - (1 if 0 < last < self.world else 0)

    def __iter__(self):
        self.global_sizes.clear()
        for batch in self.batches:
            batch = list(batch)
            if len(batch) < self.world and not self.every_sample:
                continue
            share = batch[self.rank * len(batch) // self.world:(self.rank + 1) * len(batch) // self.world]
            if share:
                self.global_sizes.append(len(batch))
                yield share


# -- agreeing on when to stop --------------------------------------------------------------------
class StopVote:
    """Stop requests (a signal, a callback) reach the processes at different batches; each must stop
    after the same one, or one would wait forever for the others' gradients. Each batch every process
    sends its wish without waiting (an asynchronous all-reduce) and reads the previous batch's
    outcome, so all stop together one batch after the first wish, for the price of one tiny
    all-reduce that overlaps the next step."""

    CODES = {None: 0, "completed": 1, "pruned": 2, "interrupted": 3, "failed": 4}

    def __init__(self):
        self.pending = None

    def _code(self, stop) -> int:
        return self.CODES.get(stop[0] if stop else None, 3)

    def batch(self, stop):
        """The stop all processes agreed on as of the previous batch (None: go on); sends this one's."""
        import torch
        import torch.distributed as dist

        agreed = self._outcome()
        wish = torch.tensor([self._code(stop)], dtype=torch.int64)
        self.pending = (wish, dist.all_reduce(wish, op=dist.ReduceOp.MAX, async_op=True))
        return agreed

    def now(self, stop):
        """The stop all processes agree on now (a blocking vote, at the end of an epoch)."""
        import torch
        import torch.distributed as dist

        self._outcome()
        wish = torch.tensor([self._code(stop)], dtype=torch.int64)
        dist.all_reduce(wish, op=dist.ReduceOp.MAX)
        return self._status(int(wish))

    def _outcome(self):
        if self.pending is None:
            return None
        wish, work = self.pending
        self.pending = None
        work.wait()
        return self._status(int(wish))

    def _status(self, code: int):
        if code == 0:
            return None
        return {v: k for k, v in self.CODES.items()}[code]


# -- batch norm over all processes ---------------------------------------------------------------
def sync_batchnorm(model, device_type: str):
    """``model`` with its batch-norm layers computing their statistics over the whole global batch
    (every process's share): torch.nn.SyncBatchNorm on GPUs; on CPU, where torch's runs not (and
    DDP refuses it), the same layers with a forward that sums the statistics over the processes."""
    import torch

    if device_type != "cpu":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for m in model.modules():
        if type(m) in (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d):
            m.__class__ = _synced_class(type(m))
    return model


@functools.cache
def _synced_class(base):
    """``base`` (BatchNorm2d, ...) whose training forward takes its statistics over every process."""
    import torch

    class Synced(base):
        def forward(self, x):
            if not (self.training and active()):
                return super().forward(x)
            self._check_input_dim(x)
            y, mean, var, n = _sync_stats().apply(x, self.weight, self.bias, self.eps)
            if self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                    unbiased = var * (n / (n - 1)) if n > 1 else var
                    self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                    self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
            return y

    Synced.__name__ = Synced.__qualname__ = f"Synced{base.__name__}"
    return Synced


@functools.cache
def _sync_stats():
    """The autograd function of batch norm in training over every process's samples: the forward
    sums x and x² over the processes, the backward the two sums torch's SyncBatchNorm sums (dy, dy·x̂)."""
    import torch
    import torch.distributed as dist

    class SyncStats(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, eps):
            c, dims = x.shape[1], [d for d in range(x.dim()) if d != 1]
            x64 = x.double()
            count = torch.tensor([x.numel() // c], dtype=torch.float64)
            sums = torch.cat([x64.sum(dims), (x64 * x64).sum(dims), count])
            dist.all_reduce(sums)
            n = sums[-1]
            mean = sums[:c] / n
            var = (sums[c:2 * c] / n - mean * mean).clamp_min(0)
            invstd = (var + eps).rsqrt()
            shape = [1, c] + [1] * (x.dim() - 2)
            xhat = ((x64 - mean.view(shape)) * invstd.view(shape)).to(x.dtype)
            ctx.save_for_backward(xhat, weight, invstd.to(x.dtype))
            ctx.n, ctx.dims, ctx.shape = n, dims, shape
            y = xhat if weight is None else xhat * weight.view(shape) + bias.view(shape)
            return y, mean, var, n

        @staticmethod
        def backward(ctx, dy, _mean, _var, _n):
            xhat, weight, invstd = ctx.saved_tensors
            sum_dy, sum_dy_xhat = dy.sum(ctx.dims), (dy * xhat).sum(ctx.dims)
            both = torch.cat([sum_dy, sum_dy_xhat]).double()
            dist.all_reduce(both)
            c, shape = sum_dy.numel(), ctx.shape
            mean_dy, mean_dy_xhat = (both[:c] / ctx.n).to(dy.dtype), (both[c:] / ctx.n).to(dy.dtype)
            scale = invstd if weight is None else invstd * weight
            dx = (dy - mean_dy.view(shape) - xhat * mean_dy_xhat.view(shape)) * scale.view(shape)
            if weight is None:
                return dx, None, None, None
            return dx, sum_dy_xhat, sum_dy, None  # this process's sums: DDP averages them like every gradient

    return SyncStats

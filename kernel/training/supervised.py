"""``kernel.supervised``: the default training loop, with automatic defaults read from the data.

Settings are the workflow's ``[trainer]`` table (docs/training.md). The loop keeps per-batch work to
what a hand-written loop does: no ``.item()`` per batch, metrics updated in chunks, ``batch_end``
fired only at the steps a listener's filter lets through, no context entered that is not needed.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import queue
import signal
import sys
import threading
import time
from typing import Literal

import torch

from .. import distributed
from ..build import call_with_facts, spec_parts
from ..catalog import get_catalog, resolve_target
from ..data import batch_form, batch_sampler_of, batch_size_of, forward, to_device
from ..errors import KernelError, did_you_mean, first_line
from ..metric_mode import mode_for
from . import checkpoint as ckpt
from .events import EventBus
from .result import Result

LOSSES = {"cross_entropy": "torch.nn.CrossEntropyLoss", "bce": "torch.nn.BCEWithLogitsLoss",
          "bce_with_logits": "torch.nn.BCEWithLogitsLoss", "mse": "torch.nn.MSELoss", "l1": "torch.nn.L1Loss",
          "smooth_l1": "torch.nn.SmoothL1Loss", "huber": "torch.nn.HuberLoss", "nll": "torch.nn.NLLLoss"}
ELEMENTWISE = ("BCEWithLogitsLoss", "BCELoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss")
AUTO_LOSS = {"multiclass": "cross_entropy", "binary": "cross_entropy", "multilabel": "bce", "regression": "mse"}
AUTO_METRICS = {"multiclass": ["kernel.accuracy", "kernel.f1"], "binary": ["kernel.accuracy", "kernel.f1"],
                "multilabel": ["kernel.accuracy", "kernel.f1"], "regression": ["kernel.mse", "kernel.mae"]}
TASK_TAG = {"multiclass": "classification", "binary": "classification", "multilabel": "classification",
            "regression": "regression"}
PER_BATCH_SCHEDULERS = ("OneCycleLR", "CyclicLR")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
METRIC_CHUNK = 8192  # samples gathered before a metric update: one update per chunk, not per batch
W = "trainer"  # messages name a setting as the workflow spells it: trainer.epochs


class State:
    """What callbacks and the loop's steps see: the model, optimizer, ``loss_fn``, counters
    (``epoch``, ``step``, ``batch``), the last batch's ``loss`` (a tensor: call ``.item()`` only when
    needed), the last epoch's ``metrics``, ``best``, ``improved``, ``monitor``/``mode``, and ``stop``
    (set through ``run.request_stop``). docs/training.md lists every field."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


class Supervised:
    """Supervised training with automatic defaults (loss, metrics, batch size, device) from the data.

    The loop, top-down: :meth:`fit` -> :meth:`setup`, then :meth:`run_epochs` -> :meth:`run_epoch`
    per epoch -> :meth:`train_epoch` (:meth:`train_step` per batch), :meth:`validate`
    (:meth:`validation_step` per batch), :meth:`end_epoch`. Subclass and override ``train_step`` to
    change how a batch becomes a loss (docs/training.md).

    Args:
        epochs: number of passes over the training split.
        batch_size: samples per batch, or "auto" (64, at most the training split's size).
        optimizer: {use = "torch.optim.AdamW", lr = 1e-3, ...}; any torch optimizer by dotted path.
        scheduler: {use = "torch.optim.lr_scheduler.OneCycleLR", ...}, or none.
        loss: "auto" (from the task), a name (cross_entropy, bce, mse, l1, smooth_l1, huber, nll) or a dotted path.
        metrics: "auto" (from the task) or a list of metric names ("kernel.accuracy", ...).
        monitor: the metric that picks the best epoch, e.g. "valid/accuracy"; "auto" from the metrics.
        mode: "max", "min" or "auto" (min for losses and errors).
        device: "auto" (cuda, mps, cpu) or a torch device name.
        precision: fp32, tf32, bf16 or fp16 (autocast; fp16 with a gradient scaler).
        accumulate: batches whose gradients are summed before each optimizer step.
        clip_grad_norm: clip the gradients' total norm to this value.
        num_workers: DataLoader worker processes, or "auto".
        deterministic: use deterministic algorithms only (slower on GPU).
        early_stopping: {patience = 5, min_delta = 0.0, monitor = ..., mode = ...}, or none.
        checkpoint: write checkpoints/last.pt every epoch and best.pt on improvement.
        tensorboard: write TensorBoard event files.
        progress: show progress (bars on a terminal, periodic lines otherwise).
        sync_batchnorm: on several processes (docs/distributed.md), batch-norm layers take their
            statistics over the whole global batch instead of each process's share.
    """

    def __init__(self, epochs: int = 10, batch_size: int | str = "auto", optimizer: dict | str | None = None,
                 scheduler: dict | str | None = None, loss: str | dict = "auto",
                 metrics: list | Literal["auto"] = "auto",
                 monitor: str = "auto", mode: str = "auto", device: str = "auto", precision: str = "fp32",
                 accumulate: int = 1, clip_grad_norm: float | None = None, num_workers: int | str = "auto",
                 deterministic: bool = False, early_stopping: dict | None = None, checkpoint: bool = True,
                 tensorboard: bool = True, progress: bool = True, sync_batchnorm: bool = False):
        self.epochs, self.batch_size, self.loss, self.metrics = epochs, batch_size, loss, metrics
        self.optimizer = optimizer or {"use": "torch.optim.AdamW", "lr": 1e-3}
        self.scheduler, self.monitor, self.mode, self.device = scheduler, monitor, mode, device
        self.precision, self.accumulate, self.clip_grad_norm = precision, accumulate, clip_grad_norm
        self.num_workers, self.deterministic, self.early_stopping = num_workers, deterministic, early_stopping
        self.checkpoint, self.tensorboard, self.progress = checkpoint, tensorboard, progress
        self.sync_batchnorm = sync_batchnorm
        if not isinstance(epochs, int) or epochs < 1:
            raise KernelError(f"{W}.epochs must be a whole number of at least 1, not {epochs!r}")
        if batch_size != "auto" and (not isinstance(batch_size, int) or batch_size < 1):
            raise KernelError(f"{W}.batch_size must be a positive whole number or \"auto\", not {batch_size!r}")
        if precision not in PRECISIONS:
            raise KernelError(f"{W}.precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        if mode not in ("auto", "min", "max"):
            raise KernelError(f"{W}.mode must be \"min\", \"max\" or \"auto\", not {mode!r}")
        if not isinstance(accumulate, int) or accumulate < 1:
            raise KernelError(f"{W}.accumulate must be a whole number of at least 1, not {accumulate!r}")
        if num_workers != "auto" and (not isinstance(num_workers, int) or num_workers < 0):
            raise KernelError(f"{W}.num_workers must be 0 or more, or \"auto\", not {num_workers!r}")
        self._optimizer_cls, self._optimizer_params = _checked_spec(self.optimizer, "optimizer", skip=("params",))
        if scheduler:
            self._scheduler_cls, self._scheduler_params = _checked_spec(scheduler, "scheduler", skip=("optimizer",))

    # -- automatic defaults ------------------------------------------------------------------
    def describe(self, data) -> dict:
        """The settings this trainer will use on ``data``, automatic defaults resolved; trains nothing."""
        task = data.facts.get("task", "other")
        n_train, processes = len(data.train), distributed.world_size()
        if self.batch_size == "auto":
            batch_size = min(64, n_train)
            batch_size = max(processes, batch_size - batch_size % processes)  # an equal share for each process
        elif self.batch_size > n_train:
            raise KernelError(f"{W}.batch_size = {self.batch_size} is larger than the training split "
                              f"({n_train} samples); use at most {n_train}, or \"auto\"")
        else:
            batch_size = self.batch_size
        check_shares(batch_size, processes)
        loss = self.loss
        if loss == "auto":
            if task not in AUTO_LOSS:
                raise KernelError(f"{W}.loss: no automatic loss for task {task!r}; set trainer.loss")
            loss = AUTO_LOSS[task]
        if isinstance(loss, str) and loss not in LOSSES and "." not in loss and ":" not in loss:
            raise KernelError(f"{W}.loss: unknown loss {loss!r}{did_you_mean(loss, LOSSES)}; "
                              f"use one of {', '.join(LOSSES)} or a dotted path")
        metrics = AUTO_METRICS.get(task, []) if self.metrics == "auto" else list(self.metrics)
        names = [metric_name(m, f"{W}.metrics[{i}]") for i, m in enumerate(metrics)]
        split = "valid" if data.valid is not None else "train"
        monitor = self.monitor
        if monitor == "auto":
            monitor = f"{split}/{names[0]}" if names and task != "regression" else f"{split}/loss"
        prefix, _, name = monitor.partition("/")
        if prefix not in ("train", "valid") or name not in ["loss", *names]:
            choices = [f"{s}/{n}" for s in ("train", "valid") for n in ["loss", *names]]
            raise KernelError(f"{W}.monitor: {monitor!r} is not measured{did_you_mean(monitor, choices)}; "
                              f"choose from {', '.join(choices)}")
        mode = self.mode if self.mode != "auto" else mode_for(name)  # the rule compare and the report use
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else (
                "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu")
        try:
            torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise KernelError(f"{W}.device: {device!r} is not a device ({exc})") from None
        if processes > 1 and torch.device(device).type == "cuda":
            device = _process_gpu(device)
        workers = self.num_workers
        if workers == "auto":
            workers = min(4, (os.cpu_count() or 1) - 1) if device.startswith("cuda") else 0
        return {"task": task, "epochs": self.epochs, "batch_size": batch_size, "loss": _name_of(loss),
                "metrics": metrics, "monitor": monitor, "mode": mode, "device": device,
                "precision": self.precision, "optimizer": _spec_dict(self.optimizer),
                "scheduler": _spec_dict(self.scheduler) if self.scheduler else None,
                "accumulate": self.accumulate, "clip_grad_norm": self.clip_grad_norm, "num_workers": workers,
                **({"processes": processes, "process_batch_size": batch_size // processes} if processes > 1 else {})}

    def build_loss(self, cfg):
        use, params = spec_parts(self.loss if isinstance(self.loss, dict) else cfg["loss"])
        target = resolve_target(LOSSES.get(use, use), f"{W}.loss")
        if getattr(target, "__module__", "").startswith("torch."):
            # a workflow writes class weights as lists; torch's losses take them as tensors
            params = {k: torch.tensor(v, dtype=torch.float32) if _numbers(v) else v for k, v in params.items()}
        try:
            loss = target(**params) if inspect.isclass(target) else target
        except (TypeError, ValueError, RuntimeError) as exc:
            raise KernelError(f"{W}.loss: {exc}") from None
        from .. import fused

        if type(loss) is torch.nn.CrossEntropyLoss and fused.has_kernel("cross_entropy", cfg["device"]):
            # the same loss, parameters and state, computed by the fused operator. Only where it has a
            # kernel for the device: otherwise torch's class computes the same without fused's checks
            # on every batch
            loss.__class__ = fused.CrossEntropyLoss
        return loss

    def build_metrics(self, cfg, data) -> dict:
        catalog, task, out = get_catalog(), cfg["task"], {}
        for i, spec in enumerate(cfg["metrics"]):
            where = f"{W}.metrics[{i}]"
            use, params = spec_parts(spec, where)
            comp = catalog.get(use, "metric") if "." in use and use in catalog.components else catalog.get(use)
            want = TASK_TAG.get(task)
            if comp.plugin != "(import)" and comp.tags and want and want not in comp.tags:
                raise KernelError(f"{where}: {use} measures {'/'.join(comp.tags)}, which does not fit the "
                                  f"task {task!r} of this data; remove it or use a {want} metric")
            metric, _ = call_with_facts(catalog.target(comp), params, data.facts, data.train, where)
            out[metric_name(spec)] = metric
        return out

    def check(self, model, data, defaults=None):
        """Pass one small batch through the model, loss and metrics: a mismatch is a KernelError naming
        the setting. ``defaults``: what :meth:`describe` gave (worked out again when not given)."""
        cfg = defaults or self.describe(data)
        loss_fn, metrics = self.build_loss(cfg), self.build_metrics(cfg, data)
        inputs, targets = data.batch("train", size=min(4, len(data.train)))
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            device = next(model.parameters(), torch.empty(0)).device
            if isinstance(loss_fn, torch.nn.Module):
                loss_fn.to(device)  # its class weights, if any, go where the outputs are
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            out = forward(model, inputs)
            what = f"targets {_describe(targets)}, model outputs {_describe(out)}"
            name = type(loss_fn).__name__
            if name in ELEMENTWISE and isinstance(out, torch.Tensor) and isinstance(targets, torch.Tensor) \
                    and out.shape != targets.shape:
                raise KernelError(f"{W}.loss: {cfg['loss']} needs outputs shaped like the targets ({what}); "
                                  f"choose a loss that fits the targets or leave loss = \"auto\"")
            try:
                value = loss_fn(out, targets)
                assert isinstance(value, torch.Tensor) and value.numel() == 1, "the loss must be one number"
            except Exception as exc:
                raise KernelError(f"{W}.loss: {cfg['loss']} does not fit the targets ({what}): "
                                  f"{first_line(exc)}") from None
            for i, (mname, metric) in enumerate(metrics.items()):
                try:
                    metric.to(device) if hasattr(metric, "to") else None
                    metric.update(out, _metric_target(targets, cfg["task"]))
                    metric.reset()
                except Exception as exc:
                    raise KernelError(f"{W}.metrics[{i}]: {mname} does not fit the task {cfg['task']!r} "
                                      f"({what}): {first_line(exc)}") from None
        model.train(was_training)
        return loss_fn, metrics

    # -- the loop ------------------------------------------------------------------------------
    # fit -> setup, then run_epochs: per epoch run_epoch -> train_epoch (train_step per batch),
    # validate (validation_step per batch), end_epoch. Override train_step/validation_step to change
    # how a batch becomes a loss; the rest (AMP, accumulation, clipping, schedulers, metrics, events,
    # checkpoints, exact resume, progress) stays the loop's.
    def callbacks(self, cfg, extra=()) -> list:
        """The run's callbacks, in the order they are called: the trainer's own around the workflow's."""
        from . import callbacks as C

        out = [C.StopOnNaN()]
        if self.early_stopping:
            params = dict(self.early_stopping) if isinstance(self.early_stopping, dict) else {}
            try:
                out.append(C.EarlyStopping(**params))
            except TypeError as exc:
                raise KernelError(f"{W}.early_stopping: {exc}") from None
        out += list(extra)
        if not distributed.is_main():
            return out  # the files and the progress are rank 0's
        if self.checkpoint:
            out.append(C.Checkpoint())
        if self.tensorboard:
            out.append(C.TensorBoard())
        if self.progress:
            out.append(C.Progress())
        return out

    def fit(self, model, data, run) -> Result:
        """Train ``model`` on ``data``, logging to ``run``; resumes from its checkpoints when ``run.resuming``.

        Process-wide torch settings the fit changes (TF32, deterministic algorithms, ...) are put
        back when it returns or raises.
        """
        cfg = self.describe(data)
        with process_settings_restored():
            state = self.setup(model, data, run, cfg)
            return self.run_epochs(state, run)

    def train_step(self, batch, state):
        """Turn one training batch into its loss; the loop calls it under autocast, then does the
        backward pass, gradient accumulation and scaling, clipping and the optimizer step.

        ``batch`` is ``(inputs, targets)`` on the device. Return the loss (a tensor of one number),
        or ``(loss, outputs)`` so that the train metrics see the model's outputs for ``targets``.
        Override it in a subclass to change the step (docs/training.md); ``state.model`` and
        ``state.loss_fn`` are the model and loss.
        """
        inputs, targets = batch
        outputs = forward(state.model, inputs)
        return state.loss_fn(outputs, targets), outputs

    def validation_step(self, batch, state):
        """Like :meth:`train_step`, for one batch of the valid split (eval mode, no gradients)."""
        inputs, targets = batch
        outputs = forward(state.model, inputs)
        return state.loss_fn(outputs, targets), outputs

    def setup(self, model, data, run, cfg) -> State:
        """Everything the loop needs, in one State: the device, loss and metrics, loaders, optimizer,
        scheduler, gradient scaler and callbacks, restored from the newest checkpoint when resuming."""
        if self.deterministic:
            from ..seeding import seed_everything

            seed_everything(data.seed, deterministic=True)
        device = torch.device(cfg["device"])
        if self.precision == "tf32":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        model.to(device)
        loss_fn, train_metrics = self.check(model, data, cfg)
        for m in train_metrics.values():
            m.to(device) if hasattr(m, "to") else None
        valid_metrics = {k: _clone(m) for k, m in train_metrics.items()} if data.valid is not None else {}
        module = model
        if distributed.active():
            for name, metric in train_metrics.items():
                if not (hasattr(metric, "sync") and hasattr(metric, "unsync")):
                    raise KernelError(f"{W}.metrics: {name} is not a torchmetrics.Metric; on several processes "
                                      f"it would measure rank 0's share of the data only: use a torchmetrics metric")
            model = self._distributed(model, device)
            module = model.module
        generator = torch.Generator().manual_seed(data.seed)
        train_loader, sampler, skip_unit = self._train_loader(data, cfg, device, generator)
        valid_loader = None if data.valid is None else self._valid_loader(data, cfg, device)
        optimizer = self._build_optimizer(module)
        scheduler = self._build_scheduler(optimizer, math.ceil(len(train_loader) / self.accumulate), cfg)
        scaler = torch.amp.GradScaler(device.type) if self.precision == "fp16" else None
        callbacks = self.callbacks(cfg, getattr(run, "callbacks", ()))
        if run.quiet:
            from .callbacks import Progress

            callbacks = [c for c in callbacks if not isinstance(c, Progress)]  # a user's own "Progress" stays
        state = State(trainer=self, model=model, module=module, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                      data=data, device=device, config=cfg, epoch=0, epochs=self.epochs, epochs_done=0, step=0,
                      batch=0, batches=len(train_loader), loss=None, metrics={}, best={}, improved=False,
                      monitor=cfg["monitor"], mode=cfg["mode"], stop=None, callbacks=callbacks,
                      events=EventBus(callbacks), resumed=False, loss_fn=loss_fn, train_metrics=train_metrics,
                      valid_metrics=valid_metrics, train_loader=train_loader, valid_loader=valid_loader,
                      sampler=sampler, skip_unit=skip_unit, generator=generator,
                      sampler_shares=getattr(train_loader.batch_sampler, "global_sizes", None),
                      autocast=_autocast(self.precision, device), accumulated=0, restored=None, partial=None,
                      writer=None, started=None, duration_before=0.0, rng_ranks=None,
                      vote=distributed.StopVote() if distributed.active() else None)
        state.snapshot = functools.partial(self.snapshot, state)
        if run.resuming:
            self.restore(state, run)
        run.state, run.events = state, state.events
        return state

    def run_epochs(self, state, run) -> Result:
        """Train epoch after epoch until ``epochs`` are done or a stop is requested, and record in the
        run how it ended: completed (or as the stop request says), failed or interrupted when it raises."""
        from ..seeding import set_rng_states

        state.writer = BackgroundWriter()
        state.started, state.duration_before = time.time(), float(run.info.get("duration_s") or 0.0)
        handlers = _catch_signals(state)
        run.set_status("running")
        try:
            state.events.fire("fit_start", run, state)
            if state.restored is not None:  # after fit_start: callbacks may draw samples there
                set_rng_states(_own_rng(state.restored))
            while state.epochs_done < self.epochs and state.stop is None:
                self.run_epoch(state, run)
            self._finish(state, run)
        except BaseException as exc:
            self._fail(state, run, exc)
            raise
        finally:
            state.writer.close()
            _restore_signals(handlers)
            run.state = None
        return Result(run.id, run.info["status"], run.info["reason"], state.epochs_done, state.best,
                      run.info["final"], state.monitor)

    def run_epoch(self, state, run):
        """One epoch: train_epoch, validate, end_epoch. An epoch cut short by a stop request ends there."""
        state.epoch = state.epochs_done + 1
        state.events.fire("epoch_start", run, state)
        row = self.train_epoch(state, run)
        if row is None:
            return
        if state.valid_loader is not None:
            row.update(self.validate(state))
        row = distributed.broadcast(row)  # every process decides (best epoch, early stop) on the same numbers
        state.metrics = row
        state.events.fire("validation_end", run, state)
        self.end_epoch(state, run, row)
        if state.vote is not None:
            agreed = state.vote.now(state.stop)
            if agreed is not None:
                state.stop = _agreed_stop(state, agreed)

    def train_epoch(self, state, run) -> dict | None:
        """One pass over the training batches; the epoch's ``train/...`` values, or None when a stop
        request cut the epoch short (an interrupted epoch is saved in last.pt, to be finished on resume)."""
        tally, skip, epoch_generator = self._begin_train_epoch(state)
        # batch_end only at the steps where a listener's filter can let it through (StopOnNaN's
        # every 100): no dispatch per batch for filters that would say no
        period = state.events.period("batch_end")
        for state.batch, batch in enumerate(state.train_loader, start=skip):
            self._train_batch(state, batch, tally)
            if period and state.step % period == 0:
                state.events.fire("batch_end", run, state)
            if state.vote is not None:  # several processes: they stop after the same batch
                agreed = state.vote.batch(state.stop)
                if agreed is not None:
                    state.stop = _agreed_stop(state, agreed)
                    break
            elif state.stop is not None:
                break
        tally.flush()
        if state.stop is not None and state.batch + 1 < state.batches:
            if state.stop[0] == "interrupted" and self.checkpoint:
                self._save_cut_epoch(state, run, tally, epoch_generator)
            return None
        return tally.values("train")

    def validate(self, state) -> dict:
        """The ``valid/...`` values: one validation_step per batch of the valid split."""
        wrapper, state.model = state.model, state.module  # no gradients: no DDP (nor its collectives) needed
        state.model.eval()
        tally = Tally(state.valid_metrics, state.config["task"])
        with torch.no_grad():
            for inputs, targets in state.valid_loader:
                inputs, targets = to_device(inputs, state.device, True), to_device(targets, state.device, True)
                loss, outputs = _loss_and_outputs(_autocast_call(state, self.validation_step, (inputs, targets)),
                                                  "validation_step")
                tally.add(loss.detach(), batch_size_of(inputs), outputs, targets)
        state.model.train()
        state.model = wrapper
        return tally.values("valid")

    def end_epoch(self, state, run, row: dict):
        """After validation: the scheduler's epoch step, the best epoch so far, the metrics line and
        run.json, then ``epoch_end`` (where the Checkpoint callback writes last.pt and best.pt)."""
        lr = state.optimizer.param_groups[0]["lr"]  # the rate this epoch trained with
        self._scheduler_epoch_step(state, row)
        state.epochs_done = state.epoch
        self._track_best(state, row)
        self._record_epoch(state, run, row, lr)
        self._gather_rng(state)
        state.events.fire("epoch_end", run, state)

    def restore(self, state, run):
        """Load the run's newest good checkpoint into ``state``: weights, optimizer, scheduler, scaler,
        callbacks, the shuffle generator and the counters. A cut epoch is left in ``state.partial`` for
        the next train_epoch to finish; the RNG states are set after ``fit_start``."""
        saved = None
        if distributed.is_main():  # the others may have no run store: rank 0's checkpoint is sent to them
            saved, path, problems = ckpt.load_newest(run.checkpoints)
            for p in problems:
                print(f"kernel: warning: {p}; resuming from {path.name}", file=sys.stderr)
        saved = distributed.broadcast(saved)
        state.module.load_state_dict(saved["model"])
        state.optimizer.load_state_dict(saved["optimizer"])
        if state.scheduler is not None and saved.get("scheduler") is not None:
            state.scheduler.load_state_dict(saved["scheduler"])
        if state.scaler is not None and saved.get("scaler"):
            state.scaler.load_state_dict(saved["scaler"])
        for key, cb in _keyed(state.callbacks):
            if key in saved.get("callbacks", {}) and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(saved["callbacks"][key])
        state.generator.set_state(saved["generator"])
        state.epochs_done, state.step, state.best = saved["epoch"], saved["step"], saved.get("best", {})
        state.epoch, state.resumed = saved["epoch"], True
        state.restored, state.partial = saved, saved.get("partial")
        run.truncate_metrics(saved["epoch"])

    def snapshot(self, state, partial: dict | None = None, generator_state=None) -> dict:
        """Everything a resume needs, copied to the CPU so that training goes on while the writer
        thread saves it. ``partial``: a cut epoch's progress; ``generator_state``: the shuffle
        generator as that epoch began. Callbacks call it as ``state.snapshot()``."""
        from ..seeding import rng_states

        return _copy_tensors({
            "epoch": state.epochs_done, "step": state.step, "batches_done": partial["batches_done"] if partial else 0,
            "model": state.module.state_dict(), "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
            "scaler": state.scaler.state_dict() if state.scaler is not None else None, "rng": rng_states(),
            "generator": generator_state if generator_state is not None else state.generator.get_state(),
            "callbacks": {key: cb.state_dict() for key, cb in _keyed(state.callbacks) if hasattr(cb, "state_dict")},
            "transforms": state.data.transform_states(), "best": state.best, "partial": partial,
            **({"rng_ranks": state.rng_ranks} if state.rng_ranks is not None else {})})

    # -- the loop's parts ------------------------------------------------------------------------
    def _train_loader(self, data, cfg, device, generator):
        """The trainer's own training loader, shuffled by ``generator``: its sampler can skip what a
        resumed epoch already did. Returns the loader, that sampler and what one skipped unit counts
        (a sample, or a whole batch when the collate function makes the batches)."""
        train, collate_fn = batch_form(data.train, data.collate_fn)  # transforms that work on whole batches
        batches = batch_sampler_of(collate_fn, train, cfg["batch_size"], shuffle=True, generator=generator)
        if distributed.active():  # the global batches one process would draw, each shared out
            batches = batches or torch.utils.data.BatchSampler(
                torch.utils.data.RandomSampler(train, generator=generator), cfg["batch_size"], drop_last=False)
            sampler = SkippingSampler(batches)
            skip_unit = 1
            order = {"batch_sampler": distributed.ShardedBatches(sampler, distributed.rank(), distributed.world_size())}
        elif batches is None:
            sampler = SkippingSampler(torch.utils.data.RandomSampler(train, generator=generator))
            skip_unit, order = cfg["batch_size"], {"sampler": sampler, "batch_size": cfg["batch_size"]}
        else:  # the collate function groups the batches itself (variable-length samples, by length)
            sampler = SkippingSampler(batches)
            skip_unit, order = 1, {"batch_sampler": sampler}
        workers = cfg["num_workers"]
        loader = torch.utils.data.DataLoader(train, generator=generator, num_workers=workers,
                                             pin_memory=device.type == "cuda", collate_fn=collate_fn,
                                             persistent_workers=workers > 0, **order)
        return loader, sampler, skip_unit

    def _valid_loader(self, data, cfg, device):
        """The valid split in order; on several processes each reads its share of every batch (all
        of them together every sample once) and the metrics are summed over the processes."""
        if not distributed.active():
            return data.loader("valid", cfg["batch_size"], shuffle=False, num_workers=cfg["num_workers"],
                               pin_memory=device.type == "cuda")
        valid, collate_fn = batch_form(data.valid, data.collate_fn)
        batches = batch_sampler_of(collate_fn, valid, cfg["batch_size"]) or torch.utils.data.BatchSampler(
            torch.utils.data.SequentialSampler(valid), cfg["batch_size"], drop_last=False)
        shares = distributed.ShardedBatches(batches, distributed.rank(), distributed.world_size(), every_sample=True)
        workers = cfg["num_workers"]
        return torch.utils.data.DataLoader(valid, batch_sampler=shares, collate_fn=collate_fn, num_workers=workers,
                                           pin_memory=device.type == "cuda", persistent_workers=workers > 0)

    def _distributed(self, model, device):
        """``model`` wrapped in DistributedDataParallel (batch norm synchronised when asked)."""
        from torch.nn.parallel import DistributedDataParallel

        if self.sync_batchnorm:
            model = distributed.sync_batchnorm(model, device.type)
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def _begin_train_epoch(self, state):
        """The epoch's tally, the batches to skip and the shuffle generator's state as the epoch began
        (saved with a cut epoch). A resumed cut epoch goes on after its last batch, in the same order."""
        epoch_generator = state.generator.get_state()
        tally = Tally(state.train_metrics, state.config["task"])
        skip, partial = 0, state.partial
        if partial is not None:
            epoch_generator = state.restored["generator"]
            skip = partial["batches_done"]
            state.sampler.skip = skip * state.skip_unit
            tally.resume(partial, state.device)
            state.partial = None
        state.model.train()
        state.accumulated = 0
        return tally, skip, epoch_generator

    def _train_batch(self, state, batch, tally):
        """train_step under autocast, the backward pass, and an optimizer step every ``accumulate`` batches."""
        inputs, targets = batch
        inputs, targets = to_device(inputs, state.device, True), to_device(targets, state.device, True)
        stepping = state.accumulated + 1 == self.accumulate or state.batch + 1 == state.batches
        if state.vote is None or stepping:  # one process, or the batch of a step: no context to enter
            loss, outputs = self._loss_backward(state, inputs, targets)
        else:  # several processes, gradients accumulating: DDP averages them once, at the step
            with state.model.no_sync():
                loss, outputs = self._loss_backward(state, inputs, targets)
        state.accumulated += 1
        if stepping:
            self._optimizer_step(state)
            state.accumulated = 0
        state.loss = loss.detach()  # before the step count: Progress's thread reads them in this order
        state.step += 1
        tally.add(state.loss, batch_size_of(inputs), _detached(outputs), targets)

    def _loss_backward(self, state, inputs, targets):
        """train_step (under autocast for bf16/fp16) and the backward pass of its loss; (loss, outputs)."""
        loss, outputs = _loss_and_outputs(_autocast_call(state, self.train_step, (inputs, targets)), "train_step")
        scaled = loss / self.accumulate if self.accumulate > 1 else loss
        if state.vote is not None:
            scaled = scaled * _share_weight(state, batch_size_of(inputs))
        (state.scaler.scale(scaled) if state.scaler is not None else scaled).backward()
        return loss, outputs

    def _optimizer_step(self, state):
        """Clip (after unscaling under fp16), step the optimizer, zero the gradients, step a per-batch scheduler."""
        model, optimizer, scaler, scheduler = state.model, state.optimizer, state.scaler, state.scheduler
        if scaler is not None:
            if self.clip_grad_norm:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
        else:
            if self.clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip_grad_norm)
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if scheduler is not None and _per_batch(scheduler):
            scheduler.step()

    def _save_cut_epoch(self, state, run, tally, epoch_generator):
        """last.pt with the cut epoch's progress (batches done, their losses and metric states); on
        several processes, everyone's losses and the metric states summed over the processes."""
        losses = distributed.gather((torch.stack(tally.losses).cpu(), tally.sizes))
        with _synced(tally.metrics):
            metrics = _metric_states(tally.metrics)
        self._gather_rng(state)
        if not distributed.is_main():
            return
        progress = {"batches_done": state.batch + 1, "losses": torch.cat([part[0] for part in losses]),
                    "sizes": torch.tensor([n for part in losses for n in part[1]]), "metrics": metrics}
        state.writer.wait()  # the epoch's earlier writes first: last.pt must end up the newest
        ckpt.save(run.checkpoints / "last.pt", self.snapshot(state, progress, epoch_generator))

    def _gather_rng(self, state):
        """Every process's random number generators, for the checkpoint: each resumes with its own."""
        if distributed.active():
            from ..seeding import rng_states

            state.rng_ranks = distributed.gather(rng_states())

    def _scheduler_epoch_step(self, state, row: dict):
        scheduler = state.scheduler
        if scheduler is None or _per_batch(scheduler):
            return
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(row[state.monitor])
        else:
            scheduler.step()

    def _track_best(self, state, row: dict):
        value, old = row.get(state.monitor), state.best.get(state.monitor)
        state.improved = value is not None and math.isfinite(value) and (
            old is None or (value > old if state.mode == "max" else value < old))
        if state.improved:
            state.best = {"epoch": state.epoch, **row}

    def _record_epoch(self, state, run, row: dict, lr: float):
        """The epoch's line in metrics.jsonl now; run.json on the writer thread."""
        now = time.time()
        run.log({"epoch": state.epoch, "step": state.step, "time": now, "elapsed_s": round(now - state.started, 4),
                 "lr": lr, **row})
        run.info.update(epochs_done=state.epochs_done, best=state.best, final={"epoch": state.epoch, **row},
                        duration_s=round(state.duration_before + now - state.started, 3))
        state.writer.submit(run.save, dict(run.info))

    def _finish(self, state, run):
        """The files written, the run marked completed (or as the stop request says), ``fit_end``."""
        state.writer.wait()
        status, reason = state.stop or ("completed", None)
        run.info["duration_s"] = round(state.duration_before + time.time() - state.started, 3)
        run.set_status(status, reason)
        state.events.fire("fit_end", run, state)

    def _fail(self, state, run, exc: BaseException):
        """The run marked interrupted (a second Ctrl-C) or failed, and ``exception`` fired; the caller re-raises."""
        state.error = exc
        with contextlib.suppress(BaseException):
            state.writer.wait()
        interrupted = isinstance(exc, KeyboardInterrupt)
        with contextlib.suppress(Exception):
            state.events.fire("exception", run, state)
        reason = "interrupted" if interrupted else f"{type(exc).__name__}: {exc}"
        run.info["duration_s"] = round(state.duration_before + time.time() - state.started, 3)
        run.set_status("interrupted" if interrupted else "failed", reason)

    # -- building --------------------------------------------------------------------------------
    def _build_optimizer(self, model):
        try:
            return self._optimizer_cls(model.parameters(), **self._optimizer_params)
        except (TypeError, ValueError) as exc:
            raise KernelError(f"{W}.optimizer: {exc}") from None

    def _build_scheduler(self, optimizer, steps_per_epoch: int, cfg):
        if not self.scheduler:
            return None
        cls, params = self._scheduler_cls, dict(self._scheduler_params)
        name = getattr(cls, "__name__", "")
        if name == "OneCycleLR":
            params.setdefault("max_lr", optimizer.param_groups[0]["lr"])
            if "total_steps" not in params and "steps_per_epoch" not in params:
                params["total_steps"] = self.epochs * steps_per_epoch
        if name == "ReduceLROnPlateau":
            params.setdefault("mode", cfg["mode"])
        try:
            return cls(optimizer, **params)
        except (TypeError, ValueError) as exc:
            raise KernelError(f"{W}.scheduler: {exc}") from None


class BackgroundWriter:
    """One thread that runs file writes (run.json, checkpoints) in order, so that the next epoch does
    not wait for the disk. ``wait()`` returns when all are done and raises the first error."""

    def __init__(self):
        self.jobs, self.error = queue.Queue(), None
        self.thread = threading.Thread(target=self._work, name="kernel-writer", daemon=True)
        self.thread.start()

    def submit(self, fn, *args):
        if self.error is not None:
            raise self.error
        self.jobs.put((fn, args))

    def _work(self):
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                if self.error is None:
                    job[0](*job[1])
            except BaseException as exc:  # noqa: B036 - handed to the training thread
                self.error = exc
            finally:
                self.jobs.task_done()

    def wait(self):
        self.jobs.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def close(self):
        self.jobs.put(None)
        self.thread.join(timeout=60)


class Tally:
    """The running totals of one pass over a split: batch losses and sizes, kept on the device (no
    ``.item()`` per batch), and outputs waiting for the metrics, updated once per METRIC_CHUNK samples."""

    def __init__(self, metrics: dict, task: str):
        self.metrics, self.task = metrics, task
        self.losses, self.sizes, self.pending = [], [], []
        self.saw_outputs = False  # a train_step that returns only the loss leaves the metrics out
        for m in metrics.values():
            m.reset()

    def add(self, loss, size: int, outputs=None, targets=None):
        self.losses.append(loss)
        self.sizes.append(size)
        if outputs is not None:
            self.saw_outputs = True
            self.pending.append((outputs, targets))
            if len(self.pending) * size >= METRIC_CHUNK:
                self.flush()

    def flush(self):
        _update(self.metrics, self.pending, self.task)

    def resume(self, progress: dict, device):
        """Take back a cut epoch's losses, sizes and metric states (see Supervised._save_cut_epoch).
        On several processes rank 0 takes them all (they are sums over the processes) and the
        others start from nothing, so that the epoch's sums come out the same."""
        self.saw_outputs = any(progress["metrics"].values())
        if not distributed.is_main():
            return
        self.losses, self.sizes = list(progress["losses"].to(device).unbind()), progress["sizes"].tolist()
        _load_metric_states(self.metrics, progress["metrics"], device)

    def values(self, split: str) -> dict:
        """``{split}/loss`` (the mean over samples) and ``{split}/{metric}`` for each metric."""
        self.flush()
        # summed over the processes when there are several (a process may have had no batch of a
        # small split, and the metrics' sums need every process: whether any saw outputs is summed too)
        loss_sum, count, saw = distributed.total([_loss_sum(self.losses, self.sizes), sum(self.sizes),
                                                  float(self.saw_outputs)])
        row = {f"{split}/loss": loss_sum / count}
        if saw:
            row.update({f"{split}/{k}": _value(m) for k, m in self.metrics.items()})
        return row


@contextlib.contextmanager
def process_settings_restored():
    """Put back, however the block ends, the process-wide settings a fit may change: TF32 and the
    float32 matmul precision, cuDNN flags, deterministic algorithms, the thread count, grad mode and
    CUBLAS_WORKSPACE_CONFIG. A fit must not change how the rest of the process computes (the next
    model of the workflow, the user's notebook)."""
    saved = [(read, write, read()) for read, write in _process_settings()]
    try:
        yield
    finally:
        for read, write, value in saved:
            if read() != value:  # only what changed: setting some of them has a cost (threads)
                write(value)


def _process_settings() -> list:
    """(read, write) for each process-wide setting, in the order they are put back."""
    backends = torch.backends
    settings = [(torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
                _attribute(backends.cuda.matmul, "allow_tf32"), _attribute(backends.cudnn, "allow_tf32"),
                _attribute(backends.cudnn, "benchmark"), _attribute(backends.cudnn, "deterministic"),
                (lambda: (torch.are_deterministic_algorithms_enabled(),
                          torch.is_deterministic_algorithms_warn_only_enabled()),
                 lambda value: torch.use_deterministic_algorithms(value[0], warn_only=value[1])),
                (torch.get_num_threads, torch.set_num_threads),
                (torch.is_grad_enabled, torch.set_grad_enabled),
                (lambda: os.environ.get("CUBLAS_WORKSPACE_CONFIG"), _set_cublas_workspace_config)]
    # torch >= 2.9 also keeps TF32 per backend as fp32_precision, which the legacy flags above set
    # only coarsely: these, put back last, make the state exactly what it was
    for holder in (backends, backends.cuda.matmul, backends.cudnn, getattr(backends.cudnn, "conv", None),
                   getattr(backends.cudnn, "rnn", None), getattr(backends, "mkldnn", None)):
        if holder is not None and isinstance(getattr(holder, "fp32_precision", None), str):
            settings.append(_attribute(holder, "fp32_precision"))
    return settings


def _attribute(holder, name: str):
    return (lambda: getattr(holder, name)), (lambda value: setattr(holder, name, value))


def _set_cublas_workspace_config(value):
    if value is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = value


def _process_gpu(device: str) -> str:
    """The GPU of this process when several train one run: the one of its local rank. Checked here,
    where every process passes however it was started (kernel's launcher, torchrun, SLURM)."""
    if device != "cuda":
        raise KernelError(f"{W}.device: {device!r} names one GPU, and each of several processes needs its "
                          f"own: set trainer.device = \"cuda\" (a process takes the GPU of its local rank)")
    local, gpus = distributed.local_rank(), torch.cuda.device_count()
    if local >= gpus:
        raise KernelError(f"{W}.device: process {local} of this machine has no GPU of its own (the machine has "
                          f"{gpus}): start at most {gpus} processes per machine, or set trainer.device = \"cpu\"")
    return f"cuda:{local}"


def _autocast(precision: str, device):
    """A context manager factory: autocast to bf16 or fp16 for those precisions; None for fp32 and tf32."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else None


def _autocast_call(state, step, batch):
    """``step(batch, state)``, under autocast for bf16 and fp16 (no context entered per batch otherwise)."""
    if state.autocast is None:
        return step(batch, state)
    with state.autocast():
        return step(batch, state)


def _loss_and_outputs(value, step: str):
    """What a step returned, as (loss, outputs): a step returns the loss, or (loss, outputs)."""
    if isinstance(value, torch.Tensor):
        return value, None
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], torch.Tensor):
        return value[0], value[1]
    raise TypeError(f"{step}() must return the loss (a tensor) or (loss, outputs), not {type(value).__name__}")


def _numbers(value) -> bool:
    """A non-empty list of numbers (or of such lists)."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    return all(_numbers(v) if isinstance(v, (list, tuple)) else
               isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def _detached(outputs):
    return outputs.detach() if isinstance(outputs, torch.Tensor) else outputs


def _keyed(callbacks):
    """(key, callback): the key a callback's state is saved under in a checkpoint."""
    return [(f"{i}:{type(cb).__name__}", cb) for i, cb in enumerate(callbacks)]


def _copy_tensors(obj):
    import torch as _t

    if isinstance(obj, _t.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _copy_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copy_tensors(v) for v in obj)
    return obj


class SkippingSampler(torch.utils.data.Sampler):
    """A sampler (or batch sampler) that can skip the first ``skip`` indices (or batches) of its next
    pass, to finish a cut epoch, drawing its random order exactly as the wrapped sampler would."""

    def __init__(self, sampler):
        self.sampler, self.skip = sampler, 0

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        import itertools

        skip, self.skip = self.skip, 0
        it = iter(self.sampler)
        return itertools.islice(it, skip, None) if skip else it


def metric_name(spec, where: str = "") -> str:
    use, _ = spec_parts(spec, where)
    return use.replace(":", ".").rsplit(".", 1)[-1].lower()


def _checked_spec(spec, what: str, skip=()):
    """The class and parameters of an optimizer or scheduler spec; unknown parameters name the setting."""
    if isinstance(spec, str):
        spec = {"use": spec}
    if not isinstance(spec, dict) or "use" not in spec:
        raise KernelError(f"{W}.{what} must be a table with use = \"torch.optim....\", not {spec!r}")
    use, params = spec_parts(spec)
    cls = resolve_target(use, f"{W}.{what}")
    try:
        known = [p for p in inspect.signature(cls).parameters if p not in skip]
    except (TypeError, ValueError):
        return cls, params
    for key in params:
        if key not in known:
            raise KernelError(f"{W}.{what}.{key}: {use} has no parameter {key!r}{did_you_mean(key, known)}; "
                              f"it takes: {', '.join(known)}")
    return cls, params


def _spec_dict(spec):
    use, params = spec_parts({"use": spec} if isinstance(spec, str) else spec)
    return {"use": use, **params}


def _name_of(loss):
    return loss if isinstance(loss, str) else _spec_dict(loss)["use"]


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).replace('torch.', '')} {tuple(value.shape)}"
    return type(value).__name__


def _metric_target(targets, task):
    return targets.int() if task == "multilabel" and isinstance(targets, torch.Tensor) else targets


def _update(metrics: dict, pending: list, task: str):
    """Update every metric with the gathered batches at once, then forget them."""
    if not pending or not metrics:
        pending.clear()
        return
    if len(pending) == 1:
        out, targets = pending[0]
    else:
        out, targets = torch.cat([p[0] for p in pending]), torch.cat([p[1] for p in pending])
    targets = _metric_target(targets, task)
    for m in metrics.values():
        m.update(out.float(), targets)
    pending.clear()


def _value(metric) -> float:
    v = metric.compute()
    return float(v.float().mean()) if isinstance(v, torch.Tensor) else float(v)


def _loss_sum(losses, sizes) -> float:
    """The batch losses weighted by their sizes: the sum over samples (float64)."""
    if not losses:
        return 0.0  # a process with no sample of this split (several processes, a tiny split)
    weights = torch.tensor(sizes, dtype=torch.float64)
    return float((torch.stack(losses).double().cpu() * weights).sum())


def _clone(metric):
    import copy

    return copy.deepcopy(metric)


def _metric_states(metrics) -> dict:
    return {k: dict(getattr(m, "metric_state", {})) for k, m in metrics.items()}


def _load_metric_states(metrics, states, device):
    for k, m in metrics.items():
        for name, value in states.get(k, {}).items():
            setattr(m, name, to_device(value, device))
        if states.get(k):
            m._update_count = max(1, getattr(m, "_update_count", 0))


def check_shares(batch_size: int, processes: int):
    """On several processes a global batch is shared out equally: it must have a sample for each."""
    if processes == 1 or batch_size % processes == 0:
        return
    if batch_size < processes:
        raise KernelError(f"{W}.batch_size = {batch_size} is smaller than the number of processes ({processes}): "
                          f"each process needs a share of every batch; use at least {processes}")
    low = batch_size - batch_size % processes
    raise KernelError(f"{W}.batch_size = {batch_size} (the global batch) does not split evenly over {processes} "
                      f"processes; use a multiple of {processes} ({low} or {low + processes})")


def _agreed_stop(state, status: str) -> tuple:
    """Every process ends with the status they agreed on, and the reason of the process that asked
    for it (a blocking exchange, once: all processes come here together)."""
    asked = [stop for stop in distributed.gather(state.stop) if stop and stop[0] == status]
    return asked[0] if asked else (status, "stopped on another process")


def _share_weight(state, size: int) -> float:
    """What this process's loss counts for in the averaged gradient: 1 for an equal share of the
    global batch; for the unequal shares of a last, short batch, its size against an equal share,
    so that the gradient is that of the mean over the whole batch (a loss is a mean over samples)."""
    global_size = state.sampler_shares.popleft() if state.sampler_shares is not None else None
    if not global_size:
        return 1.0
    return size * distributed.world_size() / global_size


def _own_rng(saved: dict) -> dict:
    """This process's random number generator states from a checkpoint (each process has its own;
    a different number of processes than the run had takes rank 0's)."""
    ranks = saved.get("rng_ranks")
    if ranks and len(ranks) == distributed.world_size():
        return ranks[distributed.rank()]
    return saved["rng"]


@contextlib.contextmanager
def _synced(metrics: dict):
    """The metrics' states summed over the processes for the block (torchmetrics' sync), then put back."""
    synced = []
    try:
        for m in metrics.values():
            if distributed.active() and hasattr(m, "sync") and hasattr(m, "unsync"):
                m.sync()
                synced.append(m)
        yield
    finally:
        for m in synced:
            m.unsync()


def _per_batch(scheduler) -> bool:
    return type(scheduler).__name__ in PER_BATCH_SCHEDULERS


def _catch_signals(state):
    """SIGINT/SIGTERM stop training after the current batch (last.pt written, run interrupted); a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        if state.stop is not None and state.stop[0] == "interrupted":
            raise KeyboardInterrupt
        state.stop = ("interrupted", f"stopped by {signal.Signals(signum).name}")

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, handler)
    return old


def _restore_signals(old):
    for sig, h in old.items():
        signal.signal(sig, h)

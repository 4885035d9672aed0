"""``kernel.supervised``: the default training loop, with automatic defaults read from the data.

Settings are the workflow's ``[trainer]`` table (docs/training.md). The loop keeps per-batch work to
what a hand-written loop does: no ``.item()`` per batch, metrics updated in chunks, events that no
callback listens to are never fired.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import queue
import signal
import threading
import time

import torch

from ..build import call_with_facts, spec_parts
from ..catalog import get_catalog, resolve_target
from ..data import batch_sampler_of, batch_size_of, forward, to_device
from ..errors import KernelError, did_you_mean
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
W = "trainer.params"


class State:
    """What callbacks see: the model, optimizer, counters (``epoch``, ``step``, ``batch``), the last
    batch's ``loss`` (a tensor: call ``.item()`` only when needed), the last epoch's ``metrics``,
    ``best``, ``improved``, ``monitor``/``mode``, and ``stop`` (set through ``run.request_stop``)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


class Supervised:
    """Supervised training with automatic defaults (loss, metrics, batch size, device) from the data.

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
    """

    def __init__(self, epochs: int = 10, batch_size: int | str = "auto", optimizer: dict | str | None = None,
                 scheduler: dict | str | None = None, loss: str | dict = "auto", metrics: list | str = "auto",
                 monitor: str = "auto", mode: str = "auto", device: str = "auto", precision: str = "fp32",
                 accumulate: int = 1, clip_grad_norm: float | None = None, num_workers: int | str = "auto",
                 deterministic: bool = False, early_stopping: dict | None = None, checkpoint: bool = True,
                 tensorboard: bool = True, progress: bool = True):
        self.epochs, self.batch_size, self.loss, self.metrics = epochs, batch_size, loss, metrics
        self.optimizer = optimizer or {"use": "torch.optim.AdamW", "lr": 1e-3}
        self.scheduler, self.monitor, self.mode, self.device = scheduler, monitor, mode, device
        self.precision, self.accumulate, self.clip_grad_norm = precision, accumulate, clip_grad_norm
        self.num_workers, self.deterministic, self.early_stopping = num_workers, deterministic, early_stopping
        self.checkpoint, self.tensorboard, self.progress = checkpoint, tensorboard, progress
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
        n_train = len(data.train)
        if self.batch_size == "auto":
            batch_size = min(64, n_train)
        elif self.batch_size > n_train:
            raise KernelError(f"{W}.batch_size = {self.batch_size} is larger than the training split "
                              f"({n_train} samples); use at most {n_train}, or \"auto\"")
        else:
            batch_size = self.batch_size
        loss = self.loss
        if loss == "auto":
            if task not in AUTO_LOSS:
                raise KernelError(f"{W}.loss: no automatic loss for task {task!r}; set trainer.loss")
            loss = AUTO_LOSS[task]
        if isinstance(loss, str) and loss not in LOSSES and "." not in loss and ":" not in loss:
            raise KernelError(f"{W}.loss: unknown loss {loss!r}{did_you_mean(loss, LOSSES)}; "
                              f"use one of {', '.join(LOSSES)} or a dotted path")
        metrics = AUTO_METRICS.get(task, []) if self.metrics == "auto" else list(self.metrics)
        names = [metric_name(m) for m in metrics]
        split = "valid" if data.valid is not None else "train"
        monitor = self.monitor
        if monitor == "auto":
            monitor = f"{split}/{names[0]}" if names and task != "regression" else f"{split}/loss"
        prefix, _, name = monitor.partition("/")
        if prefix not in ("train", "valid") or name not in ["loss", *names]:
            choices = [f"{s}/{n}" for s in ("train", "valid") for n in ["loss", *names]]
            raise KernelError(f"{W}.monitor: {monitor!r} is not measured{did_you_mean(monitor, choices)}; "
                              f"choose from {', '.join(choices)}")
        mode = self.mode if self.mode != "auto" else (
            "min" if any(w in name for w in ("loss", "mse", "mae", "error")) else "max")
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else (
                "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu")
        try:
            torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise KernelError(f"{W}.device: {device!r} is not a device ({exc})") from None
        workers = self.num_workers
        if workers == "auto":
            import os

            workers = min(4, (os.cpu_count() or 1) - 1) if device.startswith("cuda") else 0
        return {"task": task, "epochs": self.epochs, "batch_size": batch_size, "loss": _name_of(loss),
                "metrics": metrics, "monitor": monitor, "mode": mode, "device": device,
                "precision": self.precision, "optimizer": _spec_dict(self.optimizer),
                "scheduler": _spec_dict(self.scheduler) if self.scheduler else None,
                "accumulate": self.accumulate, "clip_grad_norm": self.clip_grad_norm, "num_workers": workers}

    def build_loss(self, cfg):
        use, params = spec_parts(self.loss if isinstance(self.loss, dict) else cfg["loss"])
        target = resolve_target(LOSSES.get(use, use), f"{W}.loss")
        try:
            return target(**params) if inspect.isclass(target) else target
        except TypeError as exc:
            raise KernelError(f"{W}.loss: {exc}") from None

    def build_metrics(self, cfg, data) -> dict:
        catalog, task, out = get_catalog(), cfg["task"], {}
        for i, spec in enumerate(cfg["metrics"]):
            use, params = spec_parts(spec)
            where = f"{W}.metrics[{i}]"
            comp = catalog.get(use, "metric") if "." in use and use in catalog.components else catalog.get(use)
            want = TASK_TAG.get(task)
            if comp.plugin != "(import)" and comp.tags and want and want not in comp.tags:
                raise KernelError(f"{where}: {use} measures {'/'.join(comp.tags)}, which does not fit the "
                                  f"task {task!r} of this data; remove it or use a {want} metric")
            metric, _ = call_with_facts(catalog.target(comp), params, data.facts, data.train, where)
            out[metric_name(spec)] = metric
        return out

    def check(self, model, data, cfg=None):
        """Pass one small batch through the model, loss and metrics: a mismatch is a KernelError naming the setting."""
        cfg = cfg or self.describe(data)
        loss_fn, metrics = self.build_loss(cfg), self.build_metrics(cfg, data)
        inputs, targets = data.batch("train", size=min(4, len(data.train)))
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            device = next(model.parameters(), torch.empty(0)).device
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
                                  f"{str(exc).splitlines()[0]}") from None
            for i, (mname, metric) in enumerate(metrics.items()):
                try:
                    metric.to(device) if hasattr(metric, "to") else None
                    metric.update(out, _metric_target(targets, cfg["task"]))
                    metric.reset()
                except Exception as exc:
                    raise KernelError(f"{W}.metrics[{i}]: {mname} does not fit the task {cfg['task']!r} "
                                      f"({what}): {str(exc).splitlines()[0]}") from None
        model.train(was_training)
        return loss_fn, metrics

    # -- training ----------------------------------------------------------------------------
    def callbacks(self, cfg, extra=()) -> list:
        from . import callbacks as C

        out = [C.StopOnNaN()]
        if self.early_stopping:
            params = dict(self.early_stopping) if isinstance(self.early_stopping, dict) else {}
            try:
                out.append(C.EarlyStopping(**params))
            except TypeError as exc:
                raise KernelError(f"{W}.early_stopping: {exc}") from None
        out += list(extra)
        if self.checkpoint:
            out.append(C.Checkpoint())
        if self.tensorboard:
            out.append(C.TensorBoard())
        if self.progress:
            out.append(C.Progress())
        return out

    def fit(self, model, data, run) -> Result:
        """Train ``model`` on ``data``, logging to ``run``; resumes from its checkpoints when ``run.resuming``."""
        from ..seeding import rng_states, seed_everything, set_rng_states

        cfg = self.describe(data)
        if self.deterministic:
            seed_everything(data.seed, deterministic=True)
        device = torch.device(cfg["device"])
        if self.precision == "tf32":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        model.to(device)
        loss_fn, metrics = self.check(model, data, cfg)
        for m in metrics.values():
            m.to(device) if hasattr(m, "to") else None
        valid_metrics = {k: _clone(m) for k, m in metrics.items()} if data.valid is not None else {}
        workers, pin = cfg["num_workers"], device.type == "cuda"
        generator = torch.Generator().manual_seed(data.seed)
        batches = batch_sampler_of(data.collate_fn, data.train, cfg["batch_size"], shuffle=True, generator=generator)
        if batches is None:
            sampler, skip_unit = SkippingSampler(torch.utils.data.RandomSampler(data.train, generator=generator)), \
                cfg["batch_size"]
            order = {"sampler": sampler, "batch_size": cfg["batch_size"]}
        else:  # the collate function groups the batches itself (text: by length)
            sampler, skip_unit = SkippingSampler(batches), 1
            order = {"batch_sampler": sampler}
        # the train loader is the trainer's own: its sampler skips what a resumed epoch already did
        train_loader = torch.utils.data.DataLoader(data.train, generator=generator, num_workers=workers,
                                                   pin_memory=pin, collate_fn=data.collate_fn,
                                                   persistent_workers=workers > 0, **order)
        valid_loader = None if data.valid is None else \
            data.loader("valid", cfg["batch_size"], shuffle=False, num_workers=workers, pin_memory=pin)
        optimizer = self._build_optimizer(model)
        opt_steps = math.ceil(len(train_loader) / self.accumulate)
        scheduler = self._build_scheduler(optimizer, opt_steps, cfg)
        scaler = torch.amp.GradScaler(device.type) if self.precision == "fp16" else None
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp else contextlib.nullcontext
        callbacks = self.callbacks(cfg, getattr(run, "callbacks", ()))
        if run.quiet:
            callbacks = [c for c in callbacks if type(c).__name__ != "Progress"]
        bus = EventBus(callbacks)
        state = State(trainer=self, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                      data=data, device=device, config=cfg, epoch=0, epochs=self.epochs, epochs_done=0, step=0,
                      batch=0, batches=len(train_loader), loss=None, metrics={}, best={}, improved=False,
                      monitor=cfg["monitor"], mode=cfg["mode"], stop=None, callbacks=callbacks, resumed=False,
                      writer=BackgroundWriter())
        partial = None
        if run.resuming:
            saved, path, problems = ckpt.load_newest(run.checkpoints)
            for p in problems:
                print(f"kernel: warning: {p}; resuming from {path.name}")
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            if scheduler is not None and saved.get("scheduler") is not None:
                scheduler.load_state_dict(saved["scheduler"])
            if scaler is not None and saved.get("scaler"):
                scaler.load_state_dict(saved["scaler"])
            for i, cb in enumerate(callbacks):
                key = f"{i}:{type(cb).__name__}"
                if key in saved.get("callbacks", {}) and hasattr(cb, "load_state_dict"):
                    cb.load_state_dict(saved["callbacks"][key])
            generator.set_state(saved["generator"])
            state.epochs_done, state.step, state.best = saved["epoch"], saved["step"], saved.get("best", {})
            state.epoch, state.resumed = saved["epoch"], True
            partial = saved.get("partial")
            run.truncate_metrics(saved["epoch"])
        run.state, run.events = state, bus

        def snapshot(partial_state=None, generator_state=None):
            """Everything a resume needs, copied: training goes on while a writer thread saves it."""
            return _copy_tensors({"epoch": state.epochs_done, "step": state.step,
                    "batches_done": partial_state["batches_done"] if partial_state else 0,
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_states(),
                    "generator": generator_state if generator_state is not None else generator.get_state(),
                    "callbacks": {f"{i}:{type(cb).__name__}": cb.state_dict() for i, cb in enumerate(callbacks)
                                  if hasattr(cb, "state_dict")},
                    "transforms": data.transform_states(), "best": state.best, "partial": partial_state})

        state.snapshot = snapshot
        started, before = time.time(), float(run.info.get("duration_s") or 0.0)
        handlers = _catch_signals(state)
        run.set_status("running")
        try:
            bus.fire("fit_start", run, state)
            if run.resuming:
                set_rng_states(saved["rng"])
            listens = bus.listens("batch_end")
            while state.epochs_done < self.epochs and state.stop is None:
                state.epoch = state.epochs_done + 1
                bus.fire("epoch_start", run, state)
                epoch_generator = generator.get_state()
                losses, sizes, pending, skip = [], [], [], 0
                for m in metrics.values():
                    m.reset()
                if partial is not None:  # an epoch cut by a signal: go on after its last batch
                    epoch_generator = saved["generator"]
                    skip = partial["batches_done"]
                    sampler.skip = skip * skip_unit  # samples, or batches of a batch sampler
                    losses, sizes = list(partial["losses"].to(device).unbind()), partial["sizes"].tolist()
                    _load_metric_states(metrics, partial["metrics"], device)
                    partial = None
                model.train()
                accumulated = 0
                for state.batch, (inputs, targets) in enumerate(train_loader, start=skip):
                    inputs, targets = to_device(inputs, device, True), to_device(targets, device, True)
                    with autocast():
                        out = forward(model, inputs)
                        loss = loss_fn(out, targets)
                    scaled = loss / self.accumulate if self.accumulate > 1 else loss
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                    accumulated += 1
                    if accumulated == self.accumulate or state.batch + 1 == state.batches:
                        self._step(model, optimizer, scaler, scheduler)
                        accumulated = 0
                    state.step += 1
                    state.loss = loss.detach()
                    losses.append(state.loss)
                    sizes.append(batch_size_of(inputs))
                    pending.append((out.detach(), targets))
                    if len(pending) * sizes[-1] >= METRIC_CHUNK:
                        _update(metrics, pending, cfg["task"])
                    if listens:
                        bus.fire("batch_end", run, state)
                    if state.stop is not None:
                        break
                _update(metrics, pending, cfg["task"])
                if state.stop is not None and state.batch + 1 < state.batches:
                    if state.stop[0] == "interrupted" and self.checkpoint:
                        part = {"batches_done": state.batch + 1, "losses": torch.stack(losses).cpu(),
                                "sizes": torch.tensor(sizes), "metrics": _metric_states(metrics)}
                        state.writer.wait()
                        ckpt.save(run.checkpoints / "last.pt", snapshot(part, epoch_generator))
                    break
                row = {"train/loss": _mean(losses, sizes), **{f"train/{k}": _value(m) for k, m in metrics.items()}}
                if valid_loader is not None:
                    row.update(self._validate(model, valid_loader, loss_fn, valid_metrics, device, autocast, cfg))
                state.metrics = row
                bus.fire("validation_end", run, state)
                lr = optimizer.param_groups[0]["lr"]
                if scheduler is not None and not _per_batch(scheduler):
                    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
                    scheduler.step(row[cfg["monitor"]]) if plateau else scheduler.step()
                state.epochs_done = state.epoch
                value = row.get(cfg["monitor"])
                old = state.best.get(cfg["monitor"])
                state.improved = value is not None and math.isfinite(value) and (
                    old is None or (value > old if cfg["mode"] == "max" else value < old))
                if state.improved:
                    state.best = {"epoch": state.epoch, **row}
                now = time.time()
                line = {"epoch": state.epoch, "step": state.step, "time": now, "elapsed_s": round(now - started, 4),
                        "lr": lr, **row}
                run.log(line)
                run.info.update(epochs_done=state.epochs_done, best=state.best, final={"epoch": state.epoch, **row},
                                duration_s=round(before + now - started, 3))
                state.writer.submit(run.save, dict(run.info))
                bus.fire("epoch_end", run, state)
            state.writer.wait()
            status, reason = state.stop or ("completed", None)
            run.info["duration_s"] = round(before + time.time() - started, 3)
            run.set_status(status, reason)
            bus.fire("fit_end", run, state)
        except BaseException as exc:
            state.error = exc
            with contextlib.suppress(BaseException):
                state.writer.wait()
            interrupted = isinstance(exc, KeyboardInterrupt)
            with contextlib.suppress(Exception):
                bus.fire("exception", run, state)
            reason = "interrupted" if interrupted else f"{type(exc).__name__}: {exc}"
            run.info["duration_s"] = round(before + time.time() - started, 3)
            run.set_status("interrupted" if interrupted else "failed", reason)
            raise
        finally:
            state.writer.close()
            _restore_signals(handlers)
            run.state = None
        return Result(run.id, run.info["status"], run.info["reason"], state.epochs_done, state.best,
                      run.info["final"], cfg["monitor"])

    def _step(self, model, optimizer, scaler, scheduler):
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

    def _validate(self, model, loader, loss_fn, metrics, device, autocast, cfg) -> dict:
        model.eval()
        losses, sizes, pending = [], [], []
        for m in metrics.values():
            m.reset()
        with torch.no_grad():
            for inputs, targets in loader:
                inputs, targets = to_device(inputs, device, True), to_device(targets, device, True)
                with autocast():
                    out = forward(model, inputs)
                    losses.append(loss_fn(out, targets).detach())
                sizes.append(batch_size_of(inputs))
                pending.append((out, targets))
                if len(pending) * sizes[-1] >= METRIC_CHUNK:
                    _update(metrics, pending, cfg["task"])
        _update(metrics, pending, cfg["task"])
        model.train()
        return {"valid/loss": _mean(losses, sizes), **{f"valid/{k}": _value(m) for k, m in metrics.items()}}

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


def metric_name(spec) -> str:
    use, _ = spec_parts(spec)
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


def _mean(losses, sizes) -> float:
    weights = torch.tensor(sizes, dtype=torch.float64)
    return float((torch.stack(losses).double().cpu() * weights).sum() / weights.sum())


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

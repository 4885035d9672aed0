"""The built-in callbacks. Each is a run-scoped plugin: ``on_<event>(run, state)`` methods, and
``state_dict``/``load_state_dict`` when it has state that a resumed run must get back."""
from __future__ import annotations

import math
import os
import sys
import threading
import time

from . import checkpoint as ckpt


class EarlyStopping:
    """Stop when the monitored metric has not improved by ``min_delta`` for ``patience`` epochs.

    Args:
        patience: epochs without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.
        monitor: the metric to watch, e.g. "valid/loss"; "auto" uses the trainer's.
        mode: "min", "max" or "auto" (the trainer's).
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, monitor: str = "auto", mode: str = "auto"):
        self.patience, self.min_delta, self.monitor, self.mode = patience, min_delta, monitor, mode
        self.best, self.wait = None, 0

    def on_epoch_end(self, run, state):
        monitor = state.monitor if self.monitor == "auto" else self.monitor
        mode = state.mode if self.mode == "auto" else self.mode
        value = state.metrics.get(monitor)
        if value is None:
            return
        better = self.best is None or (value > self.best + self.min_delta if mode == "max"
                                       else value < self.best - self.min_delta)
        if better:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            run.request_stop(f"early stopping: {monitor} did not improve for {self.patience} epochs")

    def state_dict(self):
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state):
        self.best, self.wait = state["best"], state["wait"]


class StopOnNaN:
    """Fail the run when the loss becomes NaN or infinite (checked every ``check_every`` batches and each epoch).

    Args:
        check_every: batches between checks of the batch loss (each check waits for the device).
    """

    def __init__(self, check_every: int = 100):
        self.filters = {"batch_end": {"every": check_every}}

    def on_batch_end(self, run, state):
        if state.loss is not None and not math.isfinite(float(state.loss)):
            run.request_stop(f"the loss became {float(state.loss)} at epoch {state.epoch}, step {state.step}",
                             status="failed")

    def on_epoch_end(self, run, state):
        for key in ("train/loss", "valid/loss"):
            value = state.metrics.get(key)
            if value is not None and not math.isfinite(value):
                run.request_stop(f"{key} became {value} at epoch {state.epoch}", status="failed")
                return


class Checkpoint:
    """Write ``checkpoints/last.pt`` every epoch (the one before kept as ``previous.pt``) and
    ``best.pt`` when the monitored metric improves."""

    def on_epoch_end(self, run, state):
        if state.stop is not None and state.stop[0] == "failed":
            return  # keep the last good weights
        state.writer.submit(self.save, run.checkpoints, state.snapshot(), state.improved)

    @staticmethod
    def save(folder, snapshot: dict, improved: bool):
        last = folder / "last.pt"
        if last.exists():
            last.replace(folder / "previous.pt")
        ckpt.save(last, snapshot)
        if improved:
            from ..store import write_atomic

            # a copy, not a second name for the same file: a damaged best.pt must leave last.pt
            # (and the reverse) to fall back on
            write_atomic(folder / "best.pt", last.read_bytes())


class TensorBoard:
    """TensorBoard event files in ``tensorboard/``: scalars per epoch, hyper-parameters, the model graph
    and the first training inputs as the renderers draw them (the pictures of the report).

    Args:
        graph: trace the model once to draw its graph.
        samples: training inputs to log as pictures (0: none). The renderer that draws them is
            chosen as for the report; what it does not draw as a picture is left out.
    """

    def __init__(self, graph: bool = True, samples: int = 4):
        self.graph, self.samples, self.writer = graph, samples, None

    def on_fit_start(self, run, state):
        import torch
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run.dir / "tensorboard"),
                                    purge_step=state.epochs_done + 1 if state.resumed else None)
        if state.resumed or run.info.get("artifacts") == "skipped":
            return  # pictures and graph are for a person: not for each of a search's many runs
        inputs, _ = state.data.batch("train", size=16)
        with torch.random.fork_rng(devices=[]):  # a nicety must not change the run's random numbers
            if self.samples:
                self._log_samples(state.data)
            if self.graph:
                from ..data import to_device

                model = getattr(state, "module", state.model)  # the model itself, not its DDP wrapper
                was = model.training
                model.eval()
                try:
                    self.writer.add_graph(model, to_device(inputs, state.device))
                except Exception:
                    pass  # not every model can be traced; the graph is a nicety
                model.train(was)

    def _log_samples(self, data):
        """``samples/train/<i>``: each input drawn by the renderer the kernel picks for it. The kernel
        knows no kind of data: the renderers (of any plugin) decide what a picture of it is."""
        import torch

        try:
            from ..catalog import get_catalog
            from ..rendering import as_media, choose_renderer

            for i in range(min(self.samples, len(data.train))):
                x, y = data.train[i]
                if not isinstance(x, torch.Tensor):
                    return  # inputs that are not one tensor (several, or raw) have no single picture
                meta = {"shape": tuple(x.shape), "dtype": str(x.dtype).replace("torch.", ""), "role": "input",
                        "tags": tuple(data.tags), "classes": data.classes}
                _, renderer = choose_renderer(get_catalog(), meta)
                context = {"input": x, "target": y, "facts": data.facts, "classes": data.classes,
                           "normalize": data.facts.get("normalize")}
                media = as_media(renderer.render(x, context))
                if media.kind == "image":
                    self.writer.add_image(f"samples/train/{i}", _picture(media.data), 0, dataformats="HWC")
        except Exception:
            pass  # pictures in TensorBoard are a nicety: no renderer, or a failing one, leaves them out

    def on_epoch_end(self, run, state):
        for key, value in state.metrics.items():
            self.writer.add_scalar(key, value, state.epoch)
        self.writer.add_scalar("lr", state.optimizer.param_groups[0]["lr"], state.epoch)
        self.writer.flush()

    def on_fit_end(self, run, state):
        hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                   for k, v in {**run.info.get("params", {}), **state.config}.items()}
        best = {f"best/{k}": v for k, v in state.best.items() if isinstance(v, (int, float))}
        try:
            self.writer.add_hparams(hparams, best, run_name="hparams")
        except Exception:
            pass
        self.writer.close()

    def on_exception(self, run, state):
        if self.writer is not None:
            self.writer.close()


def _picture(png: bytes):
    """An encoded image as an (H, W, 3) uint8 array, as TensorBoard takes it."""
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


class Progress:
    """Progress bars with ETA and live loss and metrics on a terminal; plain periodic lines otherwise.

    Refreshed by time, not per batch: a background thread looks at the loop's counters and last loss
    every ``refresh`` seconds, so a batch costs the loop nothing for progress.

    Args:
        refresh: seconds between updates of a bar.
        every: seconds between plain lines within an epoch when not on a terminal.
    """

    def __init__(self, refresh: float = 0.25, every: float = 30.0):
        self.refresh, self.every, self.bar, self.last = refresh, every, None, 0.0
        self.training, self.ticker, self.skip, self.step0 = False, None, 0, 0
        self.lock = threading.Lock()  # the thread's refreshes against the loop's epoch lines

    def on_fit_start(self, run, state):
        from rich.console import Console

        self.console = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        self.label = run.info.get("model", run.id)
        if sys.stderr.isatty() and os.environ.get("KERNEL_PROGRESS") != "lines":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, \
                TimeElapsedColumn, TimeRemainingColumn

            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           TimeRemainingColumn(), TextColumn("{task.fields[live]}"), console=self.console,
                           transient=True, auto_refresh=False)  # refreshed by this callback's thread
            self.bar.start()
            self.task = self.bar.add_task("", total=state.batches, live="")
        self.last, self.state = time.monotonic(), state
        self.done = threading.Event()  # a new one per fit: set when it ends
        self.ticker = threading.Thread(target=self._tick, name="kernel-progress", daemon=True)
        self.ticker.start()

    def on_epoch_start(self, run, state):
        self.t0 = time.monotonic()
        with self.lock:
            if self.bar is not None:
                self.bar.reset(self.task, total=state.batches,
                               description=f"{self.label} epoch {state.epoch}/{state.epochs}", live="")
                self.bar.refresh()
            # batches done so far in this epoch: those a resumed cut epoch had done, then one per step
            self.skip = state.partial["batches_done"] if getattr(state, "partial", None) else 0
            self.step0, self.training = state.step, True

    def _tick(self):
        """Until the fit ends: the bar every ``refresh`` seconds; a line when ``every`` seconds passed
        since the last one (the thread sleeps until then: it takes the GIL only when there is work)."""
        while True:
            with self.lock:
                wait = self.refresh if self.bar is not None else self.last + self.every - time.monotonic()
            if self.done.wait(max(wait, self.refresh)):
                return
            try:
                self._show()
            except Exception:  # progress is a nicety: a failed refresh must not end the run or the thread
                pass

    def _show(self):
        """The bar, or a line, from the state: the batches done in this epoch and the last loss."""
        with self.lock:
            state, now = self.state, time.monotonic()
            done = self.skip + state.step - self.step0
            # a batch of this epoch has ended, and the pass is not over
            running = self.training and done > self.skip and state.stop is None
            if self.bar is not None:
                if running:
                    self.bar.update(self.task, completed=done, live=f"loss {float(state.loss):.4g}")
                self.bar.refresh()  # the bar's own thread is off: elapsed and remaining time tick here
            elif running and now - self.last >= self.every and done < state.batches:
                self.console.print(f"{self.label} epoch {state.epoch}/{state.epochs} batch {done}/"
                                   f"{state.batches} loss {float(state.loss):.4g}")
                self.last = now

    def on_validation_end(self, run, state):
        with self.lock:
            self.training = False  # the counters are the finished pass's: no more lines for it

    def on_epoch_end(self, run, state):
        values = "  ".join(f"{k} {v:.4g}" for k, v in state.metrics.items())
        mark = " *" if state.improved else ""
        with self.lock:
            self.console.print(f"{self.label} epoch {state.epoch}/{state.epochs}  {values}  "
                               f"({time.monotonic() - self.t0:.1f}s){mark}")
            self.last = time.monotonic()

    def on_fit_end(self, run, state):
        self._close()
        self.console.print(f"{self.label}: {run.info['status']}" + (f" ({run.info['reason']})" if run.info.get('reason')
                                                                     else ""))

    def on_exception(self, run, state):
        self._close()

    def _close(self):
        """The thread stopped and joined, the bar taken down: the fit is over, however it ended."""
        if self.ticker is not None:
            self.done.set()
            self.ticker.join(timeout=5)
            self.ticker = None
        if self.bar is not None:
            self.bar.stop()

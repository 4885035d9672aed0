"""A study over a workflow: each trial is one run of the workflow with sampled values, in the run
store like any other, scored by its best epoch of the monitored metric.

Several workers (processes here, or on other machines sharing the storage) run one study. Each
asks for one trial at a time and stops when the study has ``trials`` finished ones; a worker that
starts a trial in a race for the last place ends it at once as surplus (FAIL, no run), so the
count is exact. A trial counts as finished when it completed, was pruned, or failed because its
run failed; a trial whose worker died is failed by the heartbeat and tried again, and does not count.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

from kernel import KernelError

SURPLUS, FAILED = "kernel:surplus", "kernel:failed"


class Surplus(Exception):
    """The study had enough trials when this one started."""


class TrialFailed(Exception):
    """The trial's run failed (the reason is its user attribute ``kernel:failed``)."""


class Pruning:
    """The run-scoped callback of one trial: reports the monitored value each epoch and asks the
    trainer to stop, with the status ``pruned``, when the study's pruner says so. Optuna's steps
    are the epochs, counted from 1 (what the report's intermediate values show): a pruner's
    ``n_warmup_steps = 2`` keeps every trial's first epoch from pruning."""

    def __init__(self, trial, monitor: str, pruner: str):
        self.trial, self.monitor, self.pruner = trial, monitor, pruner
        self.missing: list | None = None

    def on_epoch_end(self, run, state):
        value = state.metrics.get(self.monitor)
        if value is None:
            self.missing = sorted(state.metrics)
            run.request_stop(f"tuning.monitor {self.monitor!r} is not among the run's metrics "
                             f"({', '.join(self.missing)})", status="failed")
            return
        self.trial.report(float(value), state.epoch)
        if self.trial.should_prune():
            run.request_stop(f"pruned by the study's {self.pruner} pruner after epoch {state.epoch} "
                             f"({self.monitor} {value:.4g})", status="pruned")


class Tuner:
    """One worker of one study over one workflow."""

    def __init__(self, workflow, *, trials=None, timeout=None, study=None, storage=None, seed_offset: int = 0,
                 workspace=None, catalog=None):
        import kernel

        from .section import Tuning
        from .storage import default_url

        if "tuning" not in workflow.sections:
            raise KernelError(f"{workflow.source or 'the workflow'} has no [tuning] table: add one with the search "
                              f'space, e.g. [tuning]\\nspace = {{ "trainer.optimizer.lr" = {{ float = [1e-4, 1e-1], '
                              f"log = true }} }} (docs/tuning.md)")
        self.catalog = catalog or kernel.get_catalog()
        workflow.validate_components(self.catalog)  # the [tuning] table too, with every path of the space
        self.section = Tuning(**workflow.sections["tuning"])
        for name, value in (("trials", trials), ("timeout", timeout)):
            if value is not None and value <= 0:
                raise KernelError(f"--{name} must be above 0, not {value}")
        self.trials = trials or self.section.trials
        self.timeout = timeout if timeout is not None else self.section.timeout
        self.workflow = workflow
        self.index = self.section.model_index(workflow)
        self.name = study or self.section.study or workflow.name
        self.store = kernel.RunStore(workspace)
        self.workspace = self.store.root.parent
        self.url = storage or self.section.storage or default_url(self.workspace)
        self.seed = (self.section.seed if self.section.seed is not None else workflow.seed) + seed_offset
        self.data = None

    # -- the study ---------------------------------------------------------------------------
    def resolve(self):
        """The monitor and direction (from the trainer unless given), checked on the real data."""
        from kernel import mode_for

        plan = self.plan_for(self.trial_workflow({}))
        trainer = plan.trainer()
        describe = getattr(trainer, "describe", None)
        defaults = describe(plan.data) if callable(describe) else {}
        monitor = self.section.monitor if self.section.monitor != "auto" else defaults.get("monitor")
        if not monitor:
            raise KernelError("tuning.monitor: the trainer names no monitored metric; set tuning.monitor")
        if self.section.monitor != "auto":
            self._check_monitor(plan, monitor)
        mode = mode_for(monitor, {"monitor": defaults.get("monitor"), "mode": defaults.get("mode")})
        wanted = "maximize" if mode == "max" else "minimize"
        direction = self.section.direction if self.section.direction != "auto" else wanted
        if direction != wanted:
            raise KernelError(f"tuning.direction: {direction!r} contradicts the monitor {monitor}, which is better "
                              f"{'high' if mode == 'max' else 'low'}; use {wanted!r} or leave it out")
        self.monitor, self.direction, self.epochs = monitor, direction, defaults.get("epochs")
        self._try_the_space()
        return self

    def _try_the_space(self):
        """Each end of each range and each choice, set alone, goes through what a trial's run checks
        first (the trainer's settings on the real data, the model built, one batch through model,
        loss and metrics): a value that would fail every trial fails here, before any trial."""
        for param in self.section.params:
            if param.path.startswith("dataset"):
                continue  # a different dataset is built per trial; the validation has checked its names
            conditions = {path: accepted[0] for path, accepted in param.when.items()}
            for value in param.examples():
                try:
                    plan = self.plan_for(self.trial_workflow({**conditions, param.path: value}))
                    trainer = plan.trainer()
                    defaults = trainer.describe(plan.data) if callable(getattr(trainer, "describe", None)) else {}
                    if callable(getattr(trainer, "check", None)):
                        model, _ = plan.model(0)
                        trainer.check(model, plan.data, defaults)
                except KernelError as exc:
                    shown = f"{value!r}: " if param.kind == "choice" else f"{param.path} = {value!r}: "
                    raise KernelError(f'tuning.space."{param.path}": {shown}{exc}') from None

    def _check_monitor(self, plan, monitor: str):
        """A trainer that takes a ``monitor`` says whether it measures this one (else the first
        epoch of the first trial does)."""
        comp = self.catalog.get(self.workflow.trainer.use, "trainer")
        if "monitor" not in {p.name for p in self.catalog.params(comp)}:
            return
        trainer = plan.build({"use": self.workflow.trainer.use,
                              "params": {**self.workflow.trainer.params, "monitor": monitor}}, "trainer")
        try:
            trainer.describe(plan.data)
        except KernelError as exc:
            raise KernelError(f"tuning.monitor: {exc}".replace("trainer.monitor: ", "")) from None

    def open(self, create: bool = True):
        """The Optuna study (created when missing, unless ``create`` is false: then None)."""
        import optuna

        from .samplers import make_pruner, make_sampler
        from .storage import open_storage

        self.storage = open_storage(self.url, self.section.heartbeat, self.section.retries,
                                    where="--storage" if self.url != self.section.storage else "tuning.storage")
        if not create:
            try:
                return optuna.load_study(study_name=self.name, storage=self.storage)
            except KeyError:
                return None
        sampler = make_sampler(self.section.sampler, self.section.params, self.seed)
        pruner = make_pruner(self.section.pruner, self.epochs)
        try:
            self.study = optuna.create_study(study_name=self.name, storage=self.storage, sampler=sampler,
                                             pruner=pruner, direction=self.direction, load_if_exists=True)
        except ValueError as exc:  # an existing study that goes the other way
            raise KernelError(f"study {self.name!r}: {exc}; choose another --study name") from None
        if self.study.direction.name.lower() != self.direction:
            raise KernelError(f"study {self.name!r} in {self.shown_url} {self.study.direction.name.lower()}s; this "
                              f"workflow would {self.direction} {self.monitor}: choose another --study name")
        scored_by = self.study.user_attrs.get("monitor")
        if scored_by not in (None, self.monitor):
            raise KernelError(f"study {self.name!r} in {self.shown_url} scores its trials by {scored_by}, not "
                              f"{self.monitor}: choose another --study name, or the same monitor")
        self.study.set_user_attr("monitor", self.monitor)
        self.study.set_user_attr("workflow", self.workflow.name)
        return self.study

    @property
    def shown_url(self) -> str:
        from .storage import shown

        return shown(self.url)

    # -- trials ------------------------------------------------------------------------------
    def trial_workflow(self, sampled: dict):
        """The workflow a trial trains: the sampled values set, the plugins' tables left out, and
        only the tuned model."""
        from kernel import Workflow

        base = self.workflow.without_sections()
        wf = base.with_overrides(sampled) if sampled else base
        data = wf.to_dict()
        data["models"] = [data["models"][self.index]]
        return Workflow.from_dict(data, source=self.workflow.source)

    def plan_for(self, wf):
        """The plan of a trial's workflow; the data is built once and reused while [dataset] is unchanged."""
        import kernel

        plan = kernel.prepare(wf, self.catalog, data=self.data)
        self.data = plan.data
        return plan

    def objective(self, trial):
        import optuna

        from .space import sample

        if self.is_surplus(trial):
            trial.set_user_attr(SURPLUS, True)
            raise Surplus()
        sampled = sample(trial, self.section.params)
        pruning = Pruning(trial, self.monitor, self.section.pruner[0])
        record = {"study": self.name, "trial": trial.number, "sampled": sampled}
        try:
            wf = self.trial_workflow(sampled)
            if self.data is None or not self.data.fits(wf):
                self.plan_for(wf)  # a trial that changes the data builds it; the next ones reuse it
            # a trial's run skips the pictures and reports: the study's best run gets them at the end
            results = wf.run(quiet=True, callbacks=[pruning], record=record, data=self.data,
                             catalog=self.catalog, workspace=self.workspace, artifacts=False)
        except KernelError as exc:  # these values make a workflow that cannot run
            trial.set_user_attr(FAILED, str(exc))
            raise TrialFailed(str(exc)) from None
        except KeyboardInterrupt:  # Optuna marks the trial failed; it still names its (resumable) run
            run_id = self.run_of(trial.number)
            if run_id:
                trial.set_user_attr("run", run_id)
            raise
        run = results.runs[0]  # read back from its folder by the runner once it ended
        trial.set_user_attr("run", run.id)
        if pruning.missing is not None:
            raise KernelError(f"tuning.monitor: {self.monitor!r} is not measured by the trainer; the runs log "
                              f"{', '.join(pruning.missing)}")
        if run.status == "pruned":
            raise optuna.TrialPruned(run.info.get("reason"))
        if run.status != "completed":
            reason = run.info.get("reason") or run.status
            trial.set_user_attr(FAILED, reason)
            raise TrialFailed(reason)
        value = best_value(run.metrics(), self.monitor, self.direction)
        if value is None:
            trial.set_user_attr(FAILED, f"no finite {self.monitor} was logged")
            raise TrialFailed(f"no finite {self.monitor} was logged")
        return value

    def run_of(self, number: int) -> str | None:
        """The id of this study's run of trial ``number`` in this workspace, if it was created."""
        for info in self.store.list(workflow=self.workflow.name):
            if info.get("study") == self.name and info.get("trial") == number:
                return info["id"]
        return None

    def is_surplus(self, trial) -> bool:
        from optuna.trial import TrialState

        ahead = [t for t in trial.study.get_trials(deepcopy=False)
                 if t.number < trial.number and (finished(t) or t.state == TrialState.RUNNING)]
        return len(ahead) >= self.trials

    def counts(self) -> tuple[int, int]:
        """Finished trials and running ones (this worker's and others')."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        return (sum(finished(t) for t in trials), sum(t.state == TrialState.RUNNING for t in trials))

    def work(self, on_trial=None):
        """Run trials until the study has enough finished ones (or the timeout passes)."""
        from optuna.storages import fail_stale_trials

        deadline = time.monotonic() + self.timeout if self.timeout else None
        callbacks = [self._after] + ([on_trial] if on_trial else [])
        while deadline is None or time.monotonic() < deadline:
            done, running = self.counts()
            if done >= self.trials:
                break
            if done + running >= self.trials:  # the last trials are others': wait for them to end, or die
                time.sleep(min(self.section.heartbeat, 2))
                fail_stale_trials(self.study)
                continue
            self.study.optimize(self.objective, n_trials=1, catch=(TrialFailed, Surplus), callbacks=callbacks)
        write_snapshot(self)
        return self.study

    def _after(self, study, frozen):
        write_snapshot(self)

    def finish_best(self):
        """Write the artifacts (analyzer reports, samples, confusion matrix) of the best trial's run,
        which its trial skipped, when the run is in this workspace: the report shows them."""
        import kernel

        from .results import best_trial

        best = best_trial(self.study)
        run_id = best.user_attrs.get("run") if best is not None else None
        if not run_id or not (self.store.root / run_id / "run.json").is_file():
            return None
        try:
            run = kernel.Run.open(self.store.root / run_id)
            if run.info.get("artifacts") == "skipped":
                kernel.resume(run_id, quiet=True, workspace=self.workspace)
        except KernelError as exc:  # another worker writes them right now, or the run names code to allow
            print(f"kernel: warning: the best run's artifacts were not written ({exc}); "
                  f"`kernel resume {run_id}` writes them", file=sys.stderr)
        return run_id


def finished(trial) -> bool:
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and FAILED in trial.user_attrs)


def best_value(rows: list[dict], monitor: str, direction: str) -> float | None:
    """The best epoch's value of the monitor: what a run of the best parameters reproduces."""
    values = [r[monitor] for r in rows if isinstance(r.get(monitor), (int, float)) and math.isfinite(r[monitor])]
    if not values:
        return None
    return max(values) if direction == "maximize" else min(values)


def snapshot(tuner) -> dict:
    """The study as plain data, for the report and the dashboard (which never open the database)."""
    from optuna.distributions import distribution_to_json

    def stamp(value):
        return value.isoformat() if value is not None else None

    trials = []
    for t in tuner.study.get_trials(deepcopy=False):
        if SURPLUS in t.user_attrs:
            continue
        trials.append({"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
                       "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
                       "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
                       "run": t.user_attrs.get("run"), "reason": t.user_attrs.get(FAILED),
                       "start": stamp(t.datetime_start), "complete": stamp(t.datetime_complete)})
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    pick = max if tuner.direction == "maximize" else min
    best = pick(done, key=lambda t: t["value"]) if done else None
    return {"study": tuner.name, "workflow": tuner.workflow.name, "direction": tuner.direction,
            "monitor": tuner.monitor, "storage": tuner.shown_url, "trials_wanted": tuner.trials,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "trials": trials,
            "best": {k: best[k] for k in ("number", "value", "params", "run")} if best else None}


def snapshot_path(workspace: Path, study: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in study).strip(".") or "study"
    return Path(workspace) / "studies" / f"{safe}.json"


def write_snapshot(tuner):
    path = snapshot_path(tuner.workspace, tuner.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(snapshot(tuner), indent=1, default=str))
    os.replace(tmp, path)
    return path

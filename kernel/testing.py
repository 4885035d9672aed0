"""The conformance check for plugin authors, in the spirit of scikit-learn's ``check_estimator``.

``check_plugin("acme")`` builds every component of the plugin with its defaults (or its
``example=`` parameters) and exercises it against the plugin contract (``kernel/hookspecs.py``,
``docs/hooks.md``); it returns a list of :class:`Finding` (empty: the plugin conforms).
``kernel check-plugin acme`` prints the same findings. In a plugin's own tests::

    from kernel.testing import assert_plugin_conforms
    def test_conformance():
        assert_plugin_conforms("acme")

Components that need data (transforms, models, metrics, renderers, analyzers) are exercised on a
dataset chosen like this: the ``"_dataset"`` key of the component's ``example`` (a workflow's
``[dataset]`` table: ``{"use": "acme.reviews", "transforms": [...]}``) when there is one, else the
plugin's own dataset sharing most tags with the component, else ``kernel.synthetic``. A trainer is
trained for one epoch on small synthetic data (or its ``"_dataset"``) with ``kernel.linear`` (or the
model its ``"_model"`` names), in a temporary workspace, and its Result is validated.

For a plugin's report-section tests, :func:`in_browser` runs a check on a page in Debian's Chromium
driven by Playwright (network cut; console errors, dialogs and requests recorded by :func:`watched`),
:func:`need_browser` skips where the browser is missing, and :func:`dashboard` serves a workspace live.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from .component import KINDS, Component, Report
from .errors import KernelError, did_you_mean
from .catalog import import_target
from .training.events import EVENTS  # the trainer's events: a callback listens with on_<event>(run, state)

#: Libraries a plugin's hook module must not import: `kernel list` has to stay fast.
HEAVY = ("torch", "torchvision", "torchaudio", "numpy", "scipy", "pandas", "sklearn", "matplotlib", "PIL",
         "pydantic", "captum", "optuna", "onnx", "onnxruntime", "tokenizers", "transformers", "soundfile")

#: The reserved ``example`` key naming the data a component is checked on (not passed to the target).
DATASET_KEY = "_dataset"
#: The reserved ``example`` key naming the model a trainer is checked with (a workflow's ``[[models]]`` entry).
MODEL_KEY = "_model"
RESERVED_KEYS = (DATASET_KEY, MODEL_KEY)
FALLBACK_DATASET = {"use": "kernel.synthetic", "params": {"num_samples": 64}}
TRIAL_MODEL = {"use": "kernel.linear"}  # what a trainer trains in the check, unless its example names a model
TRIAL_EPOCHS = 1  # passed as ``epochs`` to a trainer that takes that parameter
#: How a finished fit may end (run.json's status and the Result's).
ENDED = ("completed", "failed", "interrupted")
MAX_SAMPLES = 64  # per split, for analyzers: the check exercises the contract, not the statistics


@dataclass
class Finding:
    """One way a plugin breaks the contract (``error``) or could not be fully checked (``warning``)."""

    component: str  # a component name, or the plugin's name for plugin-wide findings
    kind: str  # a component kind, or "plugin"
    message: str
    level: str = "error"

    def __str__(self):
        return f"{self.level}: {self.component} ({self.kind}): {self.message}"


class Checker:
    """Runs the checks for one plugin and collects the findings."""

    def __init__(self, name: str, catalog=None):
        from .catalog import get_catalog

        self.name = name
        self.catalog = catalog or get_catalog()
        self.findings: list[Finding] = []
        self._plans: dict[str, object] = {}
        self.datasets: list[Component] = []  # the plugin's datasets that built and split

    def add(self, comp, message: str, level: str = "error"):
        name, kind = (comp.name, comp.kind) if isinstance(comp, Component) else (comp, "plugin")
        self.findings.append(Finding(name, kind, message, level))

    # -- the plugin as a whole -----------------------------------------------------------------
    def run(self) -> list[Finding]:
        infos = self.catalog.plugins.infos
        info = infos.get(self.name)
        if info is None:
            raise KernelError(f"no plugin named {self.name!r}{did_you_mean(self.name, infos)}; "
                              f"installed: {', '.join(sorted(infos))} (see `kernel plugins`)")
        if info.status == "disabled":
            raise KernelError(f"plugin {self.name!r} is disabled (KERNEL_DISABLE_PLUGINS or -p no:{self.name}); "
                              f"enable it to check it")
        self.check_hook_module()
        self.check_hook_names()
        self.check_methods()
        self.check_kinds()
        if info.status == "broken":
            self.add(self.name, f"the plugin is broken: {info.error}")
            return self.findings
        for name, owners in self.catalog.conflicts.items():
            if self.name in owners:
                dists = " and ".join(self.catalog.plugins.distribution(p) for p in owners)
                self.add(name, f"the name is offered by both {dists}")
        comps = [c for c in self.catalog.list() if c.plugin == self.name]
        if not comps:
            self.add(self.name, "the plugin offers no component", "warning")
        prefix = self.name + "."
        for comp in comps:
            if comp.kind == "section":
                if comp.name != self.name and comp.name not in self.commands():
                    self.add(comp, f"a plugin's workflow table is named after the plugin or a command it adds: "
                                   f"call it {self.name!r}")
            elif not comp.name.startswith(prefix):
                self.add(comp, f"component names are namespaced by the plugin: call it {prefix}...")
        # datasets first: the other kinds are exercised on them; the kinds plugins declare come last
        for comp in sorted(comps, key=lambda c: self.catalog.kinds.index(c.kind)):
            check = getattr(self, "check_" + comp.kind) if comp.kind in KINDS else self.check_declared
            try:
                target = self.catalog.target(comp)
            except KernelError as exc:
                self.add(comp, f"its target cannot be imported: {exc}")
                continue
            missing = required_params(target, params_of(comp), comp.kind)
            if missing:
                self.add(comp, f"not exercised: it needs {', '.join(missing)}; give the component "
                               f"example={{{', '.join(repr(m) + ': ...' for m in missing)}}}", "warning")
                continue
            try:
                check(comp)
            except KernelError as exc:  # the component said clearly why it cannot be built here
                self.add(comp, f"not exercised: {exc} (give it example= parameters, or "
                               f"example={{'{DATASET_KEY}': ...}} to choose its data)", "warning")
            except Exception as exc:
                self.add(comp, f"{type(exc).__name__}: {exc}{_where(exc, self.plugin_folder())}")
        return self.findings

    def plugin_module(self) -> str | None:
        obj = self.catalog.plugins.manager.get_plugin(self.name)
        if obj is None:
            from importlib import metadata

            eps = [ep for ep in metadata.entry_points(group="kernel") if ep.name == self.name]
            return eps[0].value.split(":")[0] if eps else None
        return obj.__name__ if inspect.ismodule(obj) else type(obj).__module__

    def plugin_folder(self) -> str | None:
        """The folder of the plugin's top-level package, where its own code lives."""
        module = self.plugin_module()
        try:
            spec = importlib.util.find_spec(module.split(".")[0]) if module else None
        except (ImportError, ValueError):
            return None
        origin = getattr(spec, "origin", None)
        return str(Path(origin).parent) if origin else None

    def check_hook_module(self):
        """Import the hook module and call its hooks in a fresh interpreter; no heavy library may load."""
        module = self.plugin_module()
        if module is None:
            return
        # isolated: run from an empty folder, with no current directory on sys.path, so that a folder
        # named `kernel` (or like the plugin's package) where the command runs cannot stand in for them
        declared = ",".join(self.catalog.kinds[len(KINDS):])  # other plugins' kinds, which this one may fill
        with tempfile.TemporaryDirectory(prefix="kernel-probe-") as empty:
            proc = subprocess.run([sys.executable, *SAFE_PATH, "-c", _PROBE, module, ",".join(HEAVY), KERNEL_HOME,
                                   declared], capture_output=True, text=True, timeout=300, cwd=empty)
        if proc.returncode != 0:
            lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            self.add(self.name, f"importing {module} and calling its hooks failed: {lines[-1] if lines else '?'}")
            return
        loaded = [m for m in proc.stdout.strip().split(",") if m]
        if loaded:
            self.add(self.name, f"importing {module} and calling its hooks imports {', '.join(loaded)}; "
                                f"import heavy libraries inside the targets, not in the hook module")

    def check_hook_names(self):
        """A hook implementation whose name is not a hook (``kernel_model``) is silently never called."""
        from . import hookspecs

        obj = self.catalog.plugins.manager.get_plugin(self.name)
        if obj is None:
            return
        specs = [n for n in dir(hookspecs) if n.startswith("kernel_")] + \
            [f"kernel_{kind}s" for kind in self.catalog.kinds[len(KINDS):]]
        for caller in self.catalog.plugins.manager.get_hookcallers(obj) or []:
            if caller.spec is not None:
                continue
            # a plural name like no hook's (all share "kernel_", so compare what follows) is most likely
            # the hook of a kind some plugin declares, a plugin that is not loaded here
            bare = caller.name.removeprefix("kernel_")
            if bare != caller.name and bare.endswith("s") and \
                    not difflib.get_close_matches(bare, [n.removeprefix("kernel_") for n in specs], cutoff=0.8):
                kind = bare[:-1]
                self.add(self.name, f"{caller.name} belongs to a kind {kind!r} that no loaded plugin declares "
                                    f"(kernel_kinds), so it is never called; install or enable the plugin that "
                                    f"declares it (see `kernel plugins`)", "warning")
            else:
                self.add(self.name, f"{caller.name} is not a hook{did_you_mean(caller.name, specs)}")

    def check_kinds(self):
        """The kinds the plugin declares: each check named by a string imports (else every component of the
        kind fails its check)."""
        for kind in self.catalog.plugins.declared.values():
            if kind.plugin == self.name and kind.check is not None:
                try:
                    import_target(kind.check, f"the check of kind {kind.name!r}")
                except KernelError as exc:
                    self.add(self.name, f"kind {kind.name!r}: its check cannot be imported: {exc}")

    # -- data to exercise components on ------------------------------------------------------------
    def plan_for(self, comp: Component, models=None):
        """A built workflow plan (kernel.build.prepare) on the data this component is checked on."""
        spec = self.dataset_spec(comp)
        key = json.dumps([spec, models], sort_keys=True, default=str)
        if key not in self._plans:
            from .build import prepare
            from .workflow import Workflow

            workflow = Workflow(name=f"check-{self.name}", dataset=spec, models=models or [{"use": "kernel.linear"}],
                                trainer={"use": "kernel.testing:no_trainer"}, analyzers=[])
            self._plans[key] = prepare(workflow, self.catalog)
        return self._plans[key]

    def dataset_spec(self, comp: Component) -> dict:
        example = dict(comp.example or {})
        if DATASET_KEY in example:
            spec = example[DATASET_KEY]
            return {"use": spec} if isinstance(spec, str) else dict(spec)
        wanted = set(comp.tags) - {"generic"}
        best, best_score = None, 0
        for ds in self.datasets:
            score = len(wanted & set(ds.tags))
            if score > best_score:
                best, best_score = ds, score
        if best is None and len(self.datasets) == 1 and not wanted:
            best = self.datasets[0]
        if best is None:
            return fallback_dataset(comp)
        return {"use": best.name, "params": params_of(best)}

    # -- one check per kind -------------------------------------------------------------------------
    def check_dataset(self, comp):
        source = self.catalog.target(comp)(**params_of(comp))
        splits = source if isinstance(source, dict) else {"(whole)": source}
        if isinstance(source, dict) and not any(k == "train" for k in source):
            self.add(comp, f"returned splits {list(source)}, but none is called 'train'")
            return
        for split, ds in splits.items():
            where = f"split {split!r}: " if isinstance(source, dict) else ""
            if not (hasattr(ds, "__getitem__") and hasattr(ds, "__len__")):
                self.add(comp, f"{where}returned a {type(ds).__name__}, not a map-style dataset (len and indexing)")
                return
            if len(ds) == 0:
                self.add(comp, f"{where}the dataset is empty")
                return
            for index in {0, len(ds) - 1}:
                item = ds[index]
                if not (isinstance(item, (tuple, list)) and len(item) == 2):
                    self.add(comp, f"{where}item {index} is a {type(item).__name__}, not an (input, target) pair")
                    return
            classes = getattr(ds, "classes", None)
            if classes is not None and not isinstance(classes, (list, tuple)):
                self.add(comp, f"{where}classes is a {type(classes).__name__}, not a list of names")
            targets = getattr(ds, "targets", None)
            if targets is not None and len(targets) != len(ds):
                self.add(comp, f"{where}targets has {len(targets)} labels for {len(ds)} samples")
            collate = getattr(ds, "collate_fn", None)
            if collate is not None and not callable(collate):
                self.add(comp, f"{where}collate_fn is not callable")
        before = len(self.findings)
        plan = self.plan_for(Component(comp.name, comp.target, tags=comp.tags,
                                       example={DATASET_KEY: {"use": comp.name, "params": params_of(comp)}}))
        plan.data.batch("train", 2)  # the kernel must be able to make a batch of it
        if len(self.findings) == before:
            self.datasets.append(comp)

    def check_transform(self, comp):
        from . import data as D

        transform = self.catalog.target(comp)(**params_of(comp))
        if not callable(transform):
            self.add(comp, f"built a {type(transform).__name__}, which is not callable")
            return
        plan = self.plan_for(comp)
        train = plan.data.splits["train"]
        if hasattr(transform, "fit"):
            transform.fit(train)
        x, y = train[0]
        _seed()  # random augmentations give the same result twice
        out = D.apply([transform], [], x, y)
        if getattr(transform, "joint", False):
            if not (isinstance(out, tuple) and len(out) == 2):
                self.add(comp, "a joint transform must return (input, target)")
                return
        elif out[0] is None:
            self.add(comp, "returned None for a sample")
        facts = getattr(transform, "facts", None)
        if callable(facts) and not isinstance(facts() or {}, dict):
            self.add(comp, "facts() must return a dict")
        self.check_batch_form(comp, transform, train)
        if not hasattr(transform, "fit"):
            return
        for method in ("state_dict", "load_state_dict"):
            if not callable(getattr(transform, method, None)):
                self.add(comp, f"it has fit() but no {method}(): the fitted state cannot be saved with the run")
                return
        state = _through_checkpoint(transform.state_dict())
        fresh = self.catalog.target(comp)(**params_of(comp))
        fresh.load_state_dict(state)
        _seed()
        if not same(D.apply([fresh], [], x, y), out):
            self.add(comp, "after load_state_dict(state_dict()) a fresh transform gives another result "
                           "than the fitted one")

    def check_batch_form(self, comp, transform, train):
        """A transform's batch form (``batched(before)``, docs/hooks.md) must make the batch that
        applying the transform to each sample and stacking makes (to float rounding); for a random
        transform, whose draws the two paths take in another order, a batch of the same shapes."""
        offer = getattr(transform, "batched", None)
        if not callable(offer):
            return
        from torch.utils.data import default_collate

        from . import data as D

        form = offer([])
        if form is None:
            return
        if form.taken != 0:
            self.add(comp, f"batched([]) says it takes {form.taken} transform(s) before it, but none were given")
            return
        items = [train[i] for i in range(min(4, len(train)))]
        per_sample = []
        for seed in (0, 1):
            _seed(seed)
            per_sample.append(default_collate([D.apply([transform], [], x, y) for x, y in items]))
        _seed(0)
        batch = form.collate(items)
        if not same(per_sample[0], per_sample[1]):  # random: compare what can be compared
            if _shapes(batch) != _shapes(per_sample[0]):
                self.add(comp, "its batch form (batched()) makes a batch of other shapes than the per-sample path")
        elif not same(batch, per_sample[0], atol=1e-5):  # a fused multiply-add against three roundings
            self.add(comp, "its batch form (batched()) makes another batch than applying it to each sample and "
                           "stacking: the loaders would train on other inputs than split[i] shows")

    def check_model(self, comp):
        import torch

        from .data import batch_size_of, forward

        from .build import call_with_facts

        plan = self.plan_for(comp, models=[{"use": comp.name, "params": params_of(comp)}])
        model, _ = call_with_facts(self.catalog.target(comp), params_of(comp), plan.data.facts, plan.data.train,
                                   comp.name)
        if not isinstance(model, torch.nn.Module):
            self.add(comp, f"built a {type(model).__name__}, not a torch.nn.Module")
            return
        inputs, _ = plan.data.batch("train", 2)
        model.eval()
        with torch.no_grad():
            out = forward(model, inputs)
        if out is None:
            self.add(comp, "the model returned None for a batch")
        elif isinstance(out, torch.Tensor) and out.ndim >= 1 and out.shape[0] != batch_size_of(inputs):
            self.add(comp, f"output shape {tuple(out.shape)} does not start with the batch size "
                           f"{batch_size_of(inputs)}", "warning")

    def check_metric(self, comp):
        plan = self.plan_for(comp)
        spec = {"use": comp.name, "params": params_of(comp)}
        metric = plan.build(spec, "metric")
        for method in ("update", "compute", "reset"):
            if not callable(getattr(metric, method, None)):
                self.add(comp, f"the metric has no {method}() method")
                return
        _, targets = plan.data.batch("train", 8)
        right, wrong = predictions_for(targets, plan.data.facts)
        if right is None:
            self.add(comp, f"update() not exercised: no predictions can be made up for {plan.data.facts.get('task')} "
                           f"targets", "warning")
            return
        metric.update(right, targets)
        metric.compute()
        metric.reset()
        metric.update(wrong, targets)
        after_reset = metric.compute()
        fresh = plan.build(spec, "metric")
        fresh.update(wrong, targets)
        if not same(after_reset, fresh.compute()):
            self.add(comp, "reset() does not clear the state: after reset() and one update() the value differs "
                           "from a fresh metric's")

    def check_renderer(self, comp):
        try:
            renderer = self.catalog.target(comp)()
        except TypeError as exc:
            self.add(comp, f"the kernel builds renderers without parameters, but this one needs some: {exc}")
            return
        for method in ("score", "render"):
            if not callable(getattr(renderer, method, None)):
                self.add(comp, f"the renderer has no {method}() method")
                return
        plan = self.plan_for(comp)
        x, y = plan.data.splits["train"][0]
        from .artifacts import meta_for

        tensors = {"input": x, "target": y}
        metas = [(meta_for(v, role, plan), v) for role, v in tensors.items() if _is_tensorlike(v)]
        attribution = _attribution_like(x)
        if attribution is not None:  # an explanation of the input, as an attribution method gives it
            metas.append(({**meta_for(attribution, "attribution", plan), "input_shape": tuple(x.shape),
                           "input_dtype": str(x.dtype).replace("torch.", "")}, attribution))
        metas += [(m, None) for m in probe_metas(self.catalog)]
        context = {**tensors, "facts": plan.data.facts, "classes": plan.data.classes,
                   "normalize": plan.data.facts.get("normalize"), "attribution": attribution, "explained": 0,
                   "method": "check", "layer": None}
        rendered = 0
        for meta, value in metas:
            try:
                score = renderer.score(meta)
            except Exception as exc:
                self.add(comp, f"score() raised {type(exc).__name__}: {exc} for {meta}; return 0 for "
                               f"tensors it cannot draw")
                continue
            if not isinstance(score, (int, float)) or isinstance(score, bool) or score < 0:
                self.add(comp, f"score() returned {score!r}; it must be a number >= 0")
                continue
            if score > 0 and value is not None:
                import torch

                from .rendering import as_media

                drawn = renderer.render(torch.as_tensor(value), context)
                try:
                    as_media(drawn)
                except KernelError:
                    self.add(comp, f"render() returned a {type(drawn).__name__}, not a PIL.Image, HTML text or "
                                   f"a kernel.Media")
                rendered += 1
        if not rendered:
            self.add(comp, f"render() not exercised: score() was 0 for every tensor of "
                           f"{self.dataset_spec(comp)['use']}", "warning")

    def check_analyzer(self, comp):
        if comp.tags:  # tagged analyzers run by default, and the kernel builds those without parameters
            try:
                self.catalog.target(comp)()
            except TypeError as exc:
                self.add(comp, f"it is tagged {', '.join(comp.tags)}, so the kernel runs it by default, "
                               f"building it without parameters, which fails: {exc}")
                return
        analyzer = self.catalog.target(comp)(**params_of(comp))
        for method in ("start", "update", "finish"):
            if not callable(getattr(analyzer, method, None)):
                self.add(comp, f"the analyzer has no {method}() method")
                return
        plan = self.plan_for(comp)
        data = plan.data
        analyzer.start({"splits": {k: len(v) for k, v in data.splits.items()}, "classes": data.classes,
                        "facts": data.facts, "tags": tuple(plan.dataset_tags)})
        raw = bool(getattr(analyzer, "raw", False))
        for split in data.splits:
            ds = data.raw[split] if raw else data.splits[split]
            items = [ds[i] for i in range(min(MAX_SAMPLES, len(ds)))]
            analyzer.update({"split": split, "inputs": [x for x, _ in items], "targets": [y for _, y in items]})
        report = analyzer.finish()
        if not isinstance(report, Report):
            self.add(comp, f"finish() returned a {type(report).__name__}, not a kernel.Report")
            return
        from .artifacts import _plain

        json.dumps(report.to_dict(), default=_plain)
        if report.figure is not None:
            from PIL import Image

            if not isinstance(report.figure, Image.Image):
                self.add(comp, f"the report's figure is a {type(report.figure).__name__}, not a PIL.Image")

    def check_trainer(self, comp):
        """Train for one epoch on small data, as the runner would (describe, check, fit), in a
        temporary workspace; then validate the Result and what the run recorded."""
        trainer = self.catalog.target(comp)(**trainer_params(self.catalog.target(comp), params_of(comp)))
        if not self._has_method(comp, trainer, "fit", 3):
            return
        example = comp.example or {}
        data_spec = self.dataset_spec(comp) if DATASET_KEY in example else fallback_dataset(comp)
        plan = self.plan_for(Component(comp.name, comp.target, tags=comp.tags, example={DATASET_KEY: data_spec}),
                             models=[example.get(MODEL_KEY, TRIAL_MODEL)])
        defaults = {}
        if callable(getattr(trainer, "describe", None)):
            defaults = trainer.describe(plan.data)
            if not isinstance(defaults, dict):
                self.add(comp, f"describe(data) returned a {type(defaults).__name__}, not a dict of settings")
                return
        model, _ = plan.model(0)
        if callable(getattr(trainer, "check", None)):
            trainer.check(model, plan.data, defaults)
        # what the trainer prints goes to stderr: stdout carries the findings (--json)
        with tempfile.TemporaryDirectory(prefix="kernel-check-") as workspace, \
                contextlib.redirect_stdout(sys.stderr):
            run = trial_run(workspace, plan, defaults)
            result = trainer.fit(model, plan.data, run)
            self.check_result(comp, result, run, data_spec["use"])

    def check_result(self, comp, result, run, dataset: str):
        """What ``fit`` returned: a kernel.Result of the run, ended, with numbers for metrics, and the
        same status in the run's run.json."""
        from .training.result import Result

        if result is None:
            self.add(comp, "fit() returned None; return a kernel.Result (kernel.Result(run.id, status, ...)): "
                           "the runner marks a run whose trainer returns None failed")
            return
        if not isinstance(result, Result):
            self.add(comp, f"fit() returned a {type(result).__name__}, not a kernel.Result")
            return
        if result.run_id != run.id:
            self.add(comp, f"the Result's run_id is {result.run_id!r}, not the run's id {run.id!r}")
        if result.status not in ENDED:
            self.add(comp, f"the Result's status is {result.status!r}; a fit ends {', '.join(ENDED)}")
        elif result.status != "completed":
            self.add(comp, f"one epoch on {dataset} ended {result.status}: {result.reason}")
        for field in ("final", "best"):
            values = getattr(result, field)
            if not isinstance(values, dict):
                self.add(comp, f"Result.{field} is a {type(values).__name__}, not a dict of metric values")
                continue
            for key, value in values.items():
                if not _is_number(value):
                    self.add(comp, f"Result.{field}[{key!r}] is a {type(value).__name__}, not a number")
        if result.status == "completed" and isinstance(result.final, dict) and not result.final:
            self.add(comp, "Result.final is empty: the runs table, `kernel compare` and the report show no "
                           "metric for the run", "warning")
        self.check_recorded_run(comp, result, run)

    def check_recorded_run(self, comp, result, run):
        path = run.dir / "run.json"
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.add(comp, f"run.json cannot be read after fit(): {exc}")
            return
        status = recorded.get("status") if isinstance(recorded, dict) else None
        if isinstance(result.status, str) and status != result.status:
            self.add(comp, f"run.json says the run is {status!r} but fit() returned {result.status!r}: record how "
                           f"the run ended with run.set_status(status, reason)")

    def check_exporter(self, comp):
        import torch

        exporter = self.catalog.target(comp)(**params_of(comp))
        if not self._has_method(comp, exporter, "export", 3):
            return
        plan = self.plan_for(comp, models=[{"use": "kernel.linear"}])
        model, _ = plan.model(0)
        inputs, _ = plan.data.batch("train", 2)
        model.eval()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model"
            with torch.no_grad():
                artifact = exporter.export(model, inputs, path)
            if artifact is None:
                self.add(comp, "export() returned None; return a kernel.Artifact describing the file")
            if not any(Path(tmp).iterdir()):
                self.add(comp, f"export() wrote nothing at {path}")

    def check_callback(self, comp):
        callback = self.catalog.target(comp)(**params_of(comp))
        handlers = [n for n in dir(callback) if n.startswith("on_") and callable(getattr(callback, n))]
        if not handlers:
            self.add(comp, f"the callback has no on_<event> method; events are: {', '.join(EVENTS)}")
        for handler in handlers:
            event = handler[3:]
            if event not in EVENTS:
                self.add(comp, f"{handler}: there is no event {event!r}{did_you_mean(event, EVENTS)}; "
                               f"events are: {', '.join(EVENTS)}")
            elif not _accepts(getattr(callback, handler), 2):
                self.add(comp, f"{handler} must accept (run, state)")

    def commands(self) -> list[str]:
        """The CLI commands this plugin adds (hook ``kernel_commands``)."""
        from .cli import build_parser

        _, cli, _ = build_parser(())
        return [name for name, owner in cli.owners.items() if owner == self.name]

    def check_section(self, comp):
        """Built from its example (the table's keys); ``check`` on a small workflow returns problems."""
        from .workflow import Workflow

        section = self.catalog.target(comp)(**params_of(comp))
        check = getattr(section, "check", None)
        if check is None:
            return
        if not callable(check):
            self.add(comp, "check must be a method check(workflow)")
            return
        workflow = Workflow(name="check", dataset=FALLBACK_DATASET, models=[{"use": "kernel.mlp"}])
        problems = check(workflow)
        if not isinstance(problems, list) or not all(isinstance(p, tuple) and len(p) == 2 for p in problems):
            self.add(comp, f"check(workflow) must return a list of (location, message), not {problems!r}")

    def check_declared(self, comp):
        """A component of a kind a plugin declares: built with its example or defaults, then the kind's
        ``check(obj)`` (when it has one) returns the problems, each an error."""
        kind = self.catalog.plugins.declared[comp.kind]
        obj = self.catalog.target(comp)(**params_of(comp))
        if kind.check is None:
            return
        who = f"the check of kind {kind.name!r} (plugin {kind.plugin})"
        try:
            problems = import_target(kind.check, who)(obj)
        except Exception as exc:
            self.add(comp, f"{who} raised {type(exc).__name__}: {exc}")
            return
        if not isinstance(problems, (list, tuple)) or not all(isinstance(p, str) for p in problems):
            self.add(comp, f"{who} returned {problems!r}, not a list of problems (text); plugin "
                           f"{kind.plugin} has to fix its check")
            return
        for problem in problems:
            self.add(comp, problem)

    def check_methods(self):
        """The plugin's ``kernel_methods``: well formed (else the kernel marked it broken) and importable."""
        from .methods import methods

        for key, (plugin, target) in methods(self.catalog).items():
            if plugin != self.name:
                continue
            try:
                import_target(target, key)
            except KernelError as exc:
                self.add(key, f"the method's target cannot be imported: {exc}")

    def _has_method(self, comp, obj, method: str, arity: int) -> bool:
        fn = getattr(obj, method, None)
        if not callable(fn):
            self.add(comp, f"built a {type(obj).__name__}, which has no {method}() method")
            return False
        if not _accepts(fn, arity):
            self.add(comp, f"{method}() must accept {arity} arguments")
            return False
        return True


# -- helpers -----------------------------------------------------------------------------------------
#: Python's flag that keeps the current directory (or the script's) off sys.path (3.11 and later).
SAFE_PATH = ["-P"] if sys.version_info >= (3, 11) else []
#: The folder holding the kernel that runs the check: the probe imports this kernel, wherever it is.
KERNEL_HOME = str(Path(__file__).resolve().parents[1])

_PROBE = r"""
import sys, importlib, importlib.util, argparse
if importlib.util.find_spec("kernel") is None:  # the kernel runs from a checkout that is not installed
    sys.path.append(sys.argv[3])
before = set(sys.modules)
module = importlib.import_module(sys.argv[1])
from kernel.component import KINDS
kinds = [*KINDS, *filter(None, sys.argv[4].split(","))]  # the kinds other plugins declare, then its own
hook = getattr(module, "kernel_kinds", None)
if callable(hook):
    kinds += [kind.name for kind in hook()]
for kind in kinds:
    hook = getattr(module, f"kernel_{kind}s", None)
    if callable(hook):
        hook()
hook = getattr(module, "kernel_methods", None)
if callable(hook):
    hook()
hook = getattr(module, "kernel_commands", None)
if callable(hook):
    from kernel.cli import CLI
    hook(CLI(argparse.ArgumentParser().add_subparsers()))
print(",".join(m for m in sys.argv[2].split(",") if m in sys.modules and m not in before))
"""

#: Tensors of other shapes a renderer is asked to score: score() must answer, not raise. Each is
#: probed without tags and with the tags of every dataset installed (see :func:`probe_metas`).
PROBE_SHAPES = [((), "int64", "target"), ((10,), "float32", "prediction"), ((3, 32, 32), "float32", "input"),
                ((1, 16000), "float32", "input"), ((12,), "int64", "input")]


def probe_metas(catalog) -> list[dict]:
    """The metas of PROBE_SHAPES, without tags and with each tag set of the catalog's datasets: the
    kernel names no domain, the installed datasets say which there are."""
    tag_sets = [()] + sorted({tuple(sorted(c.tags)) for c in catalog.list("dataset") if c.tags})
    return [{"shape": shape, "dtype": dtype, "role": role, "tags": tags, "classes": None}
            for shape, dtype, role in PROBE_SHAPES for tags in tag_sets]


def no_trainer():
    """Stands in for the trainer in the workflows the conformance check builds: nothing is trained."""
    return None


#: Parameters the kernel fills from the data facts for these kinds (see kernel.build.call_with_facts).
FILLED_KINDS = ("model", "metric")


def required_params(target, params: dict, kind: str) -> list[str]:
    """Required parameters of a target that the example does not give (and the data cannot fill)."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    out = []
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not p.empty or name in params:
            continue
        if kind in FILLED_KINDS:
            continue  # facts (num_classes, input_shape, ...) or dataset attributes may fill it
        out.append(name)
    return out


def params_of(comp: Component) -> dict:
    """The parameters a component is checked with: its example, less the reserved keys."""
    return {k: v for k, v in (comp.example or {}).items() if k not in RESERVED_KEYS}


def fallback_dataset(comp: Component) -> dict:
    """Small synthetic data, of the task the component's tags name (classification unless regression)."""
    spec = {"use": FALLBACK_DATASET["use"], "params": dict(FALLBACK_DATASET["params"])}
    if "regression" in comp.tags and "classification" not in comp.tags:
        spec["params"]["task"] = "regression"
    return spec


def trainer_params(target, params: dict) -> dict:
    """A trainer's check parameters: its example, with ``epochs = 1`` when it takes ``epochs``."""
    try:
        takes_epochs = "epochs" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        takes_epochs = False
    return {"epochs": TRIAL_EPOCHS, **params} if takes_epochs else dict(params)


def trial_run(workspace, plan, defaults: dict):
    """A run in ``workspace`` set up as the runner sets one up for a trainer (quiet, not resuming)."""
    from .store import RunStore

    wf = plan.workflow
    run = RunStore(workspace).create(wf.name, wf.model_label(0), model_index=0, use=wf.models[0].use,
                                     seed=wf.seed, spec=wf.to_dict(), params={}, defaults=defaults,
                                     epochs=defaults.get("epochs"), monitor=defaults.get("monitor"),
                                     mode=defaults.get("mode"), classes=plan.data.classes)
    run.quiet, run.resuming, run.callbacks = True, False, []
    return run


def predictions_for(targets, facts):
    """Made-up (right, wrong) predictions for a batch of targets, shaped like a model's output."""
    import torch

    targets = torch.as_tensor(targets)
    task = facts.get("task")
    if task in ("multiclass", "binary"):
        n = int(facts.get("num_classes") or int(targets.max()) + 1)
        right = torch.nn.functional.one_hot(targets.long(), n).float()
        if right.ndim > 2:  # dense labels (B, H, W) -> scores (B, C, H, W)
            right = right.movedim(-1, 1)
        wrong = torch.nn.functional.one_hot((targets.long() + 1) % n, n).float()
        if wrong.ndim > 2:
            wrong = wrong.movedim(-1, 1)
        return right, wrong
    if task in ("multilabel", "regression"):
        right = targets.float()
        return right, 1 - right if task == "multilabel" else right + 1
    return None, None


def same(a, b, atol: float = 1e-8) -> bool:
    """Equal values, looking into tensors, arrays, sequences and dicts (tensors to ``allclose``'s
    rtol and ``atol``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], atol) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, atol) for x, y in zip(a, b))
    if hasattr(a, "shape") and hasattr(b, "shape"):
        import torch

        a, b = torch.as_tensor(a), torch.as_tensor(b)
        return a.shape == b.shape and bool(torch.equal(a, b) or torch.allclose(a.double(), b.double(),
                                                                                atol=atol, equal_nan=True))
    return a == b


def _through_checkpoint(state):
    """The state as a checkpoint gives it back: saved, then loaded with weights_only=True."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    try:
        return torch.load(buf, weights_only=True)
    except Exception as exc:
        raise AssertionError(f"state_dict() holds something a checkpoint cannot load with weights_only=True "
                             f"(use plain data and tensors): {exc}") from None


def _seed(seed: int = 0):
    import random

    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def _shapes(batch):
    """The structure of a batch with each tensor replaced by its shape."""
    if isinstance(batch, dict):
        return {k: _shapes(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [_shapes(v) for v in batch]
    return tuple(batch.shape) if hasattr(batch, "shape") else batch


def _where(exc, plugin_folder: str | None) -> str:
    """' (at file:line)': the innermost frame in the plugin's code (else outside the kernel)."""
    import traceback

    kernel_dir = str(Path(__file__).parent)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(kernel_dir)]
    own = [f for f in frames if plugin_folder and f.filename.startswith(plugin_folder)]
    frame = (own or frames or [None])[-1]
    return f" (at {frame.filename}:{frame.lineno})" if frame else ""


def _accepts(fn, count: int) -> bool:
    try:
        inspect.signature(fn).bind(*range(count))
        return True
    except TypeError:
        return False
    except ValueError:
        return True  # no signature to read (builtins): assume it does


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _attribution_like(x):
    """Signed floats shaped like the input ``x`` (a tensor), or None when ``x`` is no tensor."""
    import torch

    if not isinstance(x, torch.Tensor) or x.ndim == 0:
        return None
    return torch.linspace(-1, 1, x.numel()).reshape(x.shape)


def _is_tensorlike(value) -> bool:
    return hasattr(value, "shape") or isinstance(value, (int, float))


def check_plugin(name: str, catalog=None) -> list[Finding]:
    """Check every component of the plugin ``name`` against the contract; returns the findings."""
    return Checker(name, catalog).run()


def assert_plugin_conforms(name: str, strict: bool = False):
    """For a plugin's own tests: raise AssertionError listing the errors (and warnings, if strict)."""
    findings = check_plugin(name)
    bad = [f for f in findings if f.level == "error" or strict]
    if bad:
        raise AssertionError(f"plugin {name!r} does not conform:\n  " + "\n  ".join(map(str, bad)))
    return findings


def findings_as_dicts(findings) -> list[dict]:
    return [asdict(f) for f in findings]


# -- browser tests of a plugin's report section ------------------------------------------------------
# A plugin's section of the report and of the dashboard, checked in a real browser: Debian's chromium
# driven by Playwright's sync API, nothing downloaded (never `playwright install`), the network cut.
# Playwright and pytest are imported inside the functions: plugins' test suites import this module on
# machines without them, and `import kernel` imports neither.

#: The browser the tests drive (Debian's package; `.ci/install-browser` installs it).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
#: Requests a page may make without leaving the machine.
LOCAL_SCHEMES = ("file:", "data:", "blob:")


def need_browser():
    """Playwright's sync API (the module ``playwright.sync_api``); skips the calling test, saying why,
    when Chromium or Playwright is not installed. Call it first in a fixture that builds a workspace
    only for the browser, so that nothing is trained for a test that will be skipped."""
    import pytest

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`bash .ci/install-browser`) "
                    f"to run the browser tests")
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed: "
                                                              "`pip install playwright` to run the browser tests")


def in_browser(check, allowed: str | None = None, viewport=(1300, 900)):
    """``check(page)`` on a fresh Chromium page (:func:`watched`, letting through requests to the origin
    ``allowed``, e.g. a dashboard's ``http://127.0.0.1:PORT``), in a thread of its own with its own
    Playwright: the sync API allows one per thread, and the test's process may drive one already.
    Returns what ``check`` returns; its failure (an AssertionError, a Playwright timeout) is raised
    here. Skips the test, saying why, when the browser is not installed."""
    playwright = need_browser()
    outcome: dict = {}

    def work():
        try:
            with playwright.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
                try:
                    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
                    outcome["value"] = check(watched(context.new_page(), allowed))
                finally:
                    browser.close()
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="kernel.testing.in_browser")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def watched(page, allowed: str | None = None):
    """The Playwright ``page``, recording what goes wrong on it in lists set on it: ``page.errors``
    (console errors and uncaught exceptions), ``page.dialogs`` (the message of each ``alert``,
    ``confirm`` or ``prompt``, dismissed: markup that ran), ``page.requests`` (every URL asked for)
    and ``page.blocked`` (requests refused: everything but ``file:``, ``data:``, ``blob:`` and URLs
    under the origin ``page.allowed``, which starts as ``allowed`` and may be set later)."""
    page.errors, page.dialogs, page.requests, page.blocked, page.allowed = [], [], [], [], allowed
    page.on("console", lambda m: page.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(f"uncaught: {e}"))
    page.on("request", lambda r: page.requests.append(r.url))

    def dialog(d):
        page.dialogs.append(d.message)
        d.dismiss()
    page.on("dialog", dialog)

    def guard(route):
        url = route.request.url
        origin = (page.allowed or "").rstrip("/")
        if url.startswith(LOCAL_SCHEMES) or (origin and url.startswith(origin + "/")):
            return route.continue_()
        page.blocked.append(url)
        return route.abort()
    page.route("**/*", guard)
    return page


@contextlib.contextmanager
def dashboard(workspace, *args: str, interval: float = 0.5, timeout: float = 60):
    """``kernel dashboard --port 0`` over the workspace, in a process of its own (``python -m
    kernel.cli`` with ``KERNEL_HOME``); yields its URL without the trailing slash
    (``http://127.0.0.1:PORT``), and stops it on leaving. ``args`` are more options
    (``"--allow-control"``)."""
    workspace = Path(workspace)
    proc = subprocess.Popen([sys.executable, "-m", "kernel.cli", "dashboard", "--port", "0", "--interval",
                             str(interval), *args], cwd=workspace,
                            env={**os.environ, "KERNEL_HOME": str(workspace)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        timer = threading.Timer(timeout, proc.kill)  # a dashboard that never says where it listens
        timer.start()
        try:
            banner = proc.stdout.readline()
        finally:
            timer.cancel()
        if " at http://" not in banner:
            proc.kill()
            raise AssertionError(f"kernel dashboard did not start: {banner}{proc.stderr.read()}")
        yield banner.split(" at ", 1)[1].split()[0].rstrip("/")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()

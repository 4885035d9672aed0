"""Workflows: a TOML file, a dict or Python objects, validated into one model before anything is built.

Every component spec is ``{use = NAME, params = {...}}``; keys beside ``use`` are parameters too
(``{ use = "vision.Resize", size = 32 }``), moved into ``params`` so that errors and overrides
always name ``...params.size``.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .component import is_spec
from .errors import KernelError, WorkflowError, did_you_mean

_RESERVED = {"use", "params", "name"}

# names become parts of folder names (run ids, analysis/<name>): a file system allows 255 bytes per name
MAX_NAME = 80


def _short_name(value):
    if value is not None and len(value) > MAX_NAME:
        raise ValueError(f"at most {MAX_NAME} characters (it names the run folders), not {len(value)}")
    return value


class Spec(BaseModel):
    """One component: which one (``use``) and its parameters."""

    model_config = ConfigDict(extra="forbid")
    use: str
    params: dict[str, Any] = Field(default_factory=dict)


class ModelSpec(Spec):
    name: Optional[str] = None  # a label for the run; defaults to the component name

    @field_validator("name")
    @classmethod
    def _name(cls, value):
        return _short_name(value)


class SplitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    valid: float = Field(0.2, ge=0.0, lt=1.0)
    test: float = Field(0.0, ge=0.0, lt=1.0)


class DatasetSpec(Spec):
    transforms: list[Spec] = Field(default_factory=list)
    target_transforms: list[Spec] = Field(default_factory=list)
    split: SplitSpec = Field(default_factory=SplitSpec)
    fraction: float = Field(1.0, gt=0.0, le=1.0)


class TrainerSpec(Spec):
    use: str = "kernel.supervised"


class Workflow(BaseModel):
    """A whole workflow: one dataset, its transforms, the models to train, the trainer.

    Other top-level tables belong to plugins (``[tuning]`` to plugin-tuning, hook
    ``kernel_sections``): kept as they are in :attr:`sections`, checked by their plugin when the
    workflow is validated against the catalog, ignored by the kernel itself.
    """

    # extra keys are allowed here, and refused in __init__ unless they are tables
    model_config = ConfigDict(extra="allow")
    name: str = "workflow"
    seed: int = Field(0, strict=True)  # "3" or true is a mistake, not a seed
    dataset: DatasetSpec
    models: list[ModelSpec] = Field(default_factory=list)
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)
    analyzers: Optional[list[Spec]] = None  # None: the defaults of every plugin that fits
    renderers: dict[str, str] = Field(default_factory=dict)  # role -> renderer name override
    callbacks: list[Spec] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    source: Optional[str] = Field(None, exclude=True)  # the file it came from

    @field_validator("name")
    @classmethod
    def _name(cls, value):
        return _short_name(value)

    @property
    def sections(self) -> dict[str, dict]:
        """The tables that belong to plugins: ``{"tuning": {...}}``."""
        return dict(self.__pydantic_extra__ or {})

    def without_sections(self) -> "Workflow":
        """The workflow with the plugins' tables left out (what a trial of a study trains)."""
        data = self.to_dict()
        for key in self.sections:
            data.pop(key, None)
        return Workflow.from_dict(data, source=self.source)

    def __getattr__(self, name: str):
        # pydantic's own lookup first (private attributes, the plugins' tables); then a method a
        # plugin adds (hook kernel_methods), looked up only when nothing else has the name
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_"):
                raise
        from .methods import plugin_method

        return plugin_method(self, "Workflow", name)

    @field_validator("renderers")
    @classmethod
    def _roles(cls, value):
        bad = set(value) - {"input", "target", "prediction", "attribution"}
        if bad:
            raise ValueError(f"roles are input, target, prediction and attribution, not {', '.join(sorted(bad))}")
        return value

    # -- making ------------------------------------------------------------------------------
    def __init__(self, **data):
        data = normalize(data)
        known = type(self).model_fields
        loose = [(key, "unknown setting" + did_you_mean(key, list(known))) for key, value in data.items()
                 if key not in known and not isinstance(value, dict)]  # a plugin's table is a table
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise WorkflowError(loose + pydantic_problems(exc)) from None
        if loose:
            raise WorkflowError(loose)

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> "Workflow":
        wf = cls(**data)
        wf.source = source
        return wf

    @classmethod
    def from_file(cls, path) -> "Workflow":
        """Read a TOML workflow file."""
        import tomllib

        file = Path(path)
        if not file.is_file():
            raise KernelError(f"workflow file not found: {file}")
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise KernelError(f"{file}: malformed TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise KernelError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        return cls.from_dict(data, source=str(file))

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)

    def with_overrides(self, overrides: dict[str, Any]) -> "Workflow":
        """A copy with values set at dotted paths: ``{"trainer.params.epochs": 3}``."""
        data = self.to_dict()
        for path, value in overrides.items():
            set_path(data, path, value)
        return Workflow.from_dict(data, source=self.source)

    def validate_components(self, catalog=None) -> "Workflow":
        """Check every name and parameter against the catalog; raise one error listing all problems."""
        from .validation import check_workflow

        check_workflow(self, catalog)
        return self

    def run(self, **options):
        """Train every model; returns :class:`kernel.Results`."""
        from .runner import run_workflow

        return run_workflow(self, **options)

    def model_label(self, index: int) -> str:
        spec = self.models[index]
        return spec.name or spec.use.rsplit(".", 1)[-1].split(":")[-1]

    def model_indices(self, only=(), shard: str | None = None) -> list[int]:
        """The indices of the models one command trains: all of them, those labelled ``only``
        (names as `kernel runs` shows them), or shard ``"I/N"``: every N-th model from the I-th, so
        that N commands with I = 1..N, on one machine or several sharing the run store, train each
        model once."""
        labels = [self.model_label(i) for i in range(len(self.models))]
        if only:
            unknown = [name for name in only if name not in labels]
            if unknown:
                raise KernelError(f"--only: no model {unknown[0]!r} in workflow {self.name!r}"
                                  f"{did_you_mean(unknown[0], labels)}; its models: {', '.join(labels)}")
            return [i for i, label in enumerate(labels) if label in only]
        if shard is None:
            return list(range(len(self.models)))
        parts = str(shard).split("/")
        try:
            part, count = (int(p) for p in parts) if len(parts) == 2 else (0, 0)
        except ValueError:
            part = count = 0
        if not 1 <= part <= count:
            raise KernelError(f"--shard: expected I/N with 1 <= I <= N (e.g. 2/4: the second of four commands), "
                              f"not {shard!r}")
        return list(range(part - 1, len(self.models), count))


def pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """``(location, message)`` for each of pydantic's errors, locations written as the user writes them."""
    return [(loc_to_path(e["loc"]), _message(e)) for e in exc.errors()]


def _message(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown setting"
    if err["type"] == "missing":
        return "required setting is missing"
    return err["msg"].removeprefix("Value error, ")


def loc_to_path(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


def normalize(data: dict) -> dict:
    """Move keys beside ``use`` into ``params`` in every component spec."""
    data = copy.deepcopy(dict(data))
    ds = data.get("dataset")
    if isinstance(ds, str):
        ds = data["dataset"] = {"use": ds}
    if isinstance(ds, dict):
        _lift(ds, _DATASET_SECTIONS)
        for key in ("transforms", "target_transforms"):
            if isinstance(ds.get(key), list):
                ds[key] = [_spec(t) for t in ds[key]]
    if isinstance(data.get("models"), list):
        data["models"] = [_spec(m) for m in data["models"]]
    if isinstance(data.get("trainer"), dict):
        _lift(data["trainer"], set())
    for key in ("analyzers", "callbacks"):
        if isinstance(data.get(key), list):
            data[key] = [_spec(s) for s in data[key]]
    return data


def _spec(value):
    if isinstance(value, str):
        return {"use": value}
    if isinstance(value, dict):
        _lift(value, set())
    return value


def _lift(spec: dict, keep: set):
    params = spec.get("params")
    if params is not None and not isinstance(params, dict):
        return  # let pydantic report the wrong type
    params = dict(params or {})
    for key in list(spec):
        if key not in _RESERVED and key not in keep:
            params[key] = spec.pop(key)
    if params or "params" in spec:
        spec["params"] = params


_PATH = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> list:
    parts = []
    for name, index in _PATH.findall(path):
        parts.append(int(index) if index else name)
    if not parts:
        raise KernelError(f"empty setting path {path!r}")
    return parts


def set_path(data: dict, path: str, value):
    """Set ``value`` at a dotted path; ``models[0].dropout`` means ``models[0].params.dropout``."""
    parts = parse_path(path)
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise KernelError(f"--set {path}: index {part} is out of range (there are {size})")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise KernelError(f"--set {path}: {part!r} is not a table")
            node = node.setdefault(part, [] if isinstance(nxt, int) else {})
        sections = _DATASET_SECTIONS if (i == 0 and part == "dataset") else set()
        if is_spec(node) and isinstance(nxt, str) and nxt not in _RESERVED | sections:
            node = node.setdefault("params", {})
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list):
            raise KernelError(f"--set {path}: {loc_to_path(parts[:-1])} is not a list")
        if last >= len(node):
            raise KernelError(f"--set {path}: index {last} is out of range (there are {len(node)})")
    elif not isinstance(node, dict):
        raise KernelError(f"--set {path}: {loc_to_path(parts[:-1])} is not a table")
    node[last] = value


_DATASET_SECTIONS = {"transforms", "target_transforms", "split", "fraction"}


def parse_value(text: str):
    """A ``--set`` value: TOML syntax when it parses (3, 0.1, true, [1, 2], "x"), else the plain string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_params(pairs, option: str = "--param") -> dict[str, Any]:
    """A command's ``--param KEY=VALUE`` options as ``{key: value}``: values in TOML syntax where they
    parse (``opset=17``, ``n_steps=20``), else plain text; a pair without ``=`` is a located error."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise KernelError(f"{option} {pair!r}: write KEY=VALUE, e.g. {option} n_steps=20")
        params[key.strip()] = parse_value(value.strip())
    return params


def parse_overrides(sets=(), files=()) -> dict[str, Any]:
    """The overrides of ``--set-file FILE`` and ``--set PATH=VALUE`` options, in that order (a
    ``--set`` wins over a file). A file is TOML whose keys are the quoted paths:
    ``"trainer.optimizer.lr" = 0.003`` (what ``kernel tune`` writes for the best trial)."""
    import tomllib

    overrides: dict[str, Any] = {}
    for name in files:
        file = Path(name)
        if not file.is_file():
            raise KernelError(f"--set-file {file}: file not found")
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise KernelError(f"--set-file {file}: not a TOML file of PATH = VALUE lines ({exc})") from None
        for path, value in _flat_paths(data):
            parse_path(path)
            overrides[path] = value
    for item in sets:
        path, sep, value = str(item).partition("=")
        if not sep or not path.strip():
            raise KernelError(f"--set takes PATH=VALUE, e.g. trainer.epochs=3; got {item!r}")
        overrides[path.strip()] = parse_value(value.strip())
    return overrides


def _flat_paths(data: dict, prefix: str = ""):
    """``{"a.b" = 1}`` and ``[a] b = 1`` both mean the path a.b; a value that is a component
    table (``{use = ...}``) stays whole."""
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and not is_spec(value):
            yield from _flat_paths(value, path)
        else:
            yield path, value

"""One run exported with one exporter, verified on real samples, then put in place and recorded.

The file is written under a temporary name beside its destination, loaded back through the
exporter's ``load`` and run on validation samples next to the eager model. Only a file whose scores
agree within the tolerance takes its name; one that does not is kept as ``NAME.unverified`` for
inspection and the export fails. Either way the outcome is recorded in the run's run.json
(``exports``), which ``kernel runs`` and the report show.

When the run's preprocessing is portable (every transform has ``portable()``), the exported file is
fed by the numpy steps that ``kernel predict`` uses, while the eager model gets the run's own torch
transforms: the verification covers the whole path a caller takes, not only the graph.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kernel import KernelError, did_you_mean

from . import metadata as meta

CHUNK = 32
EXAMPLE = 3  # the example batch: more than 1 so that no exporter takes the batch axis for a constant 1


@dataclass
class Tolerance:
    """A float export passes when every score is within ``atol + rtol * max|eager score|`` of the eager
    model's; a quantised one when its top-1 class agrees with the float model's on ``min_agreement``
    of the samples."""

    atol: float = 1e-4
    rtol: float = 1e-3
    min_agreement: float = 0.95


@dataclass
class Verification:
    samples: int
    max_abs_error: float
    max_rel_error: float
    top1_agreement: float
    passed: bool
    rule: str

    def line(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        # max_rel_error: the max abs error relative to the largest eager score, not element by element
        return (f"verified on {self.samples} samples: max abs error {self.max_abs_error:.3g} "
                f"({self.max_rel_error:.3g} of the largest score), top-1 agreement {self.top1_agreement:.1%} "
                f"({self.rule}): {verdict}")


@dataclass
class Exported:
    run: str
    format: str
    exporter: str
    path: Path
    verification: Verification | None
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verification is not None and self.verification.passed

    def record(self) -> dict:
        """run.json's entry (JSON-ready: an error too large to measure is null, not Infinity)."""
        v = self.verification
        measured = {k: finite(getattr(v, k)) for k in ("samples", "max_abs_error", "max_rel_error",
                                                        "top1_agreement")} if v else {}
        return {**self.details, "format": self.format, "exporter": self.exporter, "path": str(self.path),
                "size": self.path.stat().st_size if self.path.exists() else None, "verified": self.passed,
                **measured}


def finite(value):
    return value if not isinstance(value, float) or np.isfinite(value) else None


# -- exporters by name -------------------------------------------------------------------------------

def exporter_names(catalog) -> dict[str, str]:
    """``{what a user may write: catalog name}``: every exporter's full name, and its short name
    (after the plugin's prefix) where no two exporters share it."""
    names = catalog.names("exporter")
    short: dict[str, list[str]] = {}
    for n in names:
        short.setdefault(n.split(".", 1)[-1], []).append(n)
    return {**{s: ns[0] for s, ns in short.items() if len(ns) == 1}, **{n: n for n in names}}


def resolve(catalog, fmt: str, params: dict | None = None):
    """``(catalog name, exporter)`` for ``--format``; unknown names get did-you-mean."""
    known = exporter_names(catalog)
    if fmt not in known:
        shown = sorted(k for k in known if "." not in k) or sorted(known)
        candidates = [k for k in known if ("." in k) == ("." in fmt)] or list(known)
        raise KernelError(f"unknown export format {fmt!r}{did_you_mean(fmt, candidates)}; the formats are "
                          f"{', '.join(shown)} (`kernel list exporters`)")
    name = known[fmt]
    check_params(name, catalog.target(catalog.get(name, "exporter")), params or {})
    try:
        return name, catalog.create(name, "exporter", **(params or {}))
    except (TypeError, ValueError) as exc:
        raise KernelError(f"{name}: {exc}") from None


def check_params(name: str, target, params: dict):
    """Each --param against the exporter's signature: a known name, a value of the annotated type."""
    import inspect

    accepted = {k: p for k, p in inspect.signature(target).parameters.items() if k != "self"}
    types = {"bool": bool, "int": int, "float": (int, float), "str": str}
    for key, value in params.items():
        if key not in accepted:
            raise KernelError(f"{name}: unknown parameter {key!r}{did_you_mean(key, list(accepted))}; its parameters "
                              f"are {', '.join(accepted) or 'none'} (`kernel show {name}`)")
        expected = types.get(str(accepted[key].annotation).split(" |")[0])
        if expected and (not isinstance(value, expected) or (expected is not bool and isinstance(value, bool))):
            raise KernelError(f"{name}: parameter {key} expects {accepted[key].annotation}, not {value!r}")


# -- samples and feeds -------------------------------------------------------------------------------

def to_numpy(x):
    import torch

    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


#: how the vision plugin scales integer pixels (plugin_vision/images.py): by dtype, others unscaled
PIXEL_SCALE = {"uint8": 255.0, "int16": 32767.0, "int32": 65535.0, "uint16": 65535.0}


def as_image(x) -> np.ndarray:
    """A dataset's raw image as ``kernel predict`` reads a file: float32 (C, H, W) in [0, 1]. Datasets
    hand out PIL images, (H, W[, C]) arrays or (C, H, W) tensors, integer or float."""
    from PIL import Image

    from .portable import _CONVERT_MODES, _pixels

    if isinstance(x, Image.Image):
        if x.mode in _CONVERT_MODES:  # palette and other colour spaces as the vision plugin converts them
            x = x.convert("RGB" if x.mode == "P" and "transparency" not in x.info else _CONVERT_MODES[x.mode])
        return _pixels(x, len(x.getbands()))
    is_tensor = hasattr(x, "dim")
    array = np.asarray(to_numpy(x))
    if not is_tensor and array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        array = array.transpose(2, 0, 1)  # arrays are (H, W, C), as numpy, PIL and OpenCV keep them
    if array.ndim == 2:
        array = array[None]
    scale = PIXEL_SCALE.get(str(array.dtype))
    array = array.astype(np.float32)
    return array / np.float32(scale) if scale else array


def scores_of(out) -> np.ndarray:
    from .flat import first_tensor

    return first_tensor(out).detach().cpu().float().numpy()


class Feeds:
    """How inputs reach the exported file: the portable numpy steps (as ``kernel predict``), or the run's
    torch batches when the run is not portable."""

    def __init__(self, loaded, in_graph: bool):
        from .flat import prelude_for

        self.loaded, self.pad_to = loaded, None
        try:
            steps, self.collate = meta.portable_steps(loaded)
            self.not_portable = None
        except meta.NotPortable as exc:
            steps, self.collate, self.not_portable = None, None, str(exc)
        self.prelude, self.in_graph = None, []
        if in_graph:
            if steps is None:
                raise KernelError(f"--in-graph needs portable preprocessing, and {self.not_portable}")
            ndim = len(loaded.facts.get("input_shape") or []) + 1
            self.prelude, steps, self.in_graph = prelude_for(steps, ndim)
            if not self.in_graph:
                raise KernelError("--in-graph: the run's preprocessing ends with no step that can run in the graph "
                                  "(normalize)")
        self.steps = steps
        # random transforms run by the eager path but skipped by the portable one (docs/export.md)
        self.augmentations = [s.get("augmentation") for s in steps or [] if s.get("augmentation")]
        # raw images reach the steps as predict reads files: float (C, H, W) in [0, 1]
        self.image = meta.input_kind(loaded.facts, steps or []) == "image"

    @property
    def portable(self) -> bool:
        return self.steps is not None

    def max_length(self) -> int | None:
        for step in self.steps or []:
            if step.get("max_length"):
                return int(step["max_length"])
        return None

    def batch(self, raws: list, names: list[str] | None = None) -> dict | object:
        """The exported file's inputs for raw samples: ``{name: numpy array}`` (portable), else the run's
        own batch as numpy arrays."""
        from .flat import flatten

        if self.portable:
            from . import portable

            items = [portable.apply_steps(self.steps, as_image(x) if self.image else to_numpy(x)) for x in raws]
            batch = portable.collate(self.collate, items, pad_to=self.pad_to)
            if isinstance(batch, dict):
                return batch
            return {(names or ["input"])[0]: batch}
        torch_batch = self.loaded.preprocess(raws)
        keys, tensors, _ = flatten(torch_batch)
        return {k: to_numpy(t) for k, t in zip(keys, tensors)}

    def example(self, raws: list):
        """The torch example batch the exporter traces, shaped as the model's batches are."""
        import torch

        if not self.portable:
            return self.loaded.preprocess(raws)
        feed = self.batch(raws)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feed.items()}
        return tensors if len(tensors) > 1 or (self.collate or {}).get("step") == "pad_tokens" \
            else next(iter(tensors.values()))


def samples_of(loaded, split: str, count: int) -> list:
    import kernel

    data = loaded.data
    if split not in data.splits:
        raise KernelError(f"split {split!r} does not exist in run {loaded.run.id}; its splits are "
                          f"{', '.join(data.splits)}{did_you_mean(split, list(data.splits))}")
    indices = kernel.sample_indices(loaded.plan, split, count)
    raw = data.raw[split]
    return [raw[i] for i in indices]


# -- verification ------------------------------------------------------------------------------------

def compare(reference: np.ndarray, exported: np.ndarray, tolerance: Tolerance, quantized: bool) -> Verification:
    if reference.shape != exported.shape:
        return Verification(len(reference), float("inf"), float("inf"), 0.0, False,
                            f"shape {exported.shape} instead of {reference.shape}")
    diff = np.abs(reference.astype(np.float64) - exported.astype(np.float64))
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = max_abs / scale if scale else max_abs
    agree = float((reference.argmax(-1) == exported.argmax(-1)).mean()) if reference.size else 1.0
    if quantized:
        passed = agree >= tolerance.min_agreement
        rule = f"top-1 agreement with the float model at least {tolerance.min_agreement:.0%}"
    else:
        bound = tolerance.atol + tolerance.rtol * scale
        passed = bool(np.isfinite(max_abs) and max_abs <= bound)
        rule = f"max abs error at most {bound:.3g} = atol {tolerance.atol:g} + rtol {tolerance.rtol:g} x {scale:.3g}"
    return Verification(len(reference), max_abs, max_rel, agree, passed, rule)


def chunks(raws: list) -> list[list]:
    return [raws[i:i + CHUNK] for i in range(0, len(raws), CHUNK)]


def shortest_texts(loaded, split: str, count: int = 3) -> list:
    """The split's shortest texts, and an empty one, each to be verified alone: a graph may have
    frozen a branch taken for long batches only (padding a batch shorter than a convolution)."""
    raw = loaded.data.raw[split]
    texts = [(len(raw[i][0]), i) for i in range(len(raw)) if isinstance(raw[i][0], str)]
    return [raw[i][0] for _, i in sorted(texts)[:count]] + ([""] if texts else [])


def feed_batches(feeds: Feeds, batches: list[list], names: list[str]) -> list[dict]:
    """Each batch's inputs for the file, made once: the eager model and the file must see the same
    draw of any random transform."""
    return [feeds.batch(b, names) for b in batches]


def reference_scores(loaded, batches: list[list]) -> np.ndarray:
    """The whole eager path: the run's own torch transforms, then the model."""
    return np.concatenate([scores_of(loaded.predict(b)) for b in batches])


def model_scores(model, fed: list[dict]) -> np.ndarray:
    """The eager model (as exported: ``Flat``) on the very inputs the exported file gets."""
    import torch

    out = []
    for feed in fed:
        with torch.no_grad():
            out.append(scores_of(model(*(torch.from_numpy(np.ascontiguousarray(feed[n])) for n in model.names))))
    return np.concatenate(out)


def exported_scores(runner, fed: list[dict]) -> np.ndarray:
    return np.concatenate([np.asarray(runner(feed)) for feed in fed]).astype(np.float32)


# -- placing the file --------------------------------------------------------------------------------

def is_folder(output) -> bool:
    return Path(output).is_dir() or str(output).endswith(("/", os.sep))


def destination(loaded, exporter, output) -> Path:
    """The run's artifacts/exports/MODEL.SUFFIX; in a folder given with -o, RUN_ID.SUFFIX (runs of one
    model exported to one folder must not overwrite each other); or the file given."""
    suffix = getattr(exporter, "suffix", "." + getattr(exporter, "format", "export"))
    if output is None:
        return (loaded.run.artifacts / "exports" / f"{loaded.info.get('model') or 'model'}{suffix}").resolve()
    if is_folder(output):
        return (Path(output) / f"{loaded.run.id}{suffix}").resolve()
    path = Path(output).resolve()
    if not path.name.endswith(suffix):
        raise KernelError(f"-o {output}: {getattr(exporter, 'format', 'exported')} files end in {suffix}")
    return path


def temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        raise KernelError(f"{path} is a symbolic link; export to a plain path")
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")  # the suffix stays last: torch.export wants .pt2


def record(loaded, entries: list[dict]):
    """Add (or replace, by path) the run's export entries in run.json."""
    import kernel

    run = kernel.Run.open(loaded.run.dir, loaded.run.store)  # run.json as it is now, not as loaded
    # a new entry replaces the one of its path, and a verified file the refused one it replaced
    gone = {x["path"] for x in entries} | {f"{x['path']}.unverified" for x in entries if x.get("verified")}
    kept = [e for e in run.info.get("exports") or [] if e.get("path") not in gone]
    run.update(exports=kept + entries)


def export_run(loaded, catalog, fmt: str = "onnx", params: dict | None = None, output=None, split: str = "valid",
               samples: int = 64, tolerance: Tolerance | None = None, in_graph: bool = False,
               quantize: str | None = None, say=None) -> list[Exported]:
    """Export, verify, place and record; returns the float export and, with ``quantize``, the quantised
    one. An export whose verification failed is returned too, ``passed`` false, its file kept as
    NAME.unverified."""
    from .quantize import MODES

    tolerance = tolerance or Tolerance()
    say = say or (lambda _: None)
    if quantize is not None and quantize not in MODES:
        raise KernelError(f"quantize must be dynamic or static, not {quantize!r}{did_you_mean(str(quantize), list(MODES))}")
    name, exporter = resolve(catalog, fmt, params)
    quantize = quantize if getattr(exporter, "format", None) == "onnx" else None  # int8 files are ONNX files
    if not callable(getattr(exporter, "load", None)):
        raise KernelError(f"exporter {name} has no load(path), so what it writes cannot be verified")
    feeds = Feeds(loaded, in_graph)
    raws = [x for x, _ in samples_of(loaded, split, samples)]
    if len(raws) < 1:
        raise KernelError(f"the {split} split of run {loaded.run.id} has no samples to verify with")
    final = destination(loaded, exporter, output)
    tmp = temporary(final)
    model = flat_for(loaded, feeds, raws)
    info = meta.build(loaded, getattr(exporter, "format", name), name, feeds.steps, feeds.collate, feeds.in_graph,
                      feeds.not_portable, raw=as_image(raws[0]) if feeds.image else to_numpy(raws[0]))
    whole_path = feeds.portable and not feeds.augmentations
    try:
        artifact = write(exporter, model, feeds, raws, tmp, info)
        say(f"verifying {final.name} on {len(raws)} {split} samples ...")
        batches = chunks(raws) + [[t] for t in shortest_texts(loaded, split)]
        fed = feed_batches(feeds, batches, model.names)
        # the whole path where it is deterministic: the run's torch transforms and model against the portable
        # steps and the file; else (random transforms, or no portable steps) the model and the file on one draw
        reference = reference_scores(loaded, batches) if whole_path else model_scores(model, fed)
        try:
            verification = compare(reference, exported_scores(exporter.load(tmp), fed), tolerance, False)
        except Exception as exc:  # the file loads or runs wrongly: that is what verification is for
            line = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            verification = Verification(sum(map(len, batches)), float("inf"), float("inf"), 0.0, False,
                                        f"the exported file failed on the samples: {line[:200]}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    compared = "preprocessing and model" if whole_path else "model only (" + (
        "random augmentations skipped: " + ", ".join(feeds.augmentations) if feeds.portable
        else f"the preprocessing is not portable: {feeds.not_portable}") + ")"
    details = {**dict(artifact.metadata or {}), "sequence_length": feeds.pad_to, "in_graph": feeds.in_graph,
               "compared": compared}
    details.pop("inputs", None)
    done = [place(Exported(loaded.run.id, info["format"], name, final, verification, details), tmp)]
    record(loaded, [d.record() for d in done])  # the float file is recorded before quantising can fail
    if quantize and done[0].passed:
        from .quantize import quantize_export

        done.append(quantize_export(loaded, feeds, done[0], quantize, split, tolerance, say))
        record(loaded, [done[-1].record()])
    elif quantize:
        say(f"not quantising {final.name}: the float file was refused")
    return done


def refusal(d: Exported) -> str:
    return (f"{d.format} export of run {d.run} refused: {d.verification.line()}; the file is kept as {d.path} for "
            f"inspection")


def flat_for(loaded, feeds: Feeds, raws: list):
    from .flat import Flat, flatten

    names, _, structure = flatten(feeds.example(raws[:EXAMPLE]))
    return Flat(loaded.model, names, structure, feeds.prelude).eval()


def write(exporter, model, feeds: Feeds, raws: list, tmp: Path, info: dict):
    """Export on an example batch. A graph that fixed the sequence axis of token inputs (the exporter
    unrolled a recurrent loop, or guarded on the example's length) is exported again at the vocabulary's
    maximum length, to which the inputs are then padded: shorter texts give the same scores, and none
    is longer."""
    example = feeds.example(raws[:EXAMPLE])
    artifact = call_export(exporter, model, example, tmp, info)
    fixed = fixed_sequence(artifact, example) or refuses_other_lengths(exporter, tmp, feeds, raws, example)
    if fixed is None:
        return artifact
    length = feeds.max_length() if feeds.portable else None
    if length is None:
        raise KernelError(f"{info['format']}: the exported graph fixes the text length at {fixed}, and the run's "
                          f"preprocessing {'sets no maximum length' if feeds.portable else 'is not portable'} "
                          f"to pad to; try another format")
    feeds.pad_to = length
    info["sequence_length"] = length
    return call_export(exporter, model, feeds.example(raws[:EXAMPLE]), tmp, info)


def call_export(exporter, model, example, path: Path, info: dict):
    """``export(model, example, path)`` as the kernel's hook defines it, with ``metadata=`` when the
    exporter takes it; its result must be an Artifact (or at least name the file)."""
    import inspect

    try:
        takes = "metadata" in inspect.signature(exporter.export).parameters
    except (TypeError, ValueError):
        takes = False
    artifact = exporter.export(model, example, path, metadata=info) if takes else exporter.export(model, example, path)
    if not path.exists():
        raise KernelError(f"exporter {info['exporter']} wrote nothing at {path}")
    if not hasattr(artifact, "metadata"):
        from kernel import Artifact

        artifact = Artifact(str(path), info["format"], {})
    return artifact


def refuses_other_lengths(exporter, tmp: Path, feeds: Feeds, raws: list, example) -> int | None:
    """The example's text length, if the exported file fails on one sample of another length (a graph
    may declare the axis free and still assert the example's length inside)."""
    lengths = token_lengths(example)
    if not lengths:
        return None
    try:
        runner = exporter.load(tmp)
    except Exception:
        return None  # a file that does not load is the verification's to refuse
    for raw in raws[EXAMPLE:EXAMPLE + 16]:
        feed = feeds.batch([raw], runner.inputs)
        if token_lengths(feed) and token_lengths(feed) != lengths:
            try:
                runner(feed)
            except Exception:
                return lengths[0]
            return None
    return None


def token_lengths(batch) -> list[int]:
    """The second axis of a batch's 2-D integer and boolean inputs (token ids, masks)."""
    values = batch.values() if isinstance(batch, dict) else [batch]
    out = []
    for v in values:
        shape, kind = tuple(v.shape), str(v.dtype)
        if len(shape) >= 2 and ("int" in kind or "bool" in kind):
            out.append(int(shape[1]))
    return out


def fixed_sequence(artifact, example) -> int | None:
    """The length at which the exported graph fixed a token input's sequence axis, or None."""
    import torch

    from .flat import flatten

    names, tensors, _ = flatten(example)
    declared = {i["name"]: i["shape"] for i in (artifact.metadata or {}).get("inputs", [])}
    for name, t in zip(names, tensors):
        shape = declared.get(name)
        if shape and t.dim() >= 2 and t.dtype in (torch.long, torch.int32, torch.bool) and shape[1] is not None:
            return int(shape[1])
    return None


def place(done: Exported, tmp: Path) -> Exported:
    """The verified file takes its name; a refused one is kept beside it as NAME.unverified."""
    if done.passed:
        os.replace(tmp, done.path)
        Path(f"{done.path}.unverified").unlink(missing_ok=True)
    else:
        done.path = Path(f"{done.path}.unverified")
        os.replace(tmp, done.path)
    return done

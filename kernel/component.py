"""What plugins hand to the kernel: descriptions of components, the reports analyzers return, and
the media renderers return.

Both are plain data; nothing here imports torch, so listing the catalog stays cheap.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Union

#: The kinds of component, each filled by the hook ``kernel_<kind>s``.
KINDS = ("dataset", "transform", "model", "renderer", "analyzer", "metric", "trainer", "exporter", "callback",
         "section")


@dataclass(frozen=True)
class Component:
    """One buildable thing a plugin offers.

    ``name`` is namespaced by the plugin (``vision.resnet18``); ``target`` is ``"module:attr"``
    (imported only when the component is built or inspected) or a callable. ``example`` holds
    parameters for the conformance check when the defaults alone cannot build the component.
    ``kind`` and ``plugin`` are filled in by the catalog.
    """

    name: str
    target: Union[str, Callable[..., Any]]
    summary: str = ""
    tags: tuple = ()
    example: Mapping[str, Any] | None = None
    kind: str = ""
    plugin: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Component name must be a non-empty string, got {self.name!r}")
        if not (callable(self.target) or (isinstance(self.target, str) and self.target)):
            raise TypeError(f"Component {self.name!r}: target must be 'module:attr' or a callable")
        object.__setattr__(self, "tags", tuple(self.tags))


@dataclass(frozen=True)
class Kind:
    """A kind of component a plugin declares (hook ``kernel_kinds``), filled by any plugin through
    its own hook ``kernel_<name>s`` exactly as the built-in kinds are (``kernel_models``).

    ``name`` is singular and lowercase (``"attribution"``: hook ``kernel_attributions``); ``doc``
    documents that hook: what a component's target returns. ``check`` (``"module:function"`` or a
    callable, optional) is ``check(obj) -> list[str]``: the problems ``kernel check-plugin`` reports
    for an object a component of this kind built. ``plugin`` is filled in by the kernel.
    """

    name: str
    doc: str
    check: Union[str, Callable[[Any], list], None] = None
    plugin: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"Kind name must be a lowercase identifier in the singular ('attribution'), "
                             f"not {self.name!r}")
        if not isinstance(self.doc, str) or not self.doc.strip():
            raise ValueError(f"Kind {self.name!r}: doc must say what a component's target returns")
        if not (self.check is None or callable(self.check) or (isinstance(self.check, str) and ":" in self.check)):
            raise ValueError(f"Kind {self.name!r}: check must be 'module:function' or a callable, not {self.check!r}")

    @property
    def hook(self) -> str:
        """The hook that fills this kind: ``kernel_<name>s``."""
        return f"kernel_{self.name}s"


@dataclass
class Report:
    """What an analyzer finds.

    ``values`` maps a name to a number or text; ``table`` is a list of rows (dicts or lists);
    ``figure`` is an optional PIL image; ``suggestions`` are workflow settings the user may adopt:
    dotted paths that ``kernel run --set`` takes (``{"trainer.loss": {"use": ..., "weight": [...]}}``,
    ``{"dataset.transforms[1].max_length": 64}``), with values a workflow can hold (numbers, text,
    lists, tables). ``set_options()`` prints them as those options.
    """

    title: str
    values: dict = field(default_factory=dict)
    table: list | None = None
    figure: Any = None
    suggestions: dict = field(default_factory=dict)

    def set_options(self) -> list[str]:
        """Each suggestion as the option that adopts it: ``--set 'trainer.epochs=3'``."""
        from .toml_values import set_option

        return [set_option(path, value) for path, value in self.suggestions.items()]

    def to_dict(self) -> dict:
        """The report as JSON-ready data (the figure is left out: it is saved as a PNG beside it)."""
        return {"title": self.title, "values": self.values, "table": self.table,
                "suggestions": self.suggestions}


@dataclass
class Artifact:
    """What an exporter wrote: the file, its format, and anything worth recording (checks passed, sizes)."""

    path: str
    format: str
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Section:
    """A part of the report and the dashboard that a plugin adds (``kernel_report_sections``):
    a title and an HTML fragment that works offline (inline scripts, no CDN)."""

    title: str
    html: str


#: the file suffixes a report shows, by kind of media (the first of each is the usual one)
MEDIA_SUFFIXES = {"image": (".png", ".jpg", ".jpeg"), "audio": (".wav", ".ogg", ".flac", ".mp3"),
                  "html": (".html",)}


@dataclass(frozen=True)
class Media:
    """A rendered sample as the bytes of a file: ``kind`` is "image", "audio" or "html", ``suffix``
    says the format (``.png``, ``.wav``, ``.html``; see ``MEDIA_SUFFIXES``).

    A renderer returns one of these (or a PIL image, or HTML text, which the kernel wraps); the
    report shows it by its suffix: a picture, a player, a frame.
    """

    kind: str
    data: bytes
    suffix: str

    def __post_init__(self):
        if self.suffix not in MEDIA_SUFFIXES.get(self.kind, ()):
            raise ValueError(f"Media of kind {self.kind!r} with suffix {self.suffix!r}: use one of "
                             + ", ".join(f"{k} {'/'.join(v)}" for k, v in MEDIA_SUFFIXES.items()))
        if not isinstance(self.data, (bytes, bytearray)):
            raise TypeError(f"Media data must be bytes, not {type(self.data).__name__}")

    def save(self, path) -> Path:
        """Write the file at ``path`` with this media's suffix (replacing a media suffix already
        there, ``0_input.png`` -> ``0_input.wav``); returns the path written."""
        path = Path(path)
        known = {s for suffixes in MEDIA_SUFFIXES.values() for s in suffixes}
        path = path.with_suffix(self.suffix) if path.suffix.lower() in known else \
            path.with_name(path.name + self.suffix)
        from .store import write_atomic

        write_atomic(path, bytes(self.data))  # replaces a planted link instead of writing through it
        return path


def is_spec(value) -> bool:
    """A component written inline in a workflow: ``{use = "torch.optim.AdamW", lr = 0.1}``."""
    return isinstance(value, dict) and "use" in value

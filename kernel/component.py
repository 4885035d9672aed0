"""What plugins hand to the kernel: descriptions of components, and the reports analyzers return.

Both are plain data; nothing here imports torch, so listing the catalog stays cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

#: The kinds of component, each filled by the hook ``kernel_<kind>s``.
KINDS = ("dataset", "transform", "model", "renderer", "analyzer", "metric", "trainer", "exporter", "callback")


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


@dataclass
class Report:
    """What an analyzer finds.

    ``values`` maps a name to a number or text; ``table`` is a list of rows (dicts or lists);
    ``figure`` is an optional PIL image; ``suggestions`` are workflow settings the user may adopt,
    as dotted paths (``{"dataset.transforms[1].mean": [0.5]}``) or plain names when the setting has
    no single place (``{"class_weights": [...]}``).
    """

    title: str
    values: dict = field(default_factory=dict)
    table: list | None = None
    figure: Any = None
    suggestions: dict = field(default_factory=dict)

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

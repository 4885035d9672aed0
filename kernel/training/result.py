"""What a trainer's ``fit`` returns."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Result:
    """The outcome of one run: status (completed, failed, interrupted), why, and its best and final metrics."""

    run_id: str
    status: str
    reason: str | None = None
    epochs_done: int = 0
    best: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)
    monitor: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"

"""The live line of ``kernel tune``: trials finished of those wanted, the best so far, how many were
pruned or failed. It reads the study itself, so the trials of other workers count too."""
from __future__ import annotations


class StudyProgress:
    def __init__(self, tuner):
        self.tuner = tuner

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        import sys

        from rich.console import Console

        # into a file or pipe: one line per trial, not folded at 80 columns
        console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200, highlight=False)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[status]}"), TimeElapsedColumn(), transient=False,
                                 console=console)
        self.progress.__enter__()
        self.task = self.progress.add_task(f"study {self.tuner.name}", total=self.tuner.trials, status="")
        self.update()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def update(self, study=None, frozen=None):
        from .results import best_trial, summary

        study = self.tuner.study
        counts = summary(study)
        best = best_trial(study)
        status = f"best {best.value:.4g} (trial {best.number})" if best is not None else "no trial completed yet"
        status += f" · {counts['pruned']} pruned"
        if counts["failed"]:
            status += f" · {counts['failed']} failed"
        self.progress.update(self.task, completed=min(counts["finished"], self.tuner.trials), status=status)
        if frozen is not None:
            self.progress.console.print(_line(self.tuner, frozen), markup=False)


def _line(tuner, frozen) -> str:
    from .space import decode

    values = ", ".join(f"{k}={decode(v)!r}" if not isinstance(v, float) else f"{k}={v:.4g}"
                       for k, v in frozen.params.items())
    state = frozen.state.name.lower()
    if state == "complete":
        outcome = f"{tuner.monitor} {frozen.value:.4g}"
    elif state == "pruned":
        outcome = f"pruned after epoch {frozen.last_step}" if frozen.last_step is not None else "pruned"
    else:
        outcome = "failed: " + str(frozen.user_attrs.get("kernel:failed", "its worker stopped"))[:120]
    return f"trial {frozen.number}: {outcome}  ({values})"

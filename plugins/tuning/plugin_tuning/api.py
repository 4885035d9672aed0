"""``Workflow.tune(...)``: the study from Python (hook ``kernel_methods``)."""
from __future__ import annotations


def tune(workflow, trials: int | None = None, timeout: float | None = None, study: str | None = None,
         storage: str | None = None, workspace=None, quiet: bool = True):
    """Run the workflow's study (its ``[tuning]`` table) and return the ``optuna.Study``.

    ``trials``, ``timeout``, ``study`` and ``storage`` override the table's settings, as the options of
    ``kernel tune`` do; ``workspace`` is where the runs go (default: ``KERNEL_HOME``, else ``./``).
    Calling it again continues the same study.
    """
    from .study import Tuner

    tuner = Tuner(workflow, trials=trials, timeout=timeout, study=study, storage=storage, workspace=workspace)
    tuner.resolve().open()
    if quiet:
        tuner.work()
    else:
        from .progress import StudyProgress

        with StudyProgress(tuner) as progress:
            tuner.work(on_trial=progress.update)
    tuner.finish_best()
    return tuner.study

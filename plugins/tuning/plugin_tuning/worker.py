"""One more worker of a study on this machine (``kernel tune --workers K`` starts K-1 of these).

``python -m plugin_tuning.worker SPEC``: SPEC is the JSON the parent wrote (the file, overrides,
study, storage, trials, timeout and this worker's seed offset). Its errors are one line on stderr.
"""
from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    import kernel

    from .command import quiet_optuna
    from .study import Tuner

    quiet_optuna()
    spec = json.loads(argv[0])
    try:
        workflow = kernel.Workflow.from_file(spec["file"])
        overrides = kernel.parse_overrides(spec["overrides"], spec["set_files"])
        if overrides:
            workflow = workflow.with_overrides(overrides)
        tuner = Tuner(workflow, trials=spec["trials"], timeout=spec["timeout"], study=spec["study"],
                      storage=spec["storage"], seed_offset=spec["seed_offset"],
                      catalog=kernel.get_catalog(tuple(spec["disabled"])))
        tuner.resolve().open()
        tuner.work()
    except kernel.KernelError as exc:
        print(f"kernel: error: tuning worker {spec['seed_offset']}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

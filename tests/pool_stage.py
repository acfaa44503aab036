"""A stage-like process for the process tests: its jobs run in a pool, under the stages' shell.

`python pool_stage.py <folder> <job> ...` runs each job as train and evaluate run
theirs (aebench.common.parallel in aebench.common.cli's `run_stage`). A job
`<seconds>` records `<folder>/<index>.pid` (its worker's pid) when it starts,
sleeps, then writes its output `<folder>/<index>.out`; a job `fail` fails at once
with a one-line error, as a diverged training does. The workers are forced to 2.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from aebench.common.cli import run_stage
from aebench.common.errors import AebenchError
from aebench.common.parallel import WORKERS_ENV, Jobs


def sleep_then_write(job: tuple[Path, int, str]) -> str:
    folder, index, spec = job
    (folder / f"{index}.pid").write_text(str(os.getpid()))
    if spec == "fail":
        raise AebenchError(f"job {index} failed")
    time.sleep(float(spec))
    (folder / f"{index}.out").write_text("done")
    return spec


def main() -> None:
    folder, specs = Path(sys.argv[1]), sys.argv[2:]
    os.environ[WORKERS_ENV] = "2"
    jobs = [(folder, index, spec) for index, spec in enumerate(specs)]
    with Jobs(sleep_then_write, jobs, device_type="cpu", name=lambda job: f"#{job[1]} ({job[2]} s)") as completed:
        (folder / "stage.pid").write_text(str(os.getpid()))
        for (_, index, _), _ in completed:
            print(f"job {index} done", file=sys.stderr, flush=True)


if __name__ == "__main__":
    run_stage(main)

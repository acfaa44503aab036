"""Running a stage's independent jobs (one per latent size and seed) side by side.

On the CPU every job computes with exactly one intra-op thread, and the jobs
run in `workers` processes at once (one per core by default). One thread per
job makes a model's numbers independent of how many cores the machine has
and of which job shared the machine with it: training a seed inside a stage
gives the same bytes as training it alone. It is also faster: two
single-threaded trainings of the study's MLP on two cores finish 1.4x sooner
than the same two trained one after the other with two threads each (small
matrices leave a second thread idle much of the time).

Workers compute only; the stage's own process does the bookkeeping (MLflow,
run-info) as each job completes, so workers never import MLflow, and the
stage opens its tracking store while the workers start. On a GPU the jobs run
one after another in the stage's own process. `AEBENCH_WORKERS` overrides the
number of worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")
WORKERS_ENV = "AEBENCH_WORKERS"
STOP_GRACE_S = 10.0  # a stopped worker has this long to unwind its job (temporaries) before it is killed


def worker_count(jobs: int, *, device_type: str) -> int:
    """How many processes run `jobs` jobs: $AEBENCH_WORKERS, else the CPU cores (1 on a GPU)."""
    configured = os.environ.get(WORKERS_ENV)
    if configured:
        return max(1, min(jobs, int(configured)))
    if device_type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(jobs, cores))


def one_thread() -> None:
    """Every job computes with one intra-op thread (see the module docstring for why)."""
    import torch

    torch.set_num_threads(1)


def _guarded(task: Callable[[Job], Result], job: Job) -> Result:
    """Run one job in a worker; a worker told to stop exits instead of taking the pool's next job."""
    try:
        return task(job)
    except KeyboardInterrupt:
        os._exit(130)  # the job has unwound (its temporaries are gone); nothing else must start


def _worker_init() -> None:
    one_thread()
    # Ctrl-C reaches the whole process group: the parent decides, and stops the workers with
    # SIGTERM, which unwinds a job like Ctrl-C would (its temporaries are removed).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


class Jobs(Generic[Job, Result]):
    """`task(job)` for every job; iterate to get (job, result) pairs as they complete.

    In a process pool the jobs start when the object is created, so the caller
    can do its own setup meanwhile; run in-process (one worker), each job runs
    when the iteration reaches it. The first failure stops the rest and is
    raised. Use as a context manager: leaving it early stops the workers.
    `task` must be a module-level function (it is pickled to the workers).
    """

    def __init__(self, task: Callable[[Job], Result], jobs: Sequence[Job], *, device_type: str) -> None:
        self._task, self._jobs, self._device_type = task, list(jobs), device_type
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Future, Job] = {}
        if worker_count(len(self._jobs), device_type=device_type) > 1:
            context = multiprocessing.get_context("spawn")  # no inherited OpenMP or MLflow state
            self._pool = ProcessPoolExecutor(
                max_workers=worker_count(len(self._jobs), device_type=device_type),
                mp_context=context, initializer=_worker_init,
            )
            self._futures = {self._pool.submit(_guarded, task, job): job for job in self._jobs}

    def __iter__(self) -> Iterator[tuple[Job, Result]]:
        if self._pool is None:
            if self._device_type == "cpu":
                one_thread()
            for job in self._jobs:
                yield job, self._task(job)
            return
        for future in as_completed(self._futures):
            yield self._futures[future], future.result()

    def __enter__(self) -> Jobs[Job, Result]:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._pool is None:
            return
        if error is not None:
            # No future is cancelled here: once a worker exits, the pool fails every pending future itself
            # (and cancelling them first makes its manager thread trip over them).
            workers = list(getattr(self._pool, "_processes", {}).values())
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()  # SIGTERM: the job unwinds like Ctrl-C, then the worker exits
            for worker in workers:
                worker.join(STOP_GRACE_S)
                if worker.is_alive():
                    worker.kill()
                    worker.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

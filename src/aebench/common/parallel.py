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

A worker never outlives its stage: the kernel kills it the moment the stage
process dies, however it dies (kill -9 included), so it cannot write an
output after DVC has reported the stage failed. A worker killed from outside
(the out-of-memory killer) ends the stage with one line naming its job.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Generic, TypeVar

from aebench.common.errors import AebenchError

Job = TypeVar("Job")
Result = TypeVar("Result")
WORKERS_ENV = "AEBENCH_WORKERS"
STOP_GRACE_S = 10.0  # a stopped worker has this long to unwind its job (temporaries) before it is killed
STOPPED_EXIT = 128 + signal.SIGTERM  # how a worker told to stop exits, idle or in a job
# Read by OpenBLAS, OpenMP and MKL when they load: set before a worker imports numpy, scipy or torch.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_POLL_S = 0.5  # where there is no parent-death signal, how often a worker checks its parent
WORKER_WATCH_S = 0.5  # how often the stage checks its workers while it waits for a job


class WorkerLost(AebenchError):
    """A worker process died without finishing its job (killed from outside, or crashed)."""


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
    """Every library in this process computes with one thread (see the module docstring for why).

    torch if it is loaded, and through threadpoolctl the BLAS and OpenMP libraries already loaded
    (numpy's and scipy's OpenBLAS, sklearn's and torch's OpenMP); the variables hold those loaded
    later (torch included: a stage that only draws never imports it).
    """
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    from threadpoolctl import threadpool_limits

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    threadpool_limits(1)


@contextlib.contextmanager
def _one_thread_environment() -> Iterator[None]:
    """The thread variables set while workers are spawned: a spawned worker imports the stage script,
    and with it numpy and torch, before its initializer runs."""
    before = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- in a worker ----------------------------------------------------------------

_in_job = False  # whether this worker is running a job (SIGTERM unwinds it) or waits for one (SIGTERM ends it)
_started: Sequence[int] = ()  # shared with the stage: the pid of the worker that took each job


def _guarded(task: Callable[[Job], Result], index: int, job: Job) -> Result:
    """Run one job in a worker; a worker told to stop exits instead of taking the pool's next job."""
    global _in_job
    _started[index] = os.getpid()  # shared memory, written at once: still there if this worker is killed
    _in_job = True
    try:
        return task(job)
    except KeyboardInterrupt:
        os._exit(STOPPED_EXIT)  # the job has unwound (its temporaries are gone); nothing else must start
    finally:
        _in_job = False


def _stop(signum, frame) -> None:
    """SIGTERM from the stage: a job unwinds like Ctrl-C would (its temporaries are removed); an idle
    worker, blocked in the pool's queue, just ends (unwinding it would only print a traceback)."""
    if _in_job:
        raise KeyboardInterrupt
    os._exit(STOPPED_EXIT)


def _die_with(parent: int) -> None:
    """End this worker the moment `parent` (the stage process) dies, however it dies.

    On Linux the kernel sends SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG; it follows the
    thread that spawned the worker, so the pool is created in the stage's main thread). A parent that
    died before the prctl sends nothing: hence the check after it. Elsewhere a thread polls the parent.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(PARENT_POLL_S)
            os._exit(STOPPED_EXIT)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent:
        os._exit(STOPPED_EXIT)


def _named_dying_with(name: str, parent: int) -> str:
    _die_with(parent)
    return name


class _DyingName(str):
    """A worker's name that, unpickled, makes the worker die with `parent`.

    A spawned worker unpickles its name first thing (with its preparation data), before it imports the
    stage script (seconds of numpy and torch); its initializer runs only after. So a stage killed while
    its workers start leaves none running on for those seconds.
    """

    parent: int

    def __reduce__(self):
        return _named_dying_with, (str(self), self.parent)


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._name = _DyingName(self._name)
        self._name.parent = os.getpid()


class _WorkerContext(multiprocessing.context.SpawnContext):
    """Spawn (no inherited OpenMP or MLflow state), with workers that die with the stage from their start."""

    Process = _WorkerProcess


def _worker_init(parent: int, started: Sequence[int]) -> None:
    global _started
    _die_with(parent)  # again: a worker started some other way than through _WorkerContext dies with it too
    _started = started
    one_thread()
    # Ctrl-C reaches the whole process group: the parent decides, and stops the workers with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)


# --- in the stage ---------------------------------------------------------------


def _death(exitcode: int) -> str:
    """Why a worker ended, from its exit code, with the likely cause when it was killed."""
    if exitcode >= 0:
        return f"exited with code {exitcode}"
    number = -exitcode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    cause = {
        signal.SIGKILL: ", possibly by the out-of-memory killer (see `dmesg`) or by hand",
        signal.SIGSEGV: ", a crash in native code",
        signal.SIGBUS: ", a crash in native code",
    }.get(number, "")
    return f"was killed by signal {number} ({name}){cause}"


class Jobs(Generic[Job, Result]):
    """`task(job)` for every job; iterate to get (job, result) pairs as they complete.

    In a process pool the jobs start when the object is created, so the caller
    can do its own setup meanwhile; run in-process (one worker), each job runs
    when the iteration reaches it. The first failure stops the rest and is
    raised; a worker that dies in a job raises `WorkerLost`, whose message
    names the job by `name(job)`. Use as a context manager: leaving it early
    stops the workers. `task` must be a module-level function (it is pickled
    to the workers).
    """

    def __init__(
        self, task: Callable[[Job], Result], jobs: Sequence[Job], *, device_type: str,
        name: Callable[[Job], str] = str,
    ) -> None:
        self._task, self._jobs, self._device_type, self._name = task, list(jobs), device_type, name
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Future, int] = {}
        self._workers: list[multiprocessing.process.BaseProcess] = []
        if worker_count(len(self._jobs), device_type=device_type) > 1:
            context = _WorkerContext()
            self._started = context.RawArray("q", len(self._jobs))
            with _one_thread_environment():  # the workers are spawned by submit
                self._pool = ProcessPoolExecutor(
                    max_workers=worker_count(len(self._jobs), device_type=device_type), mp_context=context,
                    initializer=_worker_init, initargs=(os.getpid(), self._started),
                )
                self._futures = {
                    self._pool.submit(_guarded, task, index, job): index for index, job in enumerate(self._jobs)
                }
            self._workers = list(self._pool._processes.values())

    def __iter__(self) -> Iterator[tuple[Job, Result]]:
        if self._pool is None:
            if self._device_type == "cpu":
                one_thread()
            for job in self._jobs:
                yield job, self._task(job)
            return
        pending = set(self._futures)
        while pending:
            done, pending = wait(pending, timeout=WORKER_WATCH_S, return_when=FIRST_COMPLETED)
            # The stage watches its workers itself: Python 3.11's pool can miss a worker's death (it wakes its
            # watcher before it spawns the worker, so the watcher may wait without that worker's sentinel).
            # No worker exits while jobs are pending, so any exit is a lost worker.
            if not done and any(worker.exitcode is not None for worker in self._workers):
                raise self._lost()
            for future in sorted(done, key=self._futures.__getitem__):
                try:
                    result = future.result()
                except BrokenProcessPool:
                    raise self._lost() from None
                yield self._jobs[self._futures[future]], result

    def _lost(self) -> WorkerLost:
        """The error for a pool broken by a worker's death: which job it ran, and how it died."""
        deadline = time.monotonic() + STOP_GRACE_S
        dead = [worker for worker in self._workers if worker.exitcode is not None]
        while not dead and time.monotonic() < deadline:
            time.sleep(0.05)
            dead = [worker for worker in self._workers if worker.exitcode is not None]
        if not dead:
            return WorkerLost("a worker process died; the stage stopped")
        # The pool then stops the other workers (they exit STOPPED_EXIT): the one that died otherwise is the cause.
        worker = min(dead, key=lambda worker: (worker.exitcode == STOPPED_EXIT, worker.exitcode >= 0))
        unfinished = [index for future, index in self._futures.items() if not future.done() or future.exception()]
        running = [index for index in unfinished if self._started[index] == worker.pid]
        what = "a worker process running no job"
        if running:  # the one it took last: it had finished the others
            what = f"job {self._name(self._jobs[max(running)])}: its worker process"
        return WorkerLost(f"{what} (pid {worker.pid}) {_death(worker.exitcode)}; the stage stopped")

    def __enter__(self) -> Jobs[Job, Result]:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._pool is None:
            return
        if error is not None:
            # No future is cancelled here: once a worker exits, the pool fails every pending future itself
            # (and cancelling them first makes its manager thread trip over them).
            for worker in self._workers:
                if worker.is_alive():
                    worker.terminate()  # SIGTERM: a job unwinds like Ctrl-C, then the worker exits
            for worker in self._workers:
                worker.join(STOP_GRACE_S)
                if worker.is_alive():
                    worker.kill()
                    worker.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

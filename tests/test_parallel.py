"""Independent jobs side by side: a job's result does not depend on where it ran; failures surface."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import failing_task, threads_task, train_steps_task

from aebench.common.parallel import THREAD_VARIABLES, WORKERS_ENV, Jobs, worker_count


def test_a_job_in_a_pool_of_two_gives_the_bytes_it_gives_alone_in_process(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "2")
    with Jobs(train_steps_task, [0, 1, 2], device_type="cpu") as jobs:
        pooled = dict(jobs)
    assert sorted(pooled) == [0, 1, 2]
    pids = {pid for pid, _ in pooled.values()}
    assert os.getpid() not in pids and len(pids) <= 2  # they ran in (at most two) worker processes
    assert torch.get_num_threads() == 1  # conftest's setting, as a worker's: one thread per job
    for seed in (0, 1, 2):
        _, alone = train_steps_task(seed)
        assert pooled[seed][1] == alone, f"seed {seed}"
    assert pooled[0][1] != pooled[1][1]  # two seeds, two models: the comparison above can fail


def test_one_worker_runs_the_jobs_in_process_as_the_iteration_reaches_them(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "1")
    ran = []
    jobs = Jobs(lambda job: ran.append(job) or os.getpid(), [0, 1, 2], device_type="cpu")
    assert ran == []  # nothing runs before it is asked for
    iterator = iter(jobs)
    assert next(iterator) == (0, os.getpid())  # in this very process
    assert ran == [0]
    assert [job for job, _ in iterator] == [1, 2]


def test_the_first_failure_is_raised_in_process(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "1")
    done = []
    with pytest.raises(ValueError, match=r"^job -1 failed$"):
        with Jobs(failing_task, [0, -1, 0], device_type="cpu") as jobs:
            for _, result in jobs:
                done.append(result)
    assert done == [0]  # the third job never ran


def test_the_first_failure_is_raised_from_a_pool_and_stops_the_other_jobs(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "2")
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"^job -1 failed$"):
        with Jobs(failing_task, [-1, 60, 60], device_type="cpu") as jobs:
            list(jobs)
    assert time.monotonic() - started < 30  # the running job was interrupted, the queued one cancelled


def test_worker_count(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    cores = len(os.sched_getaffinity(0))
    assert worker_count(100, device_type="cpu") == cores
    assert worker_count(1, device_type="cpu") == 1
    assert worker_count(8, device_type="cuda") == 1  # a GPU's jobs run one after another
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert worker_count(8, device_type="cpu") == 3
    assert worker_count(8, device_type="cuda") == 3  # the override wins
    assert worker_count(2, device_type="cpu") == 2  # never more workers than jobs
    monkeypatch.setenv(WORKERS_ENV, "0")
    assert worker_count(8, device_type="cpu") == 1


# --- on real processes: a stage-like parent (pool_stage.py) with a pool of two workers ------------------

POOL_STAGE = Path(__file__).with_name("pool_stage.py")


def start_pool_stage(folder: Path, *jobs: str) -> subprocess.Popen:
    env = {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}
    return subprocess.Popen([sys.executable, str(POOL_STAGE), str(folder), *jobs], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def alive(pid: int) -> bool:
    """Running (an exited process left unreaped, a zombie, runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> set[int]:
    children: dict[int, set[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), set()).add(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def started_workers(folder: Path, jobs: int) -> list[int]:
    """The pids of the workers running jobs 0 .. jobs-1, once each has started its job."""
    pids = [folder / f"{index}.pid" for index in range(jobs)]
    assert wait_for(lambda: all(path.is_file() and path.read_text() for path in pids), 60), "the jobs never started"
    return [int(path.read_text()) for path in pids]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_kill_9_of_the_stage_ends_its_workers_at_once_and_they_write_nothing_after(tmp_path):
    stage = start_pool_stage(tmp_path, "4", "4")
    workers = started_workers(tmp_path, 2)
    assert wait_for(lambda: (tmp_path / "stage.pid").is_file(), 30)
    family = descendants(stage.pid)  # the two workers and multiprocessing's resource tracker
    assert set(workers) <= family and len(family) >= 3
    killed = time.monotonic()
    stage.kill()
    stage.wait()
    assert wait_for(lambda: not any(alive(pid) for pid in family), 5), [p for p in family if alive(p)]
    time.sleep(max(0.0, 5 - (time.monotonic() - killed)))  # past the moment the jobs would have written
    assert sorted(path.name for path in tmp_path.glob("*.out")) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_killed_from_outside_ends_the_stage_in_one_line_naming_its_job(tmp_path):
    stage = start_pool_stage(tmp_path, "600", "600")  # far longer than the stage needs to notice the kill
    victim = started_workers(tmp_path, 2)[1]
    family = descendants(stage.pid)
    os.kill(victim, signal.SIGKILL)  # as the out-of-memory killer does
    _, stderr = stage.communicate(timeout=120)  # generous: a loaded 2-core machine starts workers slowly
    assert stage.returncode == 1
    assert stderr.splitlines() == [
        f"error: job #1 (600 s): its worker process (pid {victim}) was killed by signal 9 (SIGKILL), possibly by the "
        "out-of-memory killer (see `dmesg`) or by hand; the stage stopped"
    ]
    assert wait_for(lambda: not any(alive(pid) for pid in family), 5)
    assert list(tmp_path.glob("*.out")) == []


def test_a_failed_job_stops_the_idle_workers_without_a_traceback(tmp_path):
    # Job 0 ends at once and leaves its worker idle; job 1 fails a moment later: the stage stops the pool.
    stage = start_pool_stage(tmp_path, "0", "fail")
    _, stderr = stage.communicate(timeout=120)
    assert stage.returncode == 1
    lines = [line for line in stderr.splitlines() if line != "job 0 done"]
    assert lines == ["error: job 1 failed"]


def test_every_library_in_a_worker_computes_with_one_thread(monkeypatch):
    for name in THREAD_VARIABLES:  # the pool must hold them itself, not inherit them
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(WORKERS_ENV, "2")
    with Jobs(threads_task, [0, 1], device_type="cpu") as jobs:
        pools = [pool for _, (_, job_pools, _) in jobs for pool in job_pools]
    libraries = {Path(library).name.split("-")[0].split(".")[0] for library, _ in pools}
    assert {"libscipy_openblas64_", "libscipy_openblas", "libgomp"} <= libraries  # numpy's, scipy's BLAS, OpenMP
    assert [library for library, threads in pools if threads != 1] == []


@pytest.mark.skipif(shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_a_jobs_bytes_do_not_depend_on_the_machines_core_count(tmp_path):
    # One core: the jobs run in the stage's process; two: in a pool of two workers.
    script = (
        "import json, os, sys; sys.path.insert(0, sys.argv[1])\n"
        "from helpers import threads_task\n"
        "from aebench.common.parallel import Jobs\n"
        "with Jobs(threads_task, [0, 1], device_type='cpu') as jobs:\n"
        "    done = {seed: (pid != os.getpid(), data.hex()) for seed, (pid, _, data) in jobs}\n"
        "print(json.dumps(done))\n"
    )
    env = {name: value for name, value in os.environ.items() if name not in (*THREAD_VARIABLES, WORKERS_ENV)}
    runs = {}
    for cores in ("0", "0,1"):
        done = subprocess.run(["taskset", "-c", cores, sys.executable, "-c", script, str(Path(__file__).parent)],
                              env=env, cwd=tmp_path, capture_output=True, text=True, check=True, timeout=300)
        runs[cores] = json.loads(done.stdout)
    assert [in_worker for in_worker, _ in runs["0"].values()] == [False, False]
    assert [in_worker for in_worker, _ in runs["0,1"].values()] == [True, True]
    assert runs["0"]["0"][1] != runs["0"]["1"][1]  # two seeds, two results: the comparison can fail
    for seed in ("0", "1"):
        assert runs["0"][seed][1] == runs["0,1"][seed][1], f"seed {seed}"

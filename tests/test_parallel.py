"""Independent jobs side by side: a job's result does not depend on where it ran; failures surface."""

from __future__ import annotations

import os
import time

import pytest
import torch
from helpers import failing_task, train_steps_task

from aebench.common.parallel import WORKERS_ENV, Jobs, worker_count


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

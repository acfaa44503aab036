"""The local cluster harness's own guarantee: a process left running in its folder is killed and named.

The harness itself (tests/local_cluster.py: munge + a one-node SLURM,
PostgreSQL and an `mlflow server` on 127.0.0.1) is exercised end to end by
tests/test_cluster.py, which runs the real beta / gamma sweep through
cluster/sweep.sbatch and checks that no daemon is left behind. (That test
replaced a 2-point sweep of a dummy DVC project here: it covers all it did,
`-S`/`--set-param` grid lines and SWEEP_TARGETS included.)
"""

from __future__ import annotations

import signal
import subprocess

import pytest
from local_cluster import no_leftover_processes


def test_leftover_check_kills_and_names_a_process_left_running(tmp_path):
    with pytest.raises(AssertionError, match=r"processes left behind \(now killed\):\n  pid \d+: sleep sleep 60"):
        with no_leftover_processes(tmp_path, grace_s=0.5):
            left = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    assert left.wait(timeout=5) == -signal.SIGKILL

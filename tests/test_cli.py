"""The stage shell: one-line errors, exit codes, stale temporaries, and ending with the `dvc` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aebench.common.cli import dvc_ancestors, run_stage
from aebench.common.errors import ConfigError

pytestmark = pytest.mark.usefixtures("restore_sigterm")


@pytest.fixture
def restore_sigterm():
    """run_stage turns SIGTERM into KeyboardInterrupt for the whole process: give pytest its handler back."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def exit_of(main, capsys) -> tuple[int | None, str]:
    with pytest.raises(SystemExit) as caught:
        run_stage(main)
    return caught.value.code, capsys.readouterr().err


def test_an_aebench_error_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def main():
        raise ConfigError("train.epochs: must be >= 1, got 0")

    assert exit_of(main, capsys) == (1, "error: train.epochs: must be >= 1, got 0\n")


def test_an_os_error_names_its_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "data" / "mnist.npz"

    def main():
        missing.read_bytes()

    assert exit_of(main, capsys) == (1, f"error: {missing}: No such file or directory\n")

    def disk_full():
        raise OSError(28, "No space left on device")

    assert exit_of(disk_full, capsys) == (1, "error: output: No space left on device\n")


def test_ctrl_c_exits_130(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def main():
        raise KeyboardInterrupt

    assert exit_of(main, capsys) == (130, "interrupted\n")


def test_a_programming_error_keeps_its_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def main():
        raise TypeError("a bug")

    with pytest.raises(TypeError, match="a bug"):
        run_stage(main)


def test_success_returns_and_sigterm_becomes_ctrl_c(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    assert run_stage(lambda: seen.append("ran")) is None
    assert seen == ["ran"]
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal arrives before this ends


def test_a_stage_starting_in_a_workspace_clears_a_killed_stages_temporaries(tmp_path, monkeypatch, capsys):
    (tmp_path / ".dvc").mkdir()
    temporaries = tmp_path / ".cache" / "tmp"
    temporaries.mkdir(parents=True)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(finished.stdout)
    stale = temporaries / f".seed-0.pt.{dead}.x1.tmp"
    stale.write_bytes(b"half")
    live = temporaries / f".seed-1.pt.{os.getpid()}.x2.tmp"
    live.write_bytes(b"being written")
    monkeypatch.chdir(tmp_path)
    seen = []
    run_stage(lambda: seen.append(sorted(p.name for p in temporaries.iterdir())))
    assert seen == [[live.name]]  # gone before the stage's own work began


# --- ending with the dvc process -------------------------------------------------------------


def test_outside_dvc_there_is_no_dvc_ancestor():
    assert dvc_ancestors() == []


CHILD = """\
import json, os, sys, time
from aebench.common.cli import dvc_ancestors, run_stage

def main():
    print(json.dumps({"pid": os.getpid(), "ancestors": dvc_ancestors()}), flush=True)
    if sys.argv[1] == "wait":
        for _ in range(600):
            time.sleep(0.1)

run_stage(main)
"""


def fake_dvc(folder: Path, *, inner_shell: bool) -> Path:
    """`dvc`: a shell script (so its process is named dvc) that runs the python child, or `sh inner.sh` -> child.

    No shell `exec`s its last command (a command follows it), so the chain is dvc [-> sh] -> python.
    """
    (folder / "child.py").write_text(CHILD)
    run_child = f'"{sys.executable}" "{folder / "child.py"}" "$1"'
    (folder / "inner.sh").write_text(f"{run_child}\nstatus=$?\nexit $status\n")
    command = f'sh "{folder / "inner.sh"}" "$1"' if inner_shell else run_child
    dvc = folder / "dvc"
    dvc.write_text(f"#!/bin/sh\n{command}\nstatus=$?\nexit $status\n")
    dvc.chmod(0o755)
    return dvc


def test_dvc_ancestors_walks_up_to_the_dvc_process(tmp_path):
    dvc = fake_dvc(tmp_path, inner_shell=True)
    process = subprocess.Popen([str(dvc), "report"], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    chain = [pid for pid, _ in json.loads(out)["ancestors"]]
    assert len(chain) == 2 and chain[-1] == process.pid  # the inner shell, then dvc itself


HARNESS = """\
import ctypes, json, os, signal, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER: orphans are reparented to us, so we can wait
dvc = subprocess.Popen([sys.argv[1], "wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
report = json.loads(dvc.stdout.readline())
child = report["pid"]
assert [pid for pid, _ in report["ancestors"]] == [dvc.pid], report
os.kill(dvc.pid, signal.SIGKILL)
dvc.wait()
killed = time.monotonic()
_, status = os.waitpid(child, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "seconds": time.monotonic() - killed,
                  "stderr": dvc.stderr.read()}))
"""


def test_the_stage_ends_when_its_dvc_process_is_killed(tmp_path):
    dvc = fake_dvc(tmp_path, inner_shell=False)
    (tmp_path / "harness.py").write_text(HARNESS)
    result = subprocess.run([sys.executable, str(tmp_path / "harness.py"), str(dvc)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["code"] == 130
    assert report["seconds"] < 5  # the watchdog looks every 0.5 s; the child would otherwise wait 60 s
    assert report["stderr"].splitlines() == [
        "error: the dvc process that started this stage is gone; stopping", "interrupted"]

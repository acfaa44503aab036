"""The thin shell every stage script runs in.

- A stage's `main` raises `AebenchError` for bad input, and an unwritable or
  full disk raises OSError: either is printed as one line on stderr (naming
  the file or key) with exit code 1, instead of a traceback.
- Ctrl-C and SIGTERM unwind the stage as KeyboardInterrupt (MLflow runs close
  as KILLED, temporaries are removed) and exit 130.
- Under `dvc repro`, the stage ends when the `dvc` process that started it
  does: DVC does not pass a SIGTERM on to the stage, which would otherwise
  run on as an orphan whose result DVC never records.
- Temporaries that a killed stage left in the workspace's `.cache/tmp` are
  removed when the next stage starts.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from aebench.common.errors import AebenchError
from aebench.common.files import remove_stale_temporaries, workspace_root

WATCH_INTERVAL_S = 0.5


def run_stage(main: Callable[[], None]) -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    watch_dvc_parent()
    root = workspace_root(Path.cwd().resolve())
    if root is not None:
        remove_stale_temporaries(root / ".cache" / "tmp")
    try:
        main()
    except AebenchError as err:
        fail(str(err))
    except OSError as err:
        where = err.filename if err.filename is not None else "output"
        fail(f"{where}: {err.strerror or err}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


# --- ending with the dvc process ------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/<pid>/stat): a pid is reused, this is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _is_dvc(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    names = [os.path.basename(arg.decode(errors="replace")) for arg in argv[:2]]
    return "dvc" in names


def dvc_ancestors(pid: int | None = None) -> list[tuple[int, str]]:
    """(pid, start time) of every ancestor up to the nearest `dvc` process; [] when not run by dvc."""
    chain: list[tuple[int, str]] = []
    current = _parent(pid or os.getpid())
    while current and current > 1:
        started = _start_time(current)
        if started is None:
            return []
        chain.append((current, started))
        if _is_dvc(current):
            return chain
        current = _parent(current)
    return []


def watch_dvc_parent(interval: float = WATCH_INTERVAL_S) -> None:
    """When run by dvc, SIGTERM ourselves (so we unwind cleanly) once the dvc process or a link to it dies."""
    chain = dvc_ancestors()
    if not chain:
        return

    def watch() -> None:
        while all(_start_time(pid) == started for pid, started in chain):
            time.sleep(interval)
        print("error: the dvc process that started this stage is gone; stopping", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="dvc-watchdog", daemon=True).start()

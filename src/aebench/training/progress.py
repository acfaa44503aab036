"""Progress of long runs: per job (one model's epochs) and per stage (its jobs), with the time left.

A job's progress is tqdm bars on a terminal (the epoch bar shows its own estimate), plain periodic
lines otherwise (CI, DVC logs), each finished epoch with an estimate of the job's time left. A
stage prints one line per finished job: how many are done and an estimate of the stage's time left.
Estimates assume the remaining work goes at the pace measured so far (epochs, or jobs with the
workers running side by side).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm


class BarProgress:
    """An outer bar over epochs and an inner bar over the steps of the current epoch."""

    def __init__(self, *, epochs: int, first_epoch: int, label: str, stream: TextIO) -> None:
        self._stream = stream
        self._epochs = tqdm(total=epochs, initial=first_epoch, desc=label, unit="epoch", file=stream, position=0)
        self._steps: tqdm | None = None

    def start_epoch(self, epoch: int, steps: int) -> None:
        self._steps = tqdm(total=steps, desc=f"epoch {epoch}", unit="step", leave=False, file=self._stream, position=1)

    def step(self, loss: float) -> None:
        self._steps.update()
        self._steps.set_postfix(loss=f"{loss:.2f}", refresh=False)

    def end_epoch(self, epoch: int, row: dict[str, float], *, seconds: float) -> None:
        self._steps.close()
        self._epochs.update()
        self._epochs.set_postfix(train=f"{row['train_loss']:.2f}", val=f"{row['val_loss']:.2f}")

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()
        self._epochs.close()


class LineProgress:
    """One line every `every` seconds within an epoch, and one per finished epoch."""

    def __init__(self, *, epochs: int, first_epoch: int, label: str, stream: TextIO, every: float = 30.0) -> None:
        self._epochs, self._label, self._stream, self._every = epochs, label, stream, every
        self._epoch = first_epoch
        self._steps = self._done = 0
        self._last = time.monotonic()
        self._epoch_seconds: list[float] = []  # epochs trained in this process (a resume's earlier ones are unknown)

    def start_epoch(self, epoch: int, steps: int) -> None:
        self._epoch, self._steps, self._done = epoch, steps, 0
        self._last = time.monotonic()

    def step(self, loss: float) -> None:
        self._done += 1
        if time.monotonic() - self._last >= self._every:
            self._last = time.monotonic()
            self._print(f"epoch {self._epoch}/{self._epochs} step {self._done}/{self._steps} loss {loss:.2f}")

    def end_epoch(self, epoch: int, row: dict[str, float], *, seconds: float) -> None:
        self._epoch_seconds.append(seconds)
        left = time_left(sum(self._epoch_seconds), done=len(self._epoch_seconds),
                         remaining=self._epochs - epoch)
        self._print(
            f"epoch {epoch}/{self._epochs} train_loss {row['train_loss']:.2f} "
            f"val_loss {row['val_loss']:.2f} ({seconds:.1f} s, ~{duration(left)} left)"
        )

    def close(self) -> None:
        self._stream.flush()

    def _print(self, message: str) -> None:
        print(f"{self._label}: {message}", file=self._stream, flush=True)


def make_progress(*, epochs: int, first_epoch: int, label: str, stream: TextIO | None = None):
    """Bars when `stream` (default stderr) is a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    kind = BarProgress if stream.isatty() else LineProgress
    return kind(epochs=epochs, first_epoch=first_epoch, label=label, stream=stream)


class StageProgress:
    """One line per finished job of a stage: `<label>: 3/12 done (<job>), 4 min elapsed, ~12 min left`."""

    def __init__(self, *, total: int, label: str, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._total, self._label, self._stream, self._clock = total, label, stream or sys.stderr, clock
        self._started = clock()
        self._done = 0

    def job_done(self, name: str) -> None:
        self._done += 1
        elapsed = self._clock() - self._started
        left = time_left(elapsed, done=self._done, remaining=self._total - self._done)
        print(f"{self._label}: {self._done}/{self._total} done ({name}), {duration(elapsed)} elapsed, "
              f"~{duration(left)} left", file=self._stream, flush=True)


def time_left(spent: float, *, done: int, remaining: int) -> float:
    """Seconds for `remaining` more units at the pace of the `done` ones that took `spent` seconds."""
    return spent / done * remaining if done else 0.0


def duration(seconds: float) -> str:
    """A short human duration: `42 s`, `7 min`, `1 h 05 min`."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"

"""Training progress: tqdm bars on a terminal, plain periodic lines otherwise (CI, DVC logs)."""

from __future__ import annotations

import sys
import time
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

    def start_epoch(self, epoch: int, steps: int) -> None:
        self._epoch, self._steps, self._done = epoch, steps, 0
        self._last = time.monotonic()

    def step(self, loss: float) -> None:
        self._done += 1
        if time.monotonic() - self._last >= self._every:
            self._last = time.monotonic()
            self._print(f"epoch {self._epoch}/{self._epochs} step {self._done}/{self._steps} loss {loss:.2f}")

    def end_epoch(self, epoch: int, row: dict[str, float], *, seconds: float) -> None:
        self._print(
            f"epoch {epoch}/{self._epochs} train_loss {row['train_loss']:.2f} "
            f"val_loss {row['val_loss']:.2f} ({seconds:.1f} s)"
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

"""The thin shell every stage script runs in.

A stage's `main` raises `AebenchError` for bad input; this prints the message as
one line on stderr and exits 1, instead of a traceback. Ctrl-C exits 130.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from aebench.common.errors import AebenchError


def run_stage(main: Callable[[], None]) -> None:
    try:
        main()
    except AebenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)

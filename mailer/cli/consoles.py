"""The two consoles every command writes through: stdout's for results, stderr's for the rest."""

from __future__ import annotations

import contextlib
import os
import sys

from rich.console import Console


class _Console(Console):
    """rich's Console, but a reader gone away (`| head -1`, `2>&1 | head`) stops no work: what
    is printed after goes nowhere, and the command, once done, ends 141 (as the shell reports a
    closed pipe) where rich would exit 1 at once, halfway through a send."""

    broken = False  # its reader went away while the command ran

    def on_broken_pipe(self) -> None:
        self.quiet = self.broken = True
        if not self.stderr:  # as rich does: the interpreter's last flush finds nothing to write
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)


def reader_went_away() -> bool:
    """Whether stdout's reader stopped reading while the command ran."""
    return out.broken


# Not on a terminal (pipes, CI), tables get room instead of being squeezed into 80 columns.
WIDTH = None if sys.stdout is not None and sys.stdout.isatty() else 240  # None: closed, >&-
out = _Console(highlight=False, soft_wrap=True, width=WIDTH)
err = _Console(stderr=True, highlight=False, soft_wrap=True, width=WIDTH)

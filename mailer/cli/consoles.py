"""The two consoles every command writes through: stdout's for results, stderr's for the rest."""

from __future__ import annotations

import sys

from rich.console import Console


class _Console(Console):
    """rich's Console, but a reader gone away (`| head -1`) is a BrokenPipeError for the
    command's edge to end in 141, as the shell reports it, where rich would exit 1: a script
    then took a send that went out whole for a failure."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


# Not on a terminal (pipes, CI), tables get room instead of being squeezed into 80 columns.
WIDTH = None if sys.stdout is not None and sys.stdout.isatty() else 240  # None: closed, >&-
out = _Console(highlight=False, soft_wrap=True, width=WIDTH)
err = _Console(stderr=True, highlight=False, soft_wrap=True, width=WIDTH)

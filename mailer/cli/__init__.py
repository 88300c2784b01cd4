"""The ``mailer`` command line: one module per command group; the root app is in ``common``."""

from __future__ import annotations

import gc

from mailer.cli import (
    backup,
    bounces,
    campaigns,
    db,
    dkim,
    lists,
    readers,
    schedule,
    send,
    serve,
    subscribers,
)
from mailer.cli.common import app

app.add_typer(lists.app, name="lists")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(campaigns.app, name="campaigns")
app.add_typer(dkim.app, name="dkim")
app.add_typer(db.app, name="db")
app.add_typer(bounces.app, name="bounces")


def main() -> None:
    """The ``mailer`` command. Once it is done, what is left is freed by the exit itself: no
    last garbage collection walks every object first (0.1 s after a long send)."""
    try:
        app(prog_name="mailer")
    finally:
        gc.freeze()


__all__ = ["app", "backup", "main", "readers", "schedule", "send", "serve"]

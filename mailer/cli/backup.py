"""CLI command backup: copy a running workspace into a new folder, ready to restore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailer.cli.common import app, no_workspace, out, settings
from mailer.db.backup import backup as backup_workspace
from mailer.db.database import NoDatabaseError
from mailer.errors import InputError


@app.command(epilog="Example: mailer backup /srv/backups/mailer-2026-11-27")
def backup(
    destination: Annotated[
        Path, typer.Argument(metavar="DEST", help="A new folder (or an empty one) to write.")
    ],
) -> None:
    """Copy the database, mailer.toml, .mailer-secret, the DKIM key, templates/ and media/
    into DEST, consistently even while send or serve run. Restore: use DEST as the workspace."""
    current = settings()
    try:
        done = backup_workspace(current, destination)
    except NoDatabaseError as error:  # before DEST is made: a folder with no workspace
        raise InputError(no_workspace(error)) from None
    for written in done:
        out.print(f"wrote {written.path} ({written.what})", markup=False)
    if current.database.url:
        out.print("the database is PostgreSQL's: back it up on its server, with pg_dump",
                  markup=False)  # fmt: skip
    out.print(f"restore: copy {destination} to a new workspace folder (or use -w {destination})",
              markup=False)  # fmt: skip

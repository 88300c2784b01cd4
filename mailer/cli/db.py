"""CLI commands for the store itself: db migrate-to (a SQLite workspace into PostgreSQL)."""

from __future__ import annotations

from typing import Annotated

import typer

from mailer.cli.common import Typer, no_workspace, out, settings
from mailer.config.checks import postgres_url
from mailer.db.database import NoDatabaseError
from mailer.db.opening import postgres
from mailer.db.sqlite import SqliteDatabase
from mailer.errors import InputError

app = Typer(help="The database: move a workspace to PostgreSQL.", no_args_is_help=True)


@app.command("migrate-to", epilog="Example: mailer db migrate-to postgresql://mailer@db/news")
def db_migrate_to(
    url: Annotated[
        str, typer.Argument(metavar="URL", help="An empty PostgreSQL database (no password).")
    ],
) -> None:
    """Copy this workspace's SQLite database into PostgreSQL (COPY, in one transaction), check
    the rows of every table, and print them. Run again, it changes nothing."""
    problem = postgres_url(url)
    if problem is not None:
        raise InputError(f"URL {problem}")
    current = settings()
    if current.database.url:
        raise InputError("this workspace's database is PostgreSQL's already ([database] url)")
    postgres()  # psycopg is there, or one line says how to get it
    from mailer.db.moving import migrate_to  # it needs psycopg

    timeout = current.database.busy_timeout
    try:
        source = SqliteDatabase(current.database_path, timeout, create=False)
    except NoDatabaseError as error:
        raise InputError(no_workspace(error)) from None
    with source:
        moved = migrate_to(source, url)
    verb = "copied into" if moved.copied else "already in, nothing copied:"
    out.print(f"{verb} {moved.target}", markup=False)
    width = max(map(len, moved.counts), default=0)
    for table, count in moved.counts.items():
        out.print(f"  {table:<{width}}  {count} rows, the same in both", markup=False)
    for table, count in moved.replaced.items():
        out.print(f"  {table}: {count} NUL characters replaced by U+FFFD (PostgreSQL cannot"
                  " store them)", markup=False)  # fmt: skip
    if moved.copied:
        out.print(f'use it: set [database] url = "{moved.target}" in mailer.toml', markup=False)

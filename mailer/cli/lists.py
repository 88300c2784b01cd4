"""CLI commands for mailing lists: lists create, set, ls, show, rm."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mailer.audience import lists
from mailer.cli.common import Typer, confirm, err, open_db, out
from mailer.cli.output import LIST_COUNTS, list_record, local, plural, rows, write_json
from mailer.cli.welcome import clear_welcome, set_welcome
from mailer.errors import InputError
from mailer.models import ListSummary
from mailer.send.welcome import welcome_of, welcomes

app = Typer(help="Create, list and remove mailing lists.", no_args_is_help=True)


@app.command("create", epilog="Example: mailer lists create weekly --name 'Weekly report'")
def lists_create(
    slug: Annotated[
        str, typer.Argument(help="Short identifier: lower-case letters, digits, -, _.")
    ],
    name: Annotated[str, typer.Option(help="Name readers see.")] = "",
    double_opt_in: Annotated[
        bool, typer.Option("--double-opt-in", help="New readers must confirm by email.")
    ] = False,
    public_archive: Annotated[
        bool,
        typer.Option("--public-archive", help="Publish its campaigns at /archive/ (mailer serve)."),
    ] = False,
    public_form: Annotated[
        bool,
        typer.Option(
            "--public-form",
            help="Open its subscribe form at /s/SLUG (mailer serve); always double opt-in.",
        ),
    ] = False,
) -> None:
    """Create a mailing list."""
    with open_db() as database:
        created = lists.create(
            database, slug, name, double_opt_in=double_opt_in, public_archive=public_archive,
            public_form=public_form,
        )  # fmt: skip
    archive = ", public archive" if created.public_archive else ""
    form = ", public form" if created.public_form else ""
    out.print(
        f"created list {created.slug} ({created.name}, {created.opt_in} opt-in{archive}{form})",
        markup=False,
    )


@app.command(
    "set",
    epilog="Example: mailer lists set weekly --public-archive --public-form;"
    " mailer lists set weekly --welcome welcome.md",
)
def lists_set(
    slug: str,
    public_archive: Annotated[
        bool | None,
        typer.Option(
            "--public-archive/--no-public-archive",
            help="Publish (or withdraw) its campaigns at /archive/ of mailer serve.",
        ),
    ] = None,
    public_form: Annotated[
        bool | None,
        typer.Option(
            "--public-form/--no-public-form",
            help="Open (or close) its subscribe form at /s/SLUG of mailer serve.",
        ),
    ] = None,
    welcome_report: Annotated[
        Path | None,
        typer.Option(
            "--welcome",
            metavar="REPORT",
            help="Send this report once to each reader who joins (checked now, as send checks).",
        ),
    ] = None,
    no_welcome: Annotated[
        bool, typer.Option("--no-welcome", help="New readers get no welcome mail.")
    ] = False,
) -> None:
    """Change a list's settings."""
    if welcome_report is not None and no_welcome:
        raise InputError("--welcome and --no-welcome contradict each other: give one")
    if (public_archive, public_form, welcome_report, no_welcome) == (None, None, None, False):
        raise InputError(
            "nothing to change: give --public-archive, --no-public-archive, --public-form,"
            " --no-public-form, --welcome REPORT or --no-welcome"
        )
    if welcome_report is not None:  # first: a report with an error changes nothing at all
        set_welcome(slug, welcome_report)
    elif no_welcome:
        clear_welcome(slug)
    with open_db() as database:
        if public_archive is not None:
            changed = lists.set_public_archive(database, slug, public_archive)
            shown = "published at /archive/" if changed.public_archive else "not published"
            out.print(f"list {changed.slug}: campaigns {shown}", markup=False)
        if public_form is not None:
            changed = lists.set_public_form(database, slug, public_form)
            shown = f"open at /s/{changed.slug}" if changed.public_form else "closed"
            out.print(f"list {changed.slug}: subscribe form {shown}", markup=False)


AsJson = Annotated[bool, typer.Option("--json", help="JSON with stable keys, for scripts.")]
HEADER = ("slug", "name", "opt-in", "form", "archive", *LIST_COUNTS)


def _row(summary: ListSummary) -> list[str]:
    found = summary.list
    return [
        found.slug,
        found.name,
        found.opt_in,
        "open" if found.public_form else "closed",
        "public" if found.public_archive else "private",
        *(str(summary.counts[k]) for k in LIST_COUNTS),
    ]


def _record(summary: ListSummary, welcome_id: int | None) -> dict[str, Any]:
    return {**list_record(summary), "welcome_campaign": welcome_id}


@app.command("ls", epilog="Example: mailer lists ls --json")
def lists_ls(as_json: AsJson = False) -> None:
    """Show every list with its opt-in mode, form, archive and member counts per status."""
    with open_db(create=False) as database:
        summaries = lists.summaries(database)
        welcoming = {slug: campaign for campaign, slug in welcomes(database).items()}
    if as_json:
        write_json([_record(s, welcoming.get(s.list.slug)) for s in summaries])
        return
    if not summaries:
        err.print("no lists yet: mailer lists create SLUG")
    rows(HEADER, (_row(s) for s in summaries))


@app.command("show", epilog="Example: mailer lists show weekly")
def lists_show(
    slug: Annotated[str, typer.Argument(help="The list's slug.")], as_json: AsJson = False
) -> None:
    """Show one list: its settings, when it was created and its members per status."""
    with open_db(create=False) as database:
        summary = lists.summary(database, slug)
        greeting = welcome_of(database, slug)
    if as_json:
        write_json(_record(summary, greeting.id if greeting else None))
        return
    found = summary.list
    lines = [
        f"list {found.slug}: {found.name}",
        f"opt-in:   {found.opt_in}",
        "form:     " + (f"open at /s/{found.slug}" if found.public_form else "closed"),
        "archive:  " + ("published at /archive/" if found.public_archive else "not published"),
        "welcome:  " + (f"campaign {greeting.id}, “{greeting.subject}”" if greeting else "none"),
        f"created:  {local(found.created_at)}",
        "members:  " + ", ".join(f"{summary.counts[k]} {k}" for k in LIST_COUNTS),
    ]
    out.print("\n".join(lines), markup=False)


@app.command("rm", epilog="Example: mailer lists rm weekly --yes")
def lists_rm(
    slug: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a list and its memberships (subscribers and their history stay)."""
    with open_db() as database:
        mailing_list = lists.get(database, slug)
        refusal = f"refusing to delete list {slug!r} without --yes"
        confirm(f"Delete list {slug!r} and all its memberships?", yes, refusal)
        removed = lists.remove(database, mailing_list.slug)
    out.print(f"deleted list {slug} ({plural(removed, 'membership')})", markup=False)

"""CLI commands for a list's readers: subscribers add, rm, ls, import, export."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from mailer import times
from mailer.audience import lists, members, subscriptions
from mailer.audience.addresses import normalise
from mailer.audience.arrivals import land
from mailer.audience.cleaning import clean
from mailer.audience.csv_export import export_csv, export_file
from mailer.audience.csv_import import ImportOptions, import_csv, read_layout
from mailer.audience.import_chunks import RowProblem
from mailer.audience.import_formats import FIELDS, FORCED
from mailer.audience.import_rows import language_tag
from mailer.cli.common import Typer, err, open_db, out, settings
from mailer.cli.output import member_record, plural, rows, time_cell, write_json_array
from mailer.cli.welcome import require_welcome, said_welcome
from mailer.errors import DiskFullError, InputError
from mailer.models import Candidate, Consent, MembershipStatus, Outcome
from mailer.send.confirmation import confirm_by_mail
from mailer.send.event_loop import runner
from mailer.send.welcome import joining, welcome_of
from mailer.tokens import load_secret

app = Typer(help="Manage the readers of a list.", no_args_is_help=True)


def _attributes(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs, cleaned of control characters as an import cleans them."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = clean(key).strip()
        if not sep or not key:
            raise InputError(f"invalid --attr {pair!r}: expected KEY=VALUE")
        if key.lower() in ("email", "name"):
            raise InputError(f"invalid --attr {pair!r}: {key} is not an attribute")
        result[key] = clean(value)
    return result


@app.command(
    "add",
    epilog="Example: mailer subscribers add weekly ada@example.org --name 'Ada' --attr city=Paris"
    " --language fr",
)
def subscribers_add(
    list_slug: Annotated[str, typer.Argument(metavar="LIST")],
    email: str,
    name: Annotated[str | None, typer.Option(help="Reader's name.")] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="An attribute; repeatable."),
    ] = None,
    check_dns: Annotated[
        bool | None,
        typer.Option("--check-dns/--no-check-dns", help="Check the domain accepts mail."),
    ] = None,
    resubscribe: Annotated[
        bool, typer.Option("--resubscribe", help="Re-add a reader who left or bounced.")
    ] = False,
    language: Annotated[
        str | None,
        typer.Option(metavar="LANG", help="Reader's language (BCP 47: fr, pt-BR): their edition."),
    ] = None,
    welcome: Annotated[
        bool,
        typer.Option(
            "--welcome", help="Send the list's welcome mail now (on confirming, if double opt-in)."
        ),
    ] = False,
) -> None:
    """Add a reader to a list (or update their name, attributes and language)."""
    attributes = _attributes(attr or [])
    cleaned = None if name is None else clean(name).strip()
    lang = language_tag(language) if language is not None else ""
    if lang is None:
        raise InputError(f"invalid --language {language!r}: a language tag such as fr or pt-BR")
    current = settings()
    dns = current.addresses.check_dns if check_dns is None else check_dns
    address = normalise(email, check_dns=dns)
    secret = load_secret(current.workspace)
    with open_db() as database:
        mailing_list = lists.get(database, list_slug)
        was_named, had = members.known(database, address.email)  # what the new values join
        given = [*attributes, *([""] if cleaned else [])]
        if problem := members.too_large(cleaned or was_named, {**had, **attributes}, given):
            raise InputError(f"{address.email}: {problem}")
        if welcome:
            require_welcome(mailing_list, welcome_of(database, list_slug) is not None)
        candidate = Candidate(address.email, address.smtputf8, cleaned, attributes,
                              consent=Consent("cli"), lang=lang)  # fmt: skip
        welcoming = joining(database, address.email, mailing_list.id) if welcome else nullcontext()
        with welcoming as welcomes:  # the welcome is queued with the join
            landed = land(database, mailing_list, [candidate], secret=secret,
                          resubscribe=resubscribe)  # fmt: skip
        member = members.find(database, mailing_list, address.email)
    if address.email in landed.erased:
        raise InputError(f"{address.email} was erased at the reader's request; only their own"
                         " new consent, through the subscribe form, brings them back")  # fmt: skip
    outcome = landed.outcomes[address.email]
    messages = {
        Outcome.ADDED: f"added {address.email} to {list_slug}",
        Outcome.UPDATED: f"updated {address.email} on {list_slug}",
        Outcome.UNCHANGED: f"{address.email} is already on {list_slug}",
        Outcome.SKIPPED: f"{address.email} left {list_slug}, bounced or was blocked"
        " (--resubscribe re-adds)",
    }
    if outcome is Outcome.SKIPPED:
        raise InputError(messages[outcome])
    out.print(messages[outcome], markup=False)
    if member is not None and member.status == MembershipStatus.UNCONFIRMED:
        with runner() as loop:
            loop.run(confirm_by_mail(current, mailing_list, member))
        out.print(f"sent {address.email} a message to confirm; they receive campaigns once they do",
                  markup=False)  # fmt: skip
    if welcomes is not None:  # --welcome
        said_welcome(welcomes.queued, address.email, member)


@app.command("rm", epilog="Example: mailer subscribers rm weekly ada@example.org")
def subscribers_rm(list_slug: Annotated[str, typer.Argument(metavar="LIST")], email: str) -> None:
    """Unsubscribe a reader from a list (recorded as an event; nothing is deleted)."""
    address = normalise(email)
    with open_db() as database:
        mailing_list = lists.get(database, list_slug)
        changed = subscriptions.unsubscribe(database, mailing_list, address.email, "by the editor")
    done = "unsubscribed {} from {}" if changed else "{} was already unsubscribed from {}"
    out.print(done.format(address.email, list_slug), markup=False)


STATUSES = [s.value for s in MembershipStatus] + ["bounced", "blocklisted"]


def _statuses(status: str | None) -> list[str]:
    if status is None:
        return []
    if status not in STATUSES:
        raise InputError(f"invalid --status {status!r}: choose from {', '.join(STATUSES)}")
    return [status]


@app.command(
    "ls",
    epilog="Example: mailer subscribers ls weekly --status unsubscribed --since 7d --json",
)
def subscribers_ls(
    list_slug: Annotated[str, typer.Argument(metavar="LIST")],
    status: Annotated[
        str | None, typer.Option(help=f"Only this status: {', '.join(STATUSES)}.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help="Only readers whose status changed since then: 2026-11-23, 2026-11-23T08:00,"
            " or an age such as 7d, 12h, 2w.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array with stable keys, for scripts.")
    ] = False,
) -> None:
    """List the readers of a list: a table on a terminal, tab-separated with a header row when
    piped."""
    statuses = _statuses(status)
    after = None if since is None else times.stamp(times.since(since))
    with open_db(create=False) as database:
        found = members.stream(database, lists.get(database, list_slug), statuses, after)
        if as_json:
            write_json_array(member_record(m) for m in found)
            return
        shown = (
            [m.email, m.name, m.status if m.subscriber_status == "active" else m.subscriber_status,
             time_cell(m.joined_at), time_cell(m.changed_at)]
            for m in found
        )  # fmt: skip
        matching = " matching --status/--since" if statuses or after else ""
        rows(("address", "name", "status", "joined", "last change"), shown,
             empty=f"no readers on {list_slug}{matching}")  # fmt: skip


MAP_HELP = (
    "What a column holds, over the recognised format; repeatable. FIELD: "
    f"{', '.join(FIELDS)}, attribute:NAME or ignore."
)


@app.command(
    "import",
    epilog="Example: mailer subscribers import weekly subscribed_members_export.csv; any other"
    " CSV: mailer subscribers import weekly people.csv --map Mail=email --map Town=attribute:city",
)
def subscribers_import(
    list_slug: Annotated[str, typer.Argument(metavar="LIST")],
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a header row: an export of Mailchimp, listmonk, Substack, Buttondown,"
            " Ghost or mailer, or any CSV with an email column (or --map)."
        ),
    ],
    mapping: Annotated[
        list[str] | None, typer.Option("--map", metavar="COLUMN=FIELD", help=MAP_HELP)
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help=f"The status of every row: {', '.join(FORCED)} (a row the file says left"
            " stays so)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count; change nothing.")
    ] = False,
    resubscribe: Annotated[
        bool,
        typer.Option("--resubscribe", help="Re-add readers who left, bounced or were blocklisted."),
    ] = False,
    confirmed: Annotated[
        bool, typer.Option("--confirmed", help="On a double opt-in list, mark rows confirmed.")
    ] = False,
    check_dns: Annotated[
        bool | None,
        typer.Option("--check-dns/--no-check-dns", help="Check each domain accepts mail."),
    ] = None,
    create_list: Annotated[
        bool, typer.Option("--create-list", help="Create the list first if it does not exist.")
    ] = False,
) -> None:
    """Import readers from CSV: good rows are imported with their status and consent, each bad
    row is reported with its line."""
    current = settings()
    options = ImportOptions(
        tuple(mapping or ()), status, resubscribe, confirmed, dry_run,
        current.addresses.check_dns if check_dns is None else check_dns,
    )  # fmt: skip

    def report(problem: RowProblem) -> None:
        err.print(str(problem), markup=False)

    secret = load_secret(current.workspace)
    with open_db(create=not dry_run) as database:
        if create_list:
            read_layout(file, options)  # a bad header or option creates nothing
            found = lists.find(database, list_slug)
            mailing_list = found or lists.create(database, list_slug, list_slug)
        else:
            mailing_list = lists.get(database, list_slug)
        try:
            summary = import_csv(
                database, mailing_list, file, on_problem=report, secret=secret, options=options
            )
        except KeyboardInterrupt:
            err.print("interrupted: committed chunks are kept; run the same import again to finish")
            raise typer.Exit(130) from None
        except DiskFullError as full:  # committed chunks are kept here too
            raise DiskFullError(full.where, "run the same import again") from None
    prefix = "dry run, nothing changed: " if dry_run else ""
    out.print(prefix + str(summary), markup=False)
    if summary.counts["invalid"]:
        raise typer.Exit(1)


@app.command("export", epilog="Example: mailer subscribers export weekly --output readers.csv")
def subscribers_export(
    list_slug: Annotated[str, typer.Argument(metavar="LIST")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="Only this status (default: confirmed and unconfirmed).")
    ] = None,
) -> None:
    """Export a list's readers as CSV; importing the file elsewhere gives the same readers."""
    statuses = _statuses(status) or [MembershipStatus.CONFIRMED, MembershipStatus.UNCONFIRMED]
    with open_db(create=False) as database:
        mailing_list = lists.get(database, list_slug)
        if output is None:
            export_csv(database, mailing_list, sys.stdout, statuses)
            return
        count = export_file(database, mailing_list, output, statuses)
    err.print(f"exported {plural(count, 'reader')} to {output}", markup=False)

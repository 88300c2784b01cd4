"""The ``mailer`` command line: parse, load settings, call the core, print; errors caught once."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from mailer import __version__, config
from mailer.addresses import normalise
from mailer.confirmation import send_confirmation
from mailer.errors import InputError, MailerError, TransportError
from mailer.models import Candidate, MailingList, Member, MembershipStatus, Outcome
from mailer.render import template_dirs
from mailer.store import Store
from mailer.subscriber_csv import SUMMARY_KEYS, RowProblem, export_csv, export_file, import_csv
from mailer.transport import OutboxTransport, SmtpTransport

# Not on a terminal (pipes, CI), tables get room instead of being squeezed into 80 columns.
WIDTH = None if sys.stdout.isatty() else 240
out = Console(highlight=False, soft_wrap=True, width=WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=WIDTH)


class MailerGroup(TyperGroup):
    """Root group: the one place where a MailerError becomes one line on stderr and exit 1."""

    def invoke(self, ctx: Any) -> Any:  # click's Context; typer may vendor click
        try:
            return super().invoke(ctx)
        except MailerError as error:
            err.print(f"error: {error}", markup=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=MailerGroup,
    help="Self-hosted newsletters: subscriber lists, Markdown reports, SMTP delivery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
lists_app = typer.Typer(help="Create, list and remove mailing lists.", no_args_is_help=True)
subscribers_app = typer.Typer(help="Manage the readers of a list.", no_args_is_help=True)
app.add_typer(lists_app, name="lists")
app.add_typer(subscribers_app, name="subscribers")


class State:
    workspace: Path = Path(".")


state = State()


def _version(value: bool) -> None:
    if value:
        out.print(f"mailer {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="Workspace folder (default: current).")
    ] = Path("."),
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """Self-hosted newsletters: subscriber lists, Markdown reports, SMTP delivery."""
    state.workspace = workspace


def settings() -> config.Settings:
    return config.load(state.workspace)


@contextmanager
def open_store() -> Iterator[Store]:
    current = settings()
    with Store(current.database_path, current.database.busy_timeout) as store:
        yield store


@app.command(epilog="Example: mailer init")
def init(
    force: Annotated[bool, typer.Option(help="Overwrite an existing mailer.toml.")] = False,
) -> None:
    """Write a commented mailer.toml with every setting and create the database."""
    path = state.workspace / config.CONFIG_NAME
    if path.exists() and not force:
        raise InputError(f"{path} already exists (use --force to overwrite it)")
    state.workspace.mkdir(parents=True, exist_ok=True)
    path.write_text(config.render_default_file(), encoding="utf-8")
    with open_store() as store:
        out.print(f"wrote {path}\ndatabase {store.path}")


# lists


@lists_app.command("create", epilog="Example: mailer lists create weekly --name 'Weekly report'")
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
) -> None:
    """Create a mailing list."""
    with open_store() as store:
        created = store.create_list(
            slug, name, double_opt_in=double_opt_in, public_archive=public_archive
        )
    opt_in = "double" if created.double_opt_in else "single"
    archive = ", public archive" if created.public_archive else ""
    out.print(
        f"created list {created.slug} ({created.name}, {opt_in} opt-in{archive})", markup=False
    )


@lists_app.command("set", epilog="Example: mailer lists set weekly --public-archive")
def lists_set(
    slug: str,
    public_archive: Annotated[
        bool | None,
        typer.Option(
            "--public-archive/--no-public-archive",
            help="Publish (or withdraw) its campaigns at /archive/ of mailer serve.",
        ),
    ] = None,
) -> None:
    """Change a list's settings."""
    if public_archive is None:
        raise InputError("nothing to change: give --public-archive or --no-public-archive")
    with open_store() as store:
        changed = store.set_public_archive(slug, public_archive)
    shown = "published at /archive/" if changed.public_archive else "not published"
    out.print(f"list {changed.slug}: campaigns {shown}", markup=False)


@lists_app.command("ls", epilog="Example: mailer lists ls")
def lists_ls() -> None:
    """Show every list with its opt-in mode and member counts per status."""
    with open_store() as store:
        summaries = store.list_summaries()
    table = Table(
        "slug",
        "name",
        "opt-in",
        "confirmed",
        "unconfirmed",
        "unsubscribed",
        "bounced",
        "blocklisted",
        box=None,
        header_style="bold",
    )
    for summary in summaries:
        c = summary.counts
        table.add_row(
            summary.list.slug,
            summary.list.name,
            "double" if summary.list.double_opt_in else "single",
            *(
                str(c[k])
                for k in ("confirmed", "unconfirmed", "unsubscribed", "bounced", "blocklisted")
            ),
        )
    if summaries:
        out.print(table)
    else:
        out.print("no lists yet: mailer lists create SLUG")


@lists_app.command("rm", epilog="Example: mailer lists rm weekly --yes")
def lists_rm(
    slug: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a list and its memberships (subscribers and their history stay)."""
    with open_store() as store:
        mailing_list = store.get_list(slug)
        if not yes:
            if not sys.stdin.isatty():
                raise InputError(
                    f"refusing to delete list {slug!r} without --yes (no terminal to ask)"
                )
            typer.confirm(f"Delete list {slug!r} and all its memberships?", abort=True)
        removed = store.remove_list(mailing_list.slug)
    out.print(f"deleted list {slug} ({removed} memberships)", markup=False)


# subscribers


def _attributes(pairs: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"invalid --attr {pair!r}: expected KEY=VALUE")
        if key.strip().lower() in ("email", "name"):
            raise InputError(f"invalid --attr {pair!r}: {key.strip()} is not an attribute")
        result[key.strip()] = value
    return result


@subscribers_app.command(
    "add",
    epilog="Example: mailer subscribers add weekly ada@example.org --name 'Ada' --attr city=Paris",
)
def subscribers_add(
    list_slug: Annotated[str, typer.Argument(metavar="LIST")],
    email: str,
    name: Annotated[str | None, typer.Option(help="Reader's name.")] = None,
    attr: Annotated[list[str] | None, typer.Option(help="KEY=VALUE attribute; repeatable.")] = None,
    check_dns: Annotated[
        bool | None,
        typer.Option("--check-dns/--no-check-dns", help="Check the domain accepts mail."),
    ] = None,
    resubscribe: Annotated[bool, typer.Option(help="Re-add a reader who left or bounced.")] = False,
) -> None:
    """Add a reader to a list (or update their name and attributes)."""
    attributes = _attributes(attr or [])
    current = settings()
    dns = current.addresses.check_dns if check_dns is None else check_dns
    address = normalise(email, check_dns=dns)
    with open_store() as store:
        mailing_list = store.get_list(list_slug)
        candidate = Candidate(address.email, address.smtputf8, name, attributes)
        [outcome] = store.put_members(mailing_list, [candidate], resubscribe=resubscribe)
        member = store.find_member(mailing_list, address.email)
    messages = {
        Outcome.ADDED: f"added {address.email} to {list_slug}",
        Outcome.UPDATED: f"updated {address.email} on {list_slug}",
        Outcome.UNCHANGED: f"{address.email} is already on {list_slug}",
        Outcome.SKIPPED: f"{address.email} left {list_slug} or bounced (--resubscribe re-adds)",
    }
    if outcome is Outcome.SKIPPED:
        raise InputError(messages[outcome])
    out.print(messages[outcome], markup=False)
    if member is not None and member.status == MembershipStatus.UNCONFIRMED:
        send_confirmation_message(current, mailing_list, member)
        out.print(f"sent {address.email} a message to confirm; they receive campaigns once they do",
                  markup=False)  # fmt: skip


def send_confirmation_message(
    current: config.Settings, mailing_list: MailingList, member: Member
) -> None:
    """Double opt-in: mail the reader a link to {base_url}/c/{token}; a refusal is an error."""
    transport = (
        SmtpTransport(current.smtp) if current.smtp.host else OutboxTransport(current.outbox_path)
    )
    dirs = template_dirs(current.templates_dir)
    reply = asyncio.run(send_confirmation(current, transport, mailing_list, member, dirs))
    if not reply.accepted:
        reason = f"confirmation to {member.email} refused: {reply.code} {reply.text}"
        raise TransportError(transport.description, reason)


@subscribers_app.command("rm", epilog="Example: mailer subscribers rm weekly ada@example.org")
def subscribers_rm(list_slug: Annotated[str, typer.Argument(metavar="LIST")], email: str) -> None:
    """Unsubscribe a reader from a list (recorded as an event; nothing is deleted)."""
    address = normalise(email)
    with open_store() as store:
        changed = store.unsubscribe(store.get_list(list_slug), address.email, "by the editor")
    verb = "unsubscribed" if changed else "was already unsubscribed:"
    out.print(
        f"{verb} {address.email} from {list_slug}"
        if changed
        else f"{address.email} {verb[:-1]} from {list_slug}",
        markup=False,
    )


STATUSES = [s.value for s in MembershipStatus] + ["bounced", "blocklisted"]


def _statuses(status: str | None) -> list[str]:
    if status is None:
        return []
    if status not in STATUSES:
        raise InputError(f"invalid --status {status!r}: choose from {', '.join(STATUSES)}")
    return [status]


@subscribers_app.command(
    "ls", epilog="Example: mailer subscribers ls weekly --status confirmed --json"
)
def subscribers_ls(
    list_slug: Annotated[str, typer.Argument(metavar="LIST")],
    status: Annotated[
        str | None, typer.Option(help=f"Only this status: {', '.join(STATUSES)}.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for scripts.")] = False,
) -> None:
    """List the readers of a list."""
    statuses = _statuses(status)
    with open_store() as store:
        members = store.members(store.get_list(list_slug), statuses)
        if as_json:
            sys.stdout.write("[")
            for i, m in enumerate(members):
                record = {
                    "email": m.email,
                    "name": m.name,
                    "status": m.status,
                    "subscriber_status": m.subscriber_status,
                    "attributes": m.attributes,
                }
                sys.stdout.write(
                    ("," if i else "") + "\n  " + json.dumps(record, ensure_ascii=False)
                )
            sys.stdout.write("\n]\n")
            return
        for m in members:
            shown = m.status if m.subscriber_status == "active" else m.subscriber_status
            sys.stdout.write(f"{m.email}\t{m.name}\t{shown}\n")


@subscribers_app.command(
    "import", epilog="Example: mailer subscribers import weekly readers.csv --dry-run"
)
def subscribers_import(
    list_slug: Annotated[str, typer.Argument(metavar="LIST")],
    file: Annotated[Path, typer.Argument(help="CSV with a header row and an email column.")],
    dry_run: Annotated[bool, typer.Option(help="Check and count; change nothing.")] = False,
    resubscribe: Annotated[
        bool, typer.Option(help="Re-add readers who left, bounced or were blocklisted.")
    ] = False,
    confirmed: Annotated[
        bool, typer.Option(help="On a double opt-in list, mark rows confirmed.")
    ] = False,
    check_dns: Annotated[
        bool | None,
        typer.Option("--check-dns/--no-check-dns", help="Check each domain accepts mail."),
    ] = None,
    create_list: Annotated[
        bool, typer.Option(help="Create the list first if it does not exist.")
    ] = False,
) -> None:
    """Import readers from CSV: good rows are imported, each bad row is reported with its line."""
    current = settings()
    dns = current.addresses.check_dns if check_dns is None else check_dns

    def report(problem: RowProblem) -> None:
        err.print(str(problem), markup=False)

    with open_store() as store:
        mailing_list = store.find_list(list_slug) if create_list else None
        if create_list and mailing_list is None:
            mailing_list = store.create_list(list_slug, list_slug)
        mailing_list = mailing_list or store.get_list(list_slug)
        try:
            summary = import_csv(
                store,
                mailing_list,
                file,
                on_problem=report,
                resubscribe=resubscribe,
                confirmed=confirmed,
                dry_run=dry_run,
                check_dns=dns,
            )
        except KeyboardInterrupt:
            err.print("interrupted: committed chunks are kept; run the same import again to finish")
            raise typer.Exit(130) from None
    counts = summary.counts
    prefix = "dry run, nothing changed: " if dry_run else ""
    out.print(prefix + ", ".join(f"{counts[k]} {k}" for k in SUMMARY_KEYS), markup=False)
    if counts["invalid"]:
        raise typer.Exit(1)


@subscribers_app.command(
    "export", epilog="Example: mailer subscribers export weekly --output readers.csv"
)
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
    with open_store() as store:
        mailing_list = store.get_list(list_slug)
        if output is None:
            export_csv(store, mailing_list, sys.stdout, statuses)
            return
        count = export_file(store, mailing_list, output, statuses)
    err.print(f"exported {count} readers to {output}", markup=False)


@app.command(epilog="Example: mailer serve --port 8000")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8000,
) -> None:
    """Serve the readers' side: one-click unsubscribe, confirmation, subscribe form, archive."""
    from mailer import web  # starlette and uvicorn load only for this command

    current = settings()

    def ready(address: str) -> None:
        out.print(f"serving on {address} (public address {current.newsletter.base_url});"
                  " Ctrl-C stops", markup=False)  # fmt: skip

    web.serve(current, host, port, on_ready=ready)
    out.print("stopped")


# Register the other command groups (they import `app` from here).
from mailer import cli_bounces, cli_deliverability, cli_send  # noqa: E402, F401

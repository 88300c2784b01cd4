"""CLI commands that render and send a report: render, send."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mailer import times
from mailer.audience import lists, members
from mailer.audience.addresses import normalise
from mailer.cli.common import app, confirm, err, finite, open_db, out, settings
from mailer.cli.output import plural
from mailer.cli.progress import Reporter, retry_hint, run_stoppable
from mailer.cli.workers import follow_workers, waiting_workers
from mailer.compose.editions import Edition, inspect_editions, read_editions
from mailer.compose.preview import render_preview
from mailer.compose.report import load_report
from mailer.config import Settings
from mailer.config.checks import MAX_CONCURRENCY
from mailer.errors import InputError
from mailer.send import service
from mailer.send.recipients import audience
from mailer.send.service import Overrides, RunResult, Session
from mailer.send.types import StopReason
from mailer.send.workers import store_for_workers

STRICT = (
    "Refuse on any warning: an image without alt text or over plain http, heavy attachments,"
    " a paragraph that looks like the first item of the list after it."
)


@app.command(epilog="Example: mailer render examples/report.md --list weekly --out preview")
def render(
    report: Annotated[Path, typer.Argument(help="The Markdown report, with front matter.")],
    list_slug: Annotated[
        str | None,
        typer.Option("--list", metavar="LIST", help="Render for a subscriber of this list."),
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", metavar="EMAIL", help="The reader to render for.")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Where the three files go.")
    ] = Path("."),
    strict: Annotated[bool, typer.Option("--strict", help=STRICT)] = False,
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            metavar="LANG",
            help="Preview the edition in this language (issue.fr.md beside issue.md);"
            " default: the edition the reader gets.",
        ),
    ] = None,
) -> None:
    """Render REPORT for one reader into message.eml, message.html and message.txt (and its
    images into DIR/media/, which message.html shows)."""
    current = settings()
    editions = read_editions(load_report(report))
    warn_editions(editions, current, strict)
    if list_slug is None:
        paths = render_preview(report, current, out_dir, email=to, language=language,
                               strict=strict, editions=editions)  # fmt: skip
    else:
        with open_db(create=False) as database:
            mailing_list = lists.get(database, list_slug)
            readers = members.stream(database, mailing_list)
            paths = render_preview(
                report,
                current,
                out_dir,
                mailing_list=mailing_list,
                members=readers,
                email=to,
                language=language,
                strict=strict,
                editions=editions,
            )
    for path in paths:
        out.print(str(path), markup=False)


def scheduled_time(
    at: str | None, zone: str, *, test: bool, limit: int, outbox: Path | None, tz: str | None
) -> datetime | None:
    """--at read in ``zone``, or None to send now; the options that make no sense with it are
    refused before anything is read."""
    if at is None:
        if tz is not None:
            raise InputError("--tz says how to read --at: give --at TIME too")
        return None
    for given, option in ((test, "--test"), (limit, "--limit"), (outbox, "--outbox")):
        if given:
            raise InputError(f"--at cannot be used with {option}: a scheduled campaign is sent"
                             " whole, by `mailer serve`, through its [smtp] relay")  # fmt: skip
    return times.at(at, zone)


def in_zone(moment: datetime, zone: str) -> str:
    """A time as the editor reads it: in ``zone`` (else the machine's), with the zone named."""
    local = times.localised(moment, zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}" + (f" ({zone})" if zone else "")


def warn_editions(editions: Sequence[Edition], current: Settings, strict: bool = False) -> None:
    """Warn about every language's images, alt texts and attachments, each on one line of
    stderr, an edition at a time (with ``strict``, those before the one that fails first)."""
    for notices in inspect_editions(editions, current, strict=strict):
        for notice in notices:
            err.print(f"warning: {notice}", markup=False)


def run(session: Session, work: Callable[[], Coroutine[Any, Any, RunResult]]) -> RunResult:
    """Run a service call with progress shown and Ctrl-C handled."""
    reporter = Reporter()
    session.on_progress = reporter
    try:
        return run_stoppable(work(), session.control)
    finally:
        reporter.close()


def summarise(outcome: RunResult) -> None:
    """Print the counts and what to do next; exit 1 (130 for Ctrl-C) when the run stopped."""
    progress, campaign_id = outcome.progress, outcome.campaign_id
    c = progress.counts
    rate = c["sent"] / progress.elapsed if progress.elapsed else 0.0
    out.print(
        f"{c['sent']} sent, {c['deferred']} deferred, {c['failed']} failed, {c['skipped']} skipped"
        f" in {progress.elapsed:.1f} s ({rate:.0f} messages/s)", markup=False,
    )  # fmt: skip
    if campaign_id is None:
        return
    resume = f"mailer campaigns resume {campaign_id}"
    if outcome.stop is not None and outcome.stop.reason is StopReason.DISK_FULL:
        err.print(f"error: disk full: {outcome.stop.detail}; free space, then {resume}",
                  markup=False)  # fmt: skip
        raise typer.Exit(outcome.exit_code)
    if outcome.stop is not None:  # Ctrl-C is the editor's own: any other stop is an error
        paused = f"campaign {campaign_id} paused ({outcome.stop}); resume with: {resume}"
        if outcome.status == "sending":  # a worker, and the others go on
            paused = (f"this worker stopped ({outcome.stop}); campaign {campaign_id} goes on"
                      " with its other workers")  # fmt: skip
        if outcome.exit_code == 130:
            out.print(paused, markup=False)
        else:
            err.print(f"error: {paused}", markup=False)
        raise typer.Exit(outcome.exit_code)
    if outcome.queued:
        out.print(f"{outcome.queued} not sent yet (--limit); resume with: {resume}", markup=False)
    elif outcome.status == "done" and (outcome.deferred or c["deferred"]):
        out.print(retry_hint(campaign_id), markup=False)


@app.command(epilog="Example: mailer send examples/report.md --list weekly --yes")
def send(
    report_path: Annotated[Path, typer.Argument(metavar="REPORT", help="Markdown report.")],
    list_slugs: Annotated[
        list[str],
        typer.Option(
            "--list",
            "-l",
            metavar="LIST",
            help="List to send to; repeatable: each reader on any of them gets one copy.",
        ),
    ],
    where: Annotated[
        str | None,
        typer.Option(
            metavar="EXPR",
            help="Only the readers matching EXPR, e.g. \"city = 'Paris' and tag = 'steward'\".",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Send without asking.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render and check every message; send nothing.")
    ] = False,
    test: Annotated[
        list[str] | None,
        typer.Option(metavar="EMAIL", help="Send only to this address; repeatable."),
    ] = None,
    test_as: Annotated[
        str | None,
        typer.Option(metavar="READER_EMAIL", help="Render --test as this subscriber sees it."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=MAX_CONCURRENCY, help="SMTP connections.")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(min=0, callback=finite, help="Messages per second (0: no limit)."),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=0, help="Send at most N now; resume the rest later.")
    ] = 0,
    outbox: Annotated[Path | None, typer.Option(help="Deliver into this Maildir instead.")] = None,
    again: Annotated[
        bool, typer.Option("--again", help="Send even if this report already went to this list.")
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help=STRICT)] = False,
    at: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help='Send at this time, e.g. "2026-12-01 07:00": checked'
            " now, started by `mailer serve`.",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            max=64,
            metavar="N",
            help="Send through N processes (`campaigns work`) on this machine.",
        ),
    ] = 0,
    tz: Annotated[
        str | None,
        typer.Option(
            metavar="ZONE",
            help="Time zone of --at (Europe/Paris); default:"
            " [newsletter] timezone, else the machine's.",
        ),
    ] = None,
) -> None:
    """Send a report to the confirmed, active readers of one or more lists, or a segment; now,
    or at a set time (--at)."""
    if workers and (at or limit or outbox):
        raise InputError("--workers sends the whole campaign now, through the relay (or outbox)"
                         " of mailer.toml: not with --at, --limit or --outbox")  # fmt: skip
    overrides = Overrides(concurrency, rate, limit, outbox, again)
    zone = tz or settings().newsletter.timezone
    when = scheduled_time(at, zone, test=bool(test), limit=limit, outbox=outbox, tz=tz)
    reader = normalise(test_as).email if test_as is not None else None
    report = load_report(report_path)  # a bad report is one line before anything is created
    warn_editions(read_editions(report), settings(), strict)
    addresses = [normalise(t) for t in test or ()]
    if reader is not None and not addresses:
        raise InputError("--test-as needs --test ADDRESS: it only shapes a test send")
    with open_db(create=not (dry_run or addresses)) as database:
        session = Session(settings(), database)
        chosen = audience(database, list_slugs, where)
        if addresses:
            summarise(run(session, lambda: service.send_test(
                session, report, chosen, addresses, overrides, reader)))  # fmt: skip
            return
        if dry_run:
            count = service.check_campaign(session, report, chosen)
            out.print(f"dry run: {plural(count, 'message')} rendered and checked for"
                      f" {chosen.describe()}; nothing sent", markup=False)  # fmt: skip
            return
        day = times.localised(when, zone).date().isoformat() if when else ""
        with waiting_workers(workers) as spawned:  # they load while every reader is checked
            plan = service.plan_campaign(session, report, chosen, overrides, day)
            readers = plural(plan.readers, "reader")
            shown = "lists:    " if chosen.several else "list:     "
            out.print(f"subject:   {plan.report.subject}\n{shown} {chosen.describe()} ({readers})"
                      f"\ntransport: {plan.transport.description}", markup=False)  # fmt: skip
            if len(plan.editions) > 1:
                languages = ", ".join(edition.lang for edition in plan.editions)
                out.print(f"editions:  {languages} (the first is the default)", markup=False)
            plan.check()
            if when is not None:
                shown = in_zone(when, zone)
                confirm(f"Send to {readers} at {shown}?", yes,
                        "refusing to schedule without --yes")  # fmt: skip
                campaign_id = service.schedule_campaign(session, plan, when)
                out.print(f"campaign {campaign_id} scheduled for {shown}: `mailer serve` starts"
                          f" it then; cancel with: mailer campaigns cancel {campaign_id}",
                          markup=False)  # fmt: skip
                return
            confirm(f"Send to {readers}?", yes, "refusing to send without --yes")
            if spawned is not None:
                campaign_id = run_stoppable(store_for_workers(session, plan), session.control)
                out.print(f"campaign {campaign_id}")
                follow_workers(database, campaign_id, spawned)
                return
        outcome = run(session, lambda: service.send_campaign(session, plan))
    if outcome.campaign_id is None:
        out.print("stopped before the server answered: nothing sent, no campaign created")
        raise typer.Exit(outcome.exit_code)
    out.print(f"campaign {outcome.campaign_id}")
    summarise(outcome)

"""CLI commands that render and send: render, send, campaigns ls/show/resume/retry."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mailer.addresses import normalise
from mailer.bounces import campaign_fallout
from mailer.build_pool import BuildPool
from mailer.campaign import Campaign, check_all
from mailer.cli import app, err, open_store, out, settings
from mailer.deliveries import (
    CampaignLog,
    Campaigns,
    MemoryLog,
    count_eligible,
    eligible,
    find_subscriber,
)
from mailer.errors import InputError
from mailer.message_factory import MessageFactory, Recipe
from mailer.preview import render_preview
from mailer.report import load_report, parse_report
from mailer.send_setup import (
    build_pool,
    campaign_builder,
    choose_transport,
    message_builder,
    one_sender,
    runner,
    send_options,
)
from mailer.send_types import Build, Recipient, SendOptions
from mailer.send_types import Progress as SendProgress
from mailer.transport import OutboxTransport, SmtpTransport


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
) -> None:
    """Render REPORT for one reader into message.eml, message.html and message.txt."""
    current = settings()
    if list_slug is None:
        paths = render_preview(report, current, out_dir, email=to)
    else:
        with open_store() as store:
            mailing_list = store.get_list(list_slug)
            members = store.members(mailing_list)
            paths = render_preview(
                report, current, out_dir, mailing_list=mailing_list, members=members, email=to
            )
    for path in paths:
        out.print(str(path), markup=False)


campaigns_app = typer.Typer(help="Follow, resume and retry campaigns.", no_args_is_help=True)
app.add_typer(campaigns_app, name="campaigns")

PLACEHOLDER = Recipient(0, "reader@example.org", "Example Reader", {}, False)


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise InputError("refusing to send without --yes (no terminal to ask)")
    typer.confirm(question, abort=True)


class Reporter:
    """Shows progress: a rich bar on a terminal, otherwise a plain line every few seconds."""

    def __init__(self, total: int) -> None:
        self.bar: Progress | None = None
        self.last = 0.0
        if sys.stderr.isatty():
            self.bar = Progress(
                TextColumn("sending"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.0f}/s"), TimeRemainingColumn(), console=err,
            )  # fmt: skip
            self.task = self.bar.add_task("send", total=total, rate=0.0)
            self.bar.start()

    def __call__(self, progress: SendProgress) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=progress.done, rate=progress.rate)
        elif time.monotonic() - self.last >= 5:
            self.last = time.monotonic()
            c = progress.counts
            err.print(
                f"{progress.done}/{progress.total} done: {c['sent']} sent, {c['deferred']}"
                f" deferred ({progress.waiting_retry} waiting to retry), {c['failed']} failed,"
                f" {progress.rate:.0f}/s", markup=False,
            )  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


async def deliver(campaign: Campaign, pool: BuildPool | None) -> SendProgress:
    """Run with Ctrl-C handling: the first stops taking work, the second aborts. The
    message-building processes live as long as the run."""
    loop = asyncio.get_running_loop()
    presses = 0

    def interrupt() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            err.print("stopping: finishing messages in flight (Ctrl-C again to abort)")
            campaign.stop()
        else:
            campaign.abort()

    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        async with pool or contextlib.nullcontext():
            return await campaign.run()
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def run_campaign(
    log: CampaignLog | MemoryLog, transport: OutboxTransport | SmtpTransport, build: Build,
    pool: BuildPool | None, options: SendOptions, total: int,
) -> SendProgress:  # fmt: skip
    reporter = Reporter(total)
    campaign = Campaign(log, transport, build, options, total, on_progress=reporter)
    try:
        with runner() as loop:
            return loop.run(deliver(campaign, pool))
    finally:
        reporter.close()


def summarise(progress: SendProgress, campaign_id: int | None, queued: int = 0) -> None:
    """Print the counts and what to do next; exit 1 (130 for Ctrl-C) when the run stopped."""
    c = progress.counts
    rate = c["sent"] / progress.elapsed if progress.elapsed else 0.0
    out.print(
        f"{c['sent']} sent, {c['deferred']} deferred, {c['failed']} failed, {c['skipped']} skipped"
        f" in {progress.elapsed:.1f} s ({rate:.0f} messages/s)", markup=False,
    )  # fmt: skip
    if campaign_id is None:
        return
    if progress.stopped_reason:
        out.print(f"campaign {campaign_id} paused ({progress.stopped_reason});"
                  f" resume with: mailer campaigns resume {campaign_id}", markup=False)  # fmt: skip
    elif queued:
        out.print(f"{queued} not sent yet (--limit); resume with: mailer campaigns resume"
                  f" {campaign_id}", markup=False)  # fmt: skip
    elif c["deferred"]:
        out.print(f"retry the deferred ones later with: mailer campaigns retry {campaign_id}")
    if progress.stopped_reason:
        raise typer.Exit(130 if "user" in progress.stopped_reason else 1)


@app.command(epilog="Example: mailer send examples/report.md --list weekly --yes")
def send(
    report_path: Annotated[Path, typer.Argument(metavar="REPORT", help="Markdown report.")],
    list_slug: Annotated[str, typer.Option("--list", "-l", help="List to send to.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Send without asking.")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Render and check every message; send nothing.")
    ] = False,
    test: Annotated[
        list[str] | None, typer.Option(help="Send only to this address; repeatable.")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="SMTP connections.")] = None,
    rate: Annotated[
        float | None, typer.Option(min=0, help="Messages per second (0: no limit).")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=0, help="Send at most N now; resume the rest later.")
    ] = 0,
    outbox: Annotated[Path | None, typer.Option(help="Deliver into this Maildir instead.")] = None,
) -> None:
    """Send a report to the confirmed, active readers of a list."""
    current = settings()
    report = load_report(report_path)
    transport = choose_transport(current, outbox)
    options = send_options(current, concurrency, rate, limit)
    with open_store() as store:
        mailing_list = store.get_list(list_slug)
        key = f"c{os.urandom(3).hex()}"
        recipe = Recipe(current, report, mailing_list, key)
        factory = MessageFactory(recipe)
        if test:
            addresses = [normalise(t) for t in test]
            recipients = [
                replace(find_subscriber(store, a.email) or PLACEHOLDER, subscriber_id=i,
                        email=a.email, smtputf8=a.smtputf8)
                for i, a in enumerate(addresses, start=1)
            ]  # fmt: skip
            pool = build_pool(current, recipe)
            build = campaign_builder(factory, pool)
            progress = run_campaign(
                MemoryLog(recipients), transport, build, pool, options, len(recipients)
            )
            summarise(progress, None)
            return
        if dry_run:
            render = message_builder(factory, campaign_id=lambda: 0)
            count = check_all(eligible(store, mailing_list), render)
            out.print(
                f"dry run: {count} messages rendered and checked for {list_slug}; nothing sent"
            )
            return
        count = count_eligible(store, mailing_list)
        out.print(f"subject:   {report.subject}\nlist:      {list_slug} ({count} readers)\n"
                  f"transport: {transport.description}", markup=False)  # fmt: skip
        if count == 0:
            raise InputError(f"list {list_slug!r} has no confirmed, active readers")
        confirm(f"Send to {count} readers?", yes)
        settings_json = {"concurrency": options.concurrency, "rate": options.rate,
                         "in_flight_limit": options.in_flight_limit, "key": key,
                         "transport": transport.description}  # fmt: skip
        source = report_path.read_text(encoding="utf-8")
        log = Campaigns(store).new_log(mailing_list, report.subject, str(report_path), source,
                                       settings_json)  # fmt: skip
        # The campaign id exists once the log has started, before the first message is built.
        pool = build_pool(current, recipe)
        build = campaign_builder(factory, pool, campaign_id=lambda: log.campaign_id)
        options = send_options(current, concurrency, rate, limit, lambda: log.campaign_id)
        with ExitStack() as lock:
            create = log.create
            assert create is not None

            def create_and_lock() -> int:
                campaign_id = create()
                lock.enter_context(one_sender(current, campaign_id))
                return campaign_id

            log.create = create_and_lock
            progress = run_campaign(log, transport, build, pool, options, count)
        if not log.campaign_id:
            out.print("stopped before the server answered: nothing sent, no campaign created")
            raise typer.Exit(130)
        out.print(f"campaign {log.campaign_id}")
        queued = Campaigns(store).get(log.campaign_id).counts["queued"]
        summarise(progress, log.campaign_id, queued)


def _continue(campaign_id: int, statuses: tuple[str, ...], concurrency: int | None,
              rate: float | None, limit: int, outbox: Path | None) -> None:  # fmt: skip
    current = settings()
    transport = choose_transport(current, outbox)
    with open_store() as store, one_sender(current, campaign_id):
        campaigns = Campaigns(store)
        info = campaigns.get(campaign_id)
        if info.status == "cancelled":
            raise InputError(f"campaign {campaign_id} was cancelled")
        mailing_list = store.get_list(info.list_slug)
        report = parse_report(info.source, Path(info.report_path))
        recipe = Recipe(current, report, mailing_list, str(info.settings.get("key", "c")))
        pool = build_pool(current, recipe)
        build = campaign_builder(MessageFactory(recipe), pool, campaign_id=lambda: campaign_id)
        options = send_options(current, concurrency, rate, limit, lambda: campaign_id)
        log = campaigns.log(campaign_id, statuses)
        total = log.count()
        if total == 0:
            out.print(f"campaign {campaign_id}: nothing left to send")
            return
        out.print(f"campaign {campaign_id}: {total} to send via {transport.description}")
        progress = run_campaign(log, transport, build, pool, options, total)
        summarise(progress, campaign_id, campaigns.get(campaign_id).counts["queued"])


@campaigns_app.command("resume", epilog="Example: mailer campaigns resume 3")
def campaigns_resume(
    campaign_id: Annotated[int, typer.Argument(metavar="ID")],
    concurrency: Annotated[int | None, typer.Option(min=1)] = None,
    rate: Annotated[float | None, typer.Option(min=0)] = None,
    limit: Annotated[int, typer.Option(min=0)] = 0,
    outbox: Annotated[Path | None, typer.Option(help="Deliver into this Maildir instead.")] = None,
) -> None:
    """Deliver exactly what is not yet sent (queued and deferred) of an interrupted campaign."""
    _continue(campaign_id, ("queued", "deferred"), concurrency, rate, limit, outbox)


@campaigns_app.command("retry", epilog="Example: mailer campaigns retry 3")
def campaigns_retry(
    campaign_id: Annotated[int, typer.Argument(metavar="ID")],
    concurrency: Annotated[int | None, typer.Option(min=1)] = None,
    rate: Annotated[float | None, typer.Option(min=0)] = None,
    outbox: Annotated[Path | None, typer.Option(help="Deliver into this Maildir instead.")] = None,
) -> None:
    """Try the deferred deliveries (temporary failures) of a campaign again."""
    _continue(campaign_id, ("deferred",), concurrency, rate, 0, outbox)


@campaigns_app.command("ls", epilog="Example: mailer campaigns ls")
def campaigns_ls() -> None:
    """List campaigns with their status and counts per delivery state."""
    with open_store() as store:
        infos = Campaigns(store).all()
    if not infos:
        out.print("no campaigns yet: mailer send REPORT --list LIST")
        return
    table = Table("id", "list", "status", "queued", "sent", "deferred", "failed", "skipped",
                  "created", "subject", box=None, header_style="bold")  # fmt: skip
    for i in infos:
        counts = [str(i.counts[k]) for k in ("queued", "sent", "deferred", "failed", "skipped")]
        table.add_row(str(i.id), i.list_slug, i.status, *counts, i.created_at, i.subject)
    out.print(table)


@campaigns_app.command("show", epilog="Example: mailer campaigns show 3")
def campaigns_show(campaign_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Show a campaign: counts per state, failures with codes and replies, bounces and
    unsubscribes it caused."""
    with open_store() as store:
        campaigns = Campaigns(store)
        info = campaigns.get(campaign_id)
        failures = campaigns.failures(campaign_id)
        fallout = campaign_fallout(store, campaign_id)
    lines = [
        f"campaign {info.id}: {info.subject}",
        f"list:     {info.list_slug}",
        f"status:   {info.status}" + (f" ({info.reason})" if info.reason else ""),
        f"report:   {info.report_path}",
        f"created:  {info.created_at}; started {info.started_at or '-'};"
        f" finished {info.finished_at or '-'}",
        "counts:   " + ", ".join(f"{n} {k}" for k, n in info.counts.items()),
    ]
    out.print("\n".join(lines), markup=False)
    if failures:
        out.print("failures:")
        for f in failures:
            out.print(f"  {f.email}\t{f.status}\t{f.code or '-'}\t{f.attempts} attempts\t{f.error}",
                      markup=False)  # fmt: skip
    if fallout:
        out.print("bounces and unsubscribes:")
        for event in fallout:
            line = f"  {event.at}\t{event.kind}\t{event.email}\t{event.detail}"
            out.print(line, markup=False)

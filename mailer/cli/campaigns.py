"""CLI commands that follow campaigns: campaigns ls, show, resume, retry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mailer.bounces.fallout import campaign_fallout
from mailer.cli.common import finite, open_db, out, settings
from mailer.cli.send import run, summarise
from mailer.config.checks import MAX_CONCURRENCY
from mailer.db.database import MAX_ID
from mailer.errors import NotFoundError
from mailer.send import service
from mailer.send.campaigns import Campaigns
from mailer.send.service import Overrides, Session

app = typer.Typer(help="Follow, resume and retry campaigns.", no_args_is_help=True)


def _known(campaign_id: int) -> int:
    """``campaign_id``, unless no campaign can have it (SQLite keys end at 2**63 - 1)."""
    if not 0 < campaign_id <= MAX_ID:
        raise NotFoundError("campaign", str(campaign_id), "see `mailer campaigns ls`")
    return campaign_id


def _continue(campaign_id: int, statuses: Sequence[str], overrides: Overrides) -> None:
    _known(campaign_id)

    def starting(total: int, transport: str) -> None:
        out.print(f"campaign {campaign_id}: {total} to send via {transport}", markup=False)

    with open_db() as database:
        session = Session(settings(), database)
        outcome = run(session, lambda: service.continue_campaign(
            session, campaign_id, statuses, overrides, starting))  # fmt: skip
    if outcome.progress.total == 0:
        out.print(f"campaign {campaign_id}: nothing left to send")
        return
    summarise(outcome)


CampaignId = Annotated[int, typer.Argument(metavar="ID")]
Concurrency = Annotated[
    int | None, typer.Option(min=1, max=MAX_CONCURRENCY, help="Default: the campaign's.")
]
Rate = Annotated[
    float | None, typer.Option(min=0, callback=finite, help="Default: the campaign's.")
]
Outbox = Annotated[Path | None, typer.Option(help="Deliver into this Maildir instead.")]


@app.command("resume", epilog="Example: mailer campaigns resume 3")
def campaigns_resume(
    campaign_id: CampaignId,
    concurrency: Concurrency = None,
    rate: Rate = None,
    limit: Annotated[
        int, typer.Option(min=0, max=MAX_ID, help="Send at most N now; resume the rest later.")
    ] = 0,
    outbox: Outbox = None,
) -> None:
    """Deliver exactly what is not yet sent (queued and deferred) of an interrupted campaign."""
    _continue(campaign_id, service.RESUME, Overrides(concurrency, rate, limit, outbox))


@app.command("retry", epilog="Example: mailer campaigns retry 3")
def campaigns_retry(
    campaign_id: CampaignId, concurrency: Concurrency = None, rate: Rate = None,
    outbox: Outbox = None,
) -> None:  # fmt: skip
    """Try the deferred deliveries (temporary failures) of a campaign again."""
    _continue(campaign_id, service.RETRY, Overrides(concurrency, rate, 0, outbox))


@app.command("ls", epilog="Example: mailer campaigns ls")
def campaigns_ls() -> None:
    """List campaigns with their status and counts per delivery state."""
    with open_db(create=False) as database:
        infos = Campaigns(database).all()
    if not infos:
        out.print("no campaigns yet: mailer send REPORT --list LIST")
        return
    table = Table("id", "list", "status", "queued", "sent", "deferred", "failed", "skipped",
                  "created", "subject", box=None, header_style="bold")  # fmt: skip
    for i in infos:
        counts = [str(i.counts[k]) for k in ("queued", "sent", "deferred", "failed", "skipped")]
        table.add_row(str(i.id), i.list_slug, i.status, *counts, i.created_at, i.subject)
    out.print(table)


@app.command("show", epilog="Example: mailer campaigns show 3")
def campaigns_show(campaign_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Show a campaign: counts per state, failures with codes and replies, bounces and
    unsubscribes it caused."""
    with open_db(create=False) as database:
        campaigns = Campaigns(database)
        info = campaigns.get(_known(campaign_id))
        failures = campaigns.failures(campaign_id)
        fallout = campaign_fallout(database, campaign_id)
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

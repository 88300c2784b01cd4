"""CLI commands that follow campaigns: campaigns ls, show, resume, retry, work."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from mailer.bounces.fallout import campaign_fallout
from mailer.cli.common import Typer, err, finite, open_db, out, settings
from mailer.cli.output import (
    DELIVERY_COUNTS,
    campaign_detail,
    campaign_record,
    local,
    plural,
    rows,
    time_cell,
    write_json,
)
from mailer.cli.send import run, summarise
from mailer.config.checks import MAX_CONCURRENCY
from mailer.db.database import MAX_ID
from mailer.errors import InputError, NotFoundError
from mailer.send import campaign_editions, service
from mailer.send.campaign_editions import EditionCounts
from mailer.send.campaign_workers import Worker, workers
from mailer.send.campaigns import CampaignInfo, Campaigns
from mailer.send.claims import worker_name
from mailer.send.service import Overrides, Session
from mailer.send.welcome import welcomes

app = Typer(help="Follow, resume and retry campaigns.", no_args_is_help=True)


def known_campaign(campaign_id: int) -> int:
    """``campaign_id``, unless no campaign can have it (SQLite keys end at 2**63 - 1)."""
    if not 0 < campaign_id <= MAX_ID:
        raise NotFoundError("campaign", str(campaign_id), "see `mailer campaigns ls`")
    return campaign_id


def _continue(
    campaign_id: int, statuses: Sequence[str], overrides: Overrides, worker: str = ""
) -> None:
    known_campaign(campaign_id)

    def starting(total: int, transport: str) -> None:
        what = f"{total} queued, this worker takes its share" if worker else f"{total} to send"
        out.print(f"campaign {campaign_id}: {what} via {transport}", markup=False)

    with open_db() as database:
        session = Session(settings(), database)
        outcome = run(session, lambda: service.continue_campaign(
            session, campaign_id, statuses, overrides, starting, worker=worker))  # fmt: skip
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


@app.command("work", epilog="Example: mailer campaigns work 3   (on each sending host)")
def campaigns_work(
    campaign: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="The campaign; - reads it from standard input (as `send --workers` starts its"
            " workers before the campaign exists), and nothing there means nothing to do.",
        ),
    ],
    concurrency: Concurrency = None,
    rate: Rate = None,
    outbox: Outbox = None,
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="This worker's name; default HOST:PID.")
    ] = None,
) -> None:
    """Be one of many processes sending a campaign, on this host or others with the same
    database: claim batches of its queued deliveries and send them through this host's
    [smtp] relay. The campaign's rate is shared by the workers alive; a dead worker's batch is
    taken again after [send] lease_seconds."""
    if campaign == "-":
        campaign = sys.stdin.readline().strip() if sys.stdin is not None else ""  # <&-
        if not campaign:
            return  # the process that started this one stopped before its campaign existed
    if not (campaign.isascii() and campaign.isdigit()):
        raise InputError(f"campaign id {campaign!r}: a number, or - to read it from stdin")
    number = campaign.lstrip("0") or "0"
    if len(number) > 19:  # as show and resume say it (int() refuses thousands of digits)
        raise NotFoundError("campaign", number, "see `mailer campaigns ls`")
    worker = name or worker_name()
    _continue(int(number), ("queued",), Overrides(concurrency, rate, 0, outbox), worker)


AsJson = Annotated[bool, typer.Option("--json", help="JSON with stable keys, for scripts.")]


@app.command("ls", epilog="Example: mailer campaigns ls --json")
def campaigns_ls(as_json: AsJson = False) -> None:
    """List campaigns with their status and counts per delivery state."""
    with open_db(create=False) as database:
        infos = Campaigns(database).all()
    if as_json:
        write_json([campaign_record(i) for i in infos])
        return
    if not infos:
        err.print("no campaigns yet: mailer send REPORT --list LIST")
    header = ("id", "list", "kind", "status", *DELIVERY_COUNTS, "created", "subject")
    rows(header, ([str(i.id), "+".join(i.lists), i.kind, _status(i),
                   *(str(i.counts[k]) for k in DELIVERY_COUNTS), time_cell(i.created_at),
                   i.subject] for i in infos))  # fmt: skip


def _status(info: CampaignInfo) -> str:
    """A campaign's status; a scheduled one with its time (and "late" when it waits)."""
    if info.status != "scheduled" or not info.scheduled_at:
        return info.status
    late = " (late)" if info.reason.startswith("late") else ""
    return f"scheduled {time_cell(info.scheduled_at)}{late}"


def _editions(editions: Sequence[EditionCounts]) -> list[str]:
    """One line per edition when there are several: its language, counts and subject."""
    if len(editions) < 2:
        return []
    names = [e.lang + (" (default)" if e.default else "") for e in editions]
    counts = [", ".join(f"{e.counts[k]} {k}" for k in DELIVERY_COUNTS) for e in editions]
    wide, wider = max(map(len, names)), max(map(len, counts))
    rows = zip(names, counts, editions, strict=True)
    return ["editions:"] + [f"  {name:<{wide}}  {n:<{wider}}  {e.subject}" for name, n, e in rows]


def _workers(working: Sequence[Worker]) -> list[str]:
    """One line per worker process that claimed deliveries (`campaigns work`)."""
    if not working:
        return []
    lines = ["workers:"]
    for w in working:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(w.counts.items())) or "nothing yet"
        state = f"finished {local(w.finished_at)}" if w.finished_at else f"seen {local(w.seen_at)}"
        lines.append(f"  {w.name}  {counts}; {state}")
    return lines


def _welcome(slug: str, current: str | None) -> str:
    if current is not None:
        return f"kind:     welcome mail of {current}: each reader who joins gets it once"
    return f"kind:     welcome mail, replaced: new readers of {slug} no longer get it"


@app.command("show", epilog="Example: mailer campaigns show 3")
def campaigns_show(campaign_id: CampaignId, as_json: AsJson = False) -> None:
    """Show a campaign: counts per state (and per edition, when it has several languages),
    failures with codes and replies, bounces and unsubscribes it caused."""
    with open_db(create=False) as database:
        campaigns = Campaigns(database)
        info = campaigns.get(known_campaign(campaign_id))
        failures = campaigns.failures(campaign_id, limit=None if as_json else 50)
        fallout = campaign_fallout(database, campaign_id)
        editions = campaign_editions.counts(database, campaign_id)
        welcoming = welcomes(database).get(campaign_id)
        working = workers(database, campaign_id)
    if as_json:
        write_json(campaign_detail(info, failures, fallout, editions, working))
        return
    lines = [
        f"campaign {info.id}: {info.subject}",
        f"lists:    {' + '.join(info.lists)}"
        if len(info.lists) > 1
        else f"list:     {info.list_slug}",
        *([f"segment:  {info.segment}"] if info.segment else []),
        *([_welcome(info.list_slug, welcoming)] if info.kind == "welcome" else []),
        f"status:   {info.status}" + (f" ({info.reason})" if info.reason else ""),
        *([f"at:       {local(info.scheduled_at)}"] if info.scheduled_at else []),
        f"report:   {info.report_path}",
        f"created:  {local(info.created_at)}; started {local(info.started_at)};"
        f" finished {local(info.finished_at)}",
        "counts:   " + ", ".join(f"{n} {k}" for k, n in info.counts.items()),
        *_bound(info.settings.get("in_flight_limit")),
        *_editions(editions),
        *_workers(working),
    ]
    out.print("\n".join(lines), markup=False)
    if failures:
        out.print("failures:")
        for f in failures:
            tried = plural(f.attempts, "attempt")
            out.print(f"  {f.email}\t{f.status}\t{f.code or '-'}\t{tried}\t{f.error}",
                      markup=False)  # fmt: skip
    if fallout:
        out.print("bounces and unsubscribes:")
        for event in fallout:
            line = f"  {local(event.at)}\t{event.kind}\t{event.email}\t{event.detail}"
            out.print(line, markup=False)


def _bound(limit: object) -> list[str]:
    """The campaign's recorded bound on the readers a crash may send a second copy."""
    return [f"in flight at most: {limit} (what a crash may send twice)"] if limit else []

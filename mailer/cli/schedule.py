"""CLI commands that change when a campaign goes: campaigns cancel, campaigns reschedule."""

from __future__ import annotations

from typing import Annotated

import typer

from mailer import times
from mailer.cli.campaigns import CampaignId, app, known_campaign
from mailer.cli.common import open_db, out, settings
from mailer.cli.send import in_zone
from mailer.schedule import calendar


@app.command("cancel", epilog="Example: mailer campaigns cancel 4")
def campaigns_cancel(campaign_id: CampaignId) -> None:
    """Cancel a scheduled or paused campaign: nothing more of it is sent."""
    with open_db(create=False) as database:
        calendar.cancel(database, known_campaign(campaign_id))
    out.print(f"campaign {campaign_id} cancelled", markup=False)


@app.command("reschedule", epilog='Example: mailer campaigns reschedule 4 --at "2026-12-02 07:00"')
def campaigns_reschedule(
    campaign_id: CampaignId,
    at: Annotated[str, typer.Option(metavar="TIME", help='New time, e.g. "2026-12-02 07:00".')],
    tz: Annotated[
        str | None, typer.Option(metavar="ZONE", help="Time zone of --at (Europe/Paris).")
    ] = None,
) -> None:
    """Move a scheduled campaign (one waiting because it was late, too) to another time."""
    zone = tz or settings().newsletter.timezone
    when = times.at(at, zone)
    with open_db(create=False) as database:
        calendar.reschedule(database, known_campaign(campaign_id), when)
    out.print(f"campaign {campaign_id} scheduled for {in_zone(when, zone)}", markup=False)

"""The public archive: /archive/, each campaign's stored copy at /archive/{id}, the Atom feed."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mailer.audience import lists
from mailer.compose.translations import accepted
from mailer.db.database import MAX_ID
from mailer.errors import FileInputError
from mailer.models import MAX_LANG
from mailer.send import campaigns
from mailer.web.site import ARCHIVE_CSP, Site


async def home(site: Site, request: Request) -> Response:
    return RedirectResponse(f"{site.prefix}/archive/", 302)


async def archive_index(site: Site, request: Request) -> Response:
    """Every published campaign, newest first, in the visitor's language where it has an
    edition in it, with its preheader as a summary; and the lists a visitor may join."""
    published, forms = await site.db(
        lambda database: (campaigns.public_campaigns(database), lists.public_forms(database))
    )
    summaries = await run_in_threadpool(_summaries, site, published)
    headers = {"Cache-Control": "public, max-age=300"}
    wanted = accepted(request.headers.get("accept-language", ""))  # the campaigns' own editions
    return site.page("archive", 200, headers, site.language(request), campaigns=published,
                     wanted=wanted, forms=forms, summaries=summaries)  # fmt: skip


def _summaries(site: Site, published: list[campaigns.ArchivedCampaign]) -> dict[int, str]:
    """Each campaign's preheader (its default edition's), where it has one."""
    found = {}
    for campaign in published:
        try:
            found[campaign.id] = site.archive.report(campaign).preheader
        except FileInputError:  # stored before front matter had its limits
            continue
    return found


async def archive_page(site: Site, request: Request) -> Response:
    """The copy stored when the campaign was created, as it is: nothing is rendered here. A
    campaign stored before copies were has none, and is not shown. /archive/{id} is its
    default edition, /archive/{id}/{lang} each other one."""
    campaign_id = request.path_params["campaign_id"]
    lang = request.path_params.get("lang", "")
    if not 0 < campaign_id <= MAX_ID or len(lang) > MAX_LANG:
        return site.invalid(request)
    campaign = await site.db(
        lambda database: campaigns.public_campaign(database, campaign_id, lang)
    )
    if campaign is None or not campaign.html:
        return site.invalid(request)
    headers = {"Content-Security-Policy": ARCHIVE_CSP, "Cache-Control": "public, max-age=300"}
    return HTMLResponse(campaign.html, 200, headers)


async def feed(site: Site, request: Request) -> Response:
    body = await site.db(
        lambda database: site.archive.feed(campaigns.public_campaigns(database, 20), database)
    )
    return Response(body, 200, media_type="application/atom+xml; charset=utf-8")

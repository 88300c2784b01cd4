"""The public archive: /archive/, one campaign's stored copy at /archive/{id} (and each of its
editions at /archive/{id}/{lang}), the Atom feed."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mailer.compose.translations import accepted
from mailer.db.database import MAX_ID
from mailer.models import MAX_LANG
from mailer.send import campaigns
from mailer.web.site import ARCHIVE_CSP, Site


async def home(site: Site, request: Request) -> Response:
    return RedirectResponse(f"{site.prefix}/archive/", 302)


async def archive_index(site: Site, request: Request) -> Response:
    """Every published campaign, in the visitor's language where it has an edition in it."""
    published = await site.db(campaigns.public_campaigns)
    headers = {"Cache-Control": "public, max-age=300"}
    wanted = accepted(request.headers.get("accept-language", ""))  # the campaigns' own editions
    return site.page("archive", 200, headers, site.language(request), campaigns=published,
                     wanted=wanted)  # fmt: skip


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
    published = await site.db(lambda database: campaigns.public_campaigns(database, 20))
    body = await run_in_threadpool(site.archive.feed, published)
    return Response(body, 200, media_type="application/atom+xml; charset=utf-8")

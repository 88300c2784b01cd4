"""The public archive: /archive/, one campaign at /archive/{id}, and the Atom feed."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mailer.send import campaigns
from mailer.web.site import ARCHIVE_CSP, BASE_HEADERS, Site


async def home(site: Site, request: Request) -> Response:
    return RedirectResponse(f"{site.prefix}/archive/", 302)


async def archive_index(site: Site, request: Request) -> Response:
    published = await site.db(campaigns.public_campaigns)
    headers = {"Cache-Control": "public, max-age=300"}
    return site.page("archive", 200, headers, title="Archive", campaigns=published)


async def archive_page(site: Site, request: Request) -> Response:
    campaign_id = request.path_params["campaign_id"]
    campaign = await site.db(lambda database: campaigns.public_campaign(database, campaign_id))
    if campaign is None:
        return site.invalid()
    html = await run_in_threadpool(site.archive.html, campaign)
    headers = {**BASE_HEADERS, "Content-Security-Policy": ARCHIVE_CSP,
               "Cache-Control": "public, max-age=300"}  # fmt: skip
    return HTMLResponse(html, 200, headers)


async def feed(site: Site, request: Request) -> Response:
    published = await site.db(lambda database: campaigns.public_campaigns(database, 20))
    body = await run_in_threadpool(site.archive.feed, published)
    return Response(body, 200, BASE_HEADERS, media_type="application/atom+xml")

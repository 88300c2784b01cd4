"""One-click unsubscribe (RFC 8058): any POST to /u/{token} unsubscribes, GET only shows a
button (mail scanners follow links); and resubscribing from the page that follows."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailer.audience.status import Change, Verdict
from mailer.models import MembershipStatus
from mailer.web.site import PRIVATE, Site, mask


async def unsubscribe(site: Site, request: Request) -> Response:
    found = await site.member(request, "u")
    if found is None:
        return site.invalid()
    mailing_list, member = found.list, found.member
    token = request.path_params["token"]
    context = {"list": mailing_list, "address": mask(member.email), "token": token}
    if request.method != "POST":  # GET and HEAD never unsubscribe: mail scanners follow links
        title = f"Unsubscribe from {mailing_list.name}?"
        return site.page("unsubscribe", 200, PRIVATE, title=title, **context)
    form = await site.form(request)
    detail = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "web"
    await site.move(mailing_list, member, Change.UNSUBSCRIBE, detail)
    title = "You have been unsubscribed"
    return site.page("unsubscribed", 200, PRIVATE, title=title, **context)


async def resubscribe(site: Site, request: Request) -> Response:
    found = await site.member(request, "u")
    if found is None:
        return site.invalid()
    mailing_list, member = found.list, found.member
    change = (Change.RESUBSCRIBE, "web", MembershipStatus.CONFIRMED)
    if await site.move(mailing_list, member, *change) not in (Verdict.CHANGED, Verdict.UNCHANGED):
        return site.invalid()
    token = request.path_params["token"]
    context = {"list": mailing_list, "address": mask(member.email), "token": token}
    return site.page("resubscribed", 200, PRIVATE, title="Welcome back", **context)

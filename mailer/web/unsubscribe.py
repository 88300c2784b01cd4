"""One-click unsubscribe (RFC 8058): any POST to /u/{token} unsubscribes, GET only shows a
button (mail scanners follow links); and resubscribing from the page that follows. A link from a
campaign sent to several lists leaves (and rejoins) each of them the reader is on."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailer.audience.lists import together
from mailer.audience.status import Change, Verdict
from mailer.models import MembershipStatus
from mailer.web.site import PRIVATE, Site, mask


async def unsubscribe(site: Site, request: Request) -> Response:
    found = await site.unsubscribing(request)
    if not found:
        return site.invalid()
    shown, member = together([f.list for f in found]), found[0].member
    token = request.path_params["token"]
    context = {"list": shown, "address": mask(member.email), "token": token}
    if request.method != "POST":  # GET and HEAD never unsubscribe: mail scanners follow links
        title = f"Unsubscribe from {shown.name}?"
        return site.page("unsubscribe", 200, PRIVATE, title=title, **context)
    form = await site.form(request)
    detail = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "web"
    for each in found:
        await site.move(each.list, each.member, Change.UNSUBSCRIBE, detail)
    title = "You have been unsubscribed"
    return site.page("unsubscribed", 200, PRIVATE, title=title, **context)


async def resubscribe(site: Site, request: Request) -> Response:
    found = await site.unsubscribing(request)
    if not found:
        return site.invalid()
    change = (Change.RESUBSCRIBE, "web", MembershipStatus.CONFIRMED)
    verdicts = [await site.move(each.list, each.member, *change) for each in found]
    if not any(v in (Verdict.CHANGED, Verdict.UNCHANGED) for v in verdicts):
        return site.invalid()
    shown, member = together([f.list for f in found]), found[0].member
    token = request.path_params["token"]
    context = {"list": shown, "address": mask(member.email), "token": token}
    return site.page("resubscribed", 200, PRIVATE, title="Welcome back", **context)

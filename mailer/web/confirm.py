"""Double opt-in: GET /c/{token} shows a confirm button, POST confirms the membership."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailer.audience.status import Change
from mailer.models import MembershipStatus
from mailer.web.ratelimit import mask
from mailer.web.site import PRIVATE, Site


async def confirm(site: Site, request: Request) -> Response:
    token = request.path_params["token"]
    found = await site.member(token, "c")
    if found is None:
        return site.invalid()
    mailing_list, member = found
    context = {"list": mailing_list, "address": mask(member.email)}
    if request.method == "GET" and member.status != MembershipStatus.CONFIRMED:
        title = f"Confirm your subscription to {mailing_list.name}"
        return site.page("confirm", 200, PRIVATE, title=title, **context)
    if request.method == "POST":
        await site.move(mailing_list, member, Change.CONFIRM, "web")
    title = "Your subscription is confirmed"
    return site.page("confirmed", 200, PRIVATE, title=title, **context)

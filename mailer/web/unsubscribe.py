"""One-click unsubscribe (RFC 8058) at /u/{token}, and resubscribing from the page that follows."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailer.audience.lists import together
from mailer.audience.status import Change, Verdict
from mailer.models import MembershipStatus
from mailer.web.site import PRIVATE, Found, Site, mask


async def unsubscribe(site: Site, request: Request) -> Response:
    found = await site.unsubscribing(request)
    if not found:
        return site.invalid(request)
    shown, member = together([f.list for f in found]), found[0].member
    token = request.path_params["token"]
    lang = site.language(request, member.lang)  # the reader's language, else the browser's
    context = {"list": shown, "address": mask(member.email), "token": token}
    if request.method != "POST":  # GET and HEAD never unsubscribe: mail scanners follow links
        return site.page("unsubscribe", 200, PRIVATE, lang, **context)
    form = await site.form(request)
    detail = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "web"
    # A link from a campaign sent to several lists leaves each of them the reader is on.
    moved = [await site.move(f.list, f.member, Change.UNSUBSCRIBE, detail) for f in found]
    left = [f for f, verdict in zip(found, moved, strict=True) if verdict is Verdict.CHANGED]
    # "Subscribe again" rejoins what this link left (a replay: what it left last), never a
    # list the reader had left before.
    ids = ",".join(str(f.list.id) for f in left or _last_left(found))
    return site.page("unsubscribed", 200, PRIVATE, lang, left=ids, **context)


async def resubscribe(site: Site, request: Request) -> Response:
    found = await site.unsubscribing(request)
    if not found:
        return site.invalid(request)
    named = (await site.form(request)).get("lists")
    if isinstance(named, str):
        back = [f for f in found if str(f.list.id) in named.split(",")]
    else:  # a page from before the field: the lists the link left last
        back = _last_left(found)
    change = (Change.RESUBSCRIBE, "web", MembershipStatus.CONFIRMED)
    verdicts = [await site.move(each.list, each.member, *change) for each in back]
    if not any(v in (Verdict.CHANGED, Verdict.UNCHANGED) for v in verdicts):
        return site.invalid(request)
    shown, member = together([f.list for f in back]), found[0].member
    token = request.path_params["token"]
    context = {"list": shown, "address": mask(member.email), "token": token}
    lang = site.language(request, member.lang)
    return site.page("resubscribed", 200, PRIVATE, lang, **context)


def _last_left(found: list[Found]) -> list[Found]:
    """The lists of a link the reader left last (at the latest time among those they left)."""
    gone = [f for f in found if f.member.status == MembershipStatus.UNSUBSCRIBED]
    latest = max((f.member.updated_at for f in gone), default="")
    return [f for f in gone if f.member.updated_at == latest]

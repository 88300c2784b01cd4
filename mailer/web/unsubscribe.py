"""One-click unsubscribe (RFC 8058) at /u/{token}, and resubscribing from the page that follows."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailer.audience.lists import together
from mailer.audience.status import LINK_PAGE, ONE_CLICK, Change, Verdict, left_by_link
from mailer.db.database import Database
from mailer.models import MembershipStatus, SubscriberStatus
from mailer.web.site import PRIVATE, Found, Site, mask
from mailer.web.subscribe import FORM_HEADERS, from_here

# Private; and its "Subscribe again" form sends our Origin, which the resubscribe asks for
# (under no-referrer a browser sends "null").
FORM_PAGE = {**PRIVATE, **FORM_HEADERS}


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
    detail = ONE_CLICK if form.get("List-Unsubscribe") == "One-Click" else LINK_PAGE
    # A link from a campaign sent to several lists leaves each of them the reader is on.
    campaign = _campaign_of(site, token)
    moved = [await site.move(f.list, f.member, Change.UNSUBSCRIBE, detail, campaign_id=campaign)
             for f in found]  # fmt: skip
    left = [f for f, verdict in zip(found, moved, strict=True) if verdict is Verdict.CHANGED]
    # "Subscribe again" rejoins what this link left (a replay: what it left last), never a
    # list the reader had left before; a reader bounced or blocked is offered nothing.
    back = left if left else await _left_here(site, found, campaign)
    ids = ",".join(str(f.list.id) for f in back if _active(f))
    return site.page("unsubscribed", 200, FORM_PAGE, lang, left=ids, **context)


async def resubscribe(site: Site, request: Request) -> Response:
    """Only from our own page (its Origin), and only the lists this link's unsubscribe left
    last: a forwarded message's link, or a forged field, cannot undo the editor's removal, a
    departure from the preferences page, or an earlier unsubscribe from another message."""
    found = await site.unsubscribing(request)
    if not found:
        return site.invalid(request)
    if not from_here(site, request):
        return site.refused(request)
    here = await _left_here(site, found, _campaign_of(site, request.path_params["token"]))
    named = (await site.form(request)).get("lists")
    if isinstance(named, str):  # the page's field narrows, never widens, what may come back
        here = [f for f in here if str(f.list.id) in named.split(",")]
    change = (Change.RESUBSCRIBE, "web", MembershipStatus.CONFIRMED)
    verdicts = [await site.move(each.list, each.member, *change) for each in here]
    if not any(v in (Verdict.CHANGED, Verdict.UNCHANGED) for v in verdicts):
        return site.invalid(request)
    shown, member = together([f.list for f in here]), found[0].member
    token = request.path_params["token"]
    context = {"list": shown, "address": mask(member.email), "token": token}
    lang = site.language(request, member.lang)
    return site.page("resubscribed", 200, PRIVATE, lang, **context)


def _campaign_of(site: Site, token: str) -> int | None:
    """The campaign a link of a campaign sent to several lists names; None for a list's."""
    subject = site.signer.check(token)
    return subject.list_id if subject is not None and subject.purpose == "k" else None


async def _left_here(site: Site, found: list[Found], campaign: int | None) -> list[Found]:
    """The link's lists the reader left last through an unsubscribe link (or came back to
    from its page since: pressed twice, the answer is the same), while active."""
    reader, ids = found[0].member.id, [f.list.id for f in found]

    def by_link(database: Database) -> set[int]:
        with database.transaction(exclusive=False) as db:
            return left_by_link(db, reader, ids, campaign)

    linked = await site.db(by_link)
    return [f for f in found if f.list.id in linked and _active(f)]


def _active(found: Found) -> bool:
    return found.member.subscriber_status == SubscriberStatus.ACTIVE

"""Double opt-in: GET /c/{token} shows a confirm button, POST confirms the membership."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailer.audience import subscriptions
from mailer.audience.status import Verdict
from mailer.db.database import Database
from mailer.models import MembershipStatus, SubscriberStatus
from mailer.send.welcome import joining
from mailer.web.site import PRIVATE, Site, mask

DAY = 86_400.0


async def confirm(site: Site, request: Request) -> Response:
    found = await site.member(request, "c")
    if found is None:
        return site.invalid(request)
    mailing_list, member = found.list, found.member
    context = {"list": mailing_list, "address": mask(member.email)}
    max_age = site.settings.web.confirm_days * DAY
    lang = site.language(request, member.lang)
    done = site.page("confirmed", 200, PRIVATE, lang, **context)
    if request.method != "POST":  # GET and HEAD change nothing
        active = member.subscriber_status == SubscriberStatus.ACTIVE
        if member.status == MembershipStatus.CONFIRMED and active:
            return done
        if not subscriptions.confirmable(member, found.issued, site.clock(), max_age):
            return site.invalid(request)
        return site.page("confirm", 200, PRIVATE, lang, **context)
    # As in the form: X-Forwarded-For from a proxy on this machine, else the peer itself.
    ip = request.client.host if request.client else ""
    link = subscriptions.Link(found.issued, site.clock(), max_age, site.signer.secret, ip)

    def confirm(database: Database) -> Verdict:
        with joining(database, member.id, mailing_list.id):  # the welcome: in the same commit
            return subscriptions.confirm(database, member, mailing_list.id, link)

    verdict = await site.db(confirm)
    return done if verdict in (Verdict.CHANGED, Verdict.UNCHANGED) else site.invalid(request)

"""The public subscribe form /s/{list}: rate limits, a honeypot, and an answer that never says
whether an address was already on the list."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailer.audience import lists, subscriptions
from mailer.audience.addresses import normalise
from mailer.errors import AddressError
from mailer.models import Candidate
from mailer.web.site import Site


async def subscribe(site: Site, request: Request) -> Response:
    slug = request.path_params["slug"]
    mailing_list = await site.db(lambda database: lists.find(database, slug))
    if mailing_list is None:
        return site.invalid()
    context: dict[str, Any] = {
        "list": mailing_list,
        "title": f"Subscribe to {mailing_list.name}",
    }
    if request.method == "GET":
        return site.page("subscribe", error="", email="", name="", **context)
    client = request.client.host if request.client else "unknown"
    if not site.per_ip.allow(client):
        headers = {"Retry-After": str(int(site.per_ip.period))}
        return site.page("busy", 429, headers, title="Too many attempts")
    form = await site.form(request)
    done = site.page("subscribed", **context)
    if str(form.get("website") or ""):
        return done  # the honeypot: only robots fill in a field that humans never see
    email, name = str(form.get("email") or ""), " ".join(str(form.get("name") or "").split())
    try:
        address = await run_in_threadpool(
            normalise, email, check_dns=site.settings.addresses.check_dns
        )
    except AddressError as error:
        reason = error.reason
        return site.page("subscribe", 400, error=reason, email=email, name=name, **context)
    if not site.per_address.allow(address.email):
        return done  # the same answer: the address is not bombed, the sender learns nothing
    candidate = Candidate(address.email, address.smtputf8, name[:200] or None)
    pending = await site.db(
        lambda database: subscriptions.request(database, mailing_list, candidate)
    )
    if pending is not None:
        site.confirmations.put(mailing_list, pending)
    return done

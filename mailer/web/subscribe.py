"""The public subscribe form /s/{list}: open lists only, our own pages only, double opt-in."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailer.audience import lists, subscriptions
from mailer.audience.addresses import Address, normalise
from mailer.compose import translations
from mailer.compose.report import LANG
from mailer.errors import AddressError
from mailer.models import MAX_LANG, Candidate, Consent, MailingList, Member
from mailer.web.ratelimit import address_key
from mailer.web.site import Site

MAX_NAME = 200
# The form's page lets the browser send its Origin with the form (no-referrer would make it
# "null"); other sites still learn nothing of where a reader came from.
FORM_HEADERS = {"Referrer-Policy": "same-origin"}
DEFAULT_PORTS = {"http": 80, "https": 443}


async def subscribe(site: Site, request: Request) -> Response:
    slug = request.path_params["slug"]
    mailing_list = await site.db(lambda database: lists.find(database, slug))
    if mailing_list is None or not mailing_list.public_form:
        return site.invalid(request)  # a closed form answers exactly as an unknown list does
    context: dict[str, Any] = {"list": mailing_list}
    lang = site.language(request)
    if request.method != "POST":  # GET and HEAD change nothing, not even the rate limits
        return site.page("subscribe", 200, FORM_HEADERS, lang, error="", email="", name="",
                         **context)  # fmt: skip
    if not from_here(site, request):
        return site.refused(request)  # another site's page cannot sign its readers up
    # The client as Starlette sees it: uvicorn takes X-Forwarded-For from a proxy on this
    # machine (127.0.0.1, ::1); behind a proxy elsewhere, this is the proxy.
    client = request.client.host if request.client else ""
    if not site.per_ip.allow(client or "unknown"):
        headers = {"Retry-After": str(int(site.per_ip.period))}
        return site.page("busy", 429, headers, lang, too_many=True)
    form = await site.form(request)
    reader_lang = form_language(str(form.get("lang") or ""), lang)
    lang = translations.best_language([reader_lang]) or lang
    done = site.page("subscribed", 200, None, lang, **context)
    if str(form.get("website") or ""):
        return done  # the honeypot: only robots fill in a field that humans never see
    email, name = str(form.get("email") or ""), clean_name(str(form.get("name") or ""))
    try:
        address = await typed_address(site, email)
    except AddressError as error:
        shown = printable(email)
        return site.page("subscribe", 400, FORM_HEADERS, lang, error=error.reason, email=shown,
                         name=name, **context)  # fmt: skip
    if not site.per_address.allow(address_key(address.email)):
        return done  # the same answer: the address is not bombed, the sender learns nothing
    consent = Consent("form", ip=client)  # joined when the request is stored
    candidate = Candidate(address.email, address.smtputf8, name or None, consent=consent,
                          lang=reader_lang)  # fmt: skip
    site.confirmations.put(mailing_list, lambda: ask(site, mailing_list, candidate))
    return done  # the database hears of it after this answer: the same work for every address


def form_language(sent: str, page: str) -> str:
    """The reader's language as the form says it (its hidden ``lang`` field: the page's
    language, or a language a workspace's own form offers), else the page's."""
    sent = sent.strip()
    return sent if len(sent) <= MAX_LANG and LANG.fullmatch(sent) else page


def ask(
    site: Site, mailing_list: MailingList, candidate: Candidate, detail: str = "web form"
) -> Member | None:
    """A request to join (the form's, or a list ticked on the preferences page), done by the
    confirmation task after the answer went out: the member to mail a confirmation to, or
    None. The message is written in the language of the page."""
    member = site.run(
        lambda database: subscriptions.request(database, mailing_list, candidate, detail)
    )
    return replace(member, lang=candidate.lang or member.lang) if member is not None else None


def clean_name(raw: str) -> str:
    """The form's name is anyone's text: control characters out, whitespace collapsed, at most
    MAX_NAME characters."""
    kept = "".join(c for c in raw if c.isspace() or unicodedata.category(c) != "Cc")
    return " ".join(kept.split())[:MAX_NAME].rstrip()


async def typed_address(site: Site, typed: str) -> Address:
    """An address typed into one of our forms, checked and normalised (in a thread: DNS when
    [addresses] check_dns is on); AddressError says why not."""
    if printable(typed) != typed:
        raise AddressError(typed, "it contains control characters")
    return await run_in_threadpool(normalise, typed, check_dns=site.settings.addresses.check_dns)


def printable(text: str) -> str:
    """``text`` without C0 controls, DEL and C1 controls, to show back on a page."""
    return "".join(c for c in text if unicodedata.category(c) != "Cc")


def from_here(site: Site, request: Request) -> bool:
    """Whether the browser says the form was sent from our own page: its Origin (or, when it
    sends none, its Referer) is the origin of [newsletter] base_url, or of the address this
    server listens on. Browsers send Origin with every POST; a page that hides it sends "null",
    which is refused. The Host header is the client's word, so it is not trusted here: a
    rebound name (DNS rebinding) is not our origin."""
    sent = request.headers.get("origin") or request.headers.get("referer") or ""
    found = origin(sent)
    own = {origin(site.settings.newsletter.base_url)}
    server = request.scope.get("server")
    if server and server[1] is not None:
        host = f"[{server[0]}]" if ":" in str(server[0]) else server[0]
        own.add(origin(f"{request.url.scheme}://{host}:{server[1]}"))
    return found is not None and found in own


def origin(url: str) -> str | None:
    """scheme://host[:port] of a URL, its default port left out; None for "null" or nonsense."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    host = f"[{host}]" if ":" in host else host
    shown = "" if port in (None, DEFAULT_PORTS[scheme]) else f":{port}"
    return f"{scheme}://{host}{shown}"

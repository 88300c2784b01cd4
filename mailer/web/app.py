"""The readers' HTTP side: one-click unsubscribe, opt-in confirmation, subscribe form, archive."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from mailer.audience import lists, members, subscriptions
from mailer.audience.addresses import normalise
from mailer.audience.status import Change, set_membership
from mailer.compose.templates import template_dirs
from mailer.config import Settings
from mailer.db.database import Database
from mailer.errors import AddressError, MailerError
from mailer.models import Candidate, MailingList, Member, MembershipStatus
from mailer.send import campaigns
from mailer.send.confirmation import Confirmations
from mailer.send.transports import choose_transport
from mailer.send.types import Transport
from mailer.tokens import Signer, load_secret
from mailer.web.archive import Archive
from mailer.web.pages import Pages
from mailer.web.ratelimit import SlidingWindow, mask

log = logging.getLogger("mailer.web")
T = TypeVar("T")
MAX_FORM_BYTES = 16_384
BASE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none';"
    " frame-ancestors 'none'"
)
ARCHIVE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:;"
    " form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}


class Site:
    """The endpoints over one workspace; the store is opened per request in the thread pool."""

    def __init__(
        self,
        settings: Settings,
        ip_limit: tuple[int, float],
        address_limit: tuple[int, float],
        transport: Transport | None,
    ) -> None:
        self.settings = settings
        self.prefix = urlsplit(settings.newsletter.base_url).path.rstrip("/")
        self.signer = Signer(load_secret(settings.workspace))
        self.pages = Pages(settings, self.prefix)
        self.archive = Archive(settings, self.prefix)
        self.per_ip = SlidingWindow(*ip_limit)
        self.per_address = SlidingWindow(*address_limit)
        self.transport: Transport = transport or choose_transport(settings)
        self.confirmations = Confirmations(
            settings, self.transport, template_dirs(settings.templates_dir), on_problem=_log_problem
        )

    # plumbing

    async def db(self, work: Callable[[Database], T]) -> T:
        def run() -> T:
            settings = self.settings
            with Database(settings.database_path, settings.database.busy_timeout) as database:
                return work(database)

        return await run_in_threadpool(run)

    def page(
        self,
        template: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        /,
        **context: Any,
    ) -> HTMLResponse:
        merged = {**BASE_HEADERS, "Content-Security-Policy": PAGE_CSP, **(headers or {})}
        return HTMLResponse(self.pages.render(template, **context), status, merged)

    def invalid(self) -> HTMLResponse:
        """The one answer to every bad token, unknown list or campaign: nothing to learn."""
        return self.page("invalid", 404, PRIVATE, title="This link is not valid")

    async def form(self, request: Request) -> FormData:
        """The posted fields; a body we cannot parse is an empty form (one-click still works)."""
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            raise HTTPException(413)
        try:
            return await request.form(max_files=0, max_fields=20)
        except (HTTPException, ValueError, UnicodeDecodeError):
            return FormData()

    async def member(self, token: str, purpose: str) -> tuple[MailingList, Member] | None:
        subject = self.signer.check(token)
        if subject is None or subject.purpose != purpose:
            return None

        def load(database: Database) -> tuple[MailingList, Member] | None:
            found = lists.by_id(database, subject.list_id)
            member = found and members.by_id(database, subject.list_id, subject.subscriber_id)
            return (found, member) if found and member else None

        return await self.db(load)

    async def move(
        self,
        mailing_list: MailingList,
        member: Member,
        change: Change,
        detail: str,
        to: MembershipStatus | None = None,
    ) -> None:
        await self.db(
            lambda database: set_membership(
                database, change, member.id, mailing_list.id, to=to, detail=detail
            )
        )

    # unsubscribe: GET shows a button, any POST (RFC 8058 one-click or the button) unsubscribes

    async def unsubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = await self.member(token, "u")
        if found is None:
            return self.invalid()
        mailing_list, member = found
        context = {"list": mailing_list, "address": mask(member.email), "token": token}
        if request.method == "GET":
            title = f"Unsubscribe from {mailing_list.name}?"
            return self.page("unsubscribe", 200, PRIVATE, title=title, **context)
        form = await self.form(request)
        detail = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "web"
        await self.move(mailing_list, member, Change.UNSUBSCRIBE, detail)
        title = "You have been unsubscribed"
        return self.page("unsubscribed", 200, PRIVATE, title=title, **context)

    async def resubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = await self.member(token, "u")
        if found is None:
            return self.invalid()
        mailing_list, member = found
        await self.move(mailing_list, member, Change.RESUBSCRIBE, "web", MembershipStatus.CONFIRMED)
        context = {"list": mailing_list, "address": mask(member.email), "token": token}
        return self.page("resubscribed", 200, PRIVATE, title="Welcome back", **context)

    # double opt-in: GET shows a button, POST confirms

    async def confirm(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = await self.member(token, "c")
        if found is None:
            return self.invalid()
        mailing_list, member = found
        context = {"list": mailing_list, "address": mask(member.email)}
        if request.method == "GET" and member.status != MembershipStatus.CONFIRMED:
            title = f"Confirm your subscription to {mailing_list.name}"
            return self.page("confirm", 200, PRIVATE, title=title, **context)
        if request.method == "POST":
            await self.move(mailing_list, member, Change.CONFIRM, "web")
        title = "Your subscription is confirmed"
        return self.page("confirmed", 200, PRIVATE, title=title, **context)

    # the subscribe form

    async def subscribe(self, request: Request) -> Response:
        slug = request.path_params["slug"]
        mailing_list = await self.db(lambda database: lists.find(database, slug))
        if mailing_list is None:
            return self.invalid()
        context: dict[str, Any] = {
            "list": mailing_list,
            "title": f"Subscribe to {mailing_list.name}",
        }
        if request.method == "GET":
            return self.page("subscribe", error="", email="", name="", **context)
        client = request.client.host if request.client else "unknown"
        if not self.per_ip.allow(client):
            headers = {"Retry-After": str(int(self.per_ip.period))}
            return self.page("busy", 429, headers, title="Too many attempts")
        form = await self.form(request)
        done = self.page("subscribed", **context)
        if str(form.get("website") or ""):
            return done  # the honeypot: only robots fill in a field that humans never see
        email, name = str(form.get("email") or ""), " ".join(str(form.get("name") or "").split())
        try:
            address = await run_in_threadpool(
                normalise, email, check_dns=self.settings.addresses.check_dns
            )
        except AddressError as error:
            reason = error.reason
            return self.page("subscribe", 400, error=reason, email=email, name=name, **context)
        if not self.per_address.allow(address.email):
            return done  # the same answer: the address is not bombed, the sender learns nothing
        candidate = Candidate(address.email, address.smtputf8, name[:200] or None)
        pending = await self.db(
            lambda database: subscriptions.request(database, mailing_list, candidate)
        )
        if pending is not None:
            self.confirmations.put(mailing_list, pending)
        return done

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.confirmations.drain(30.0)  # finish what was promised, within reason

    # the archive

    async def home(self, request: Request) -> Response:
        return RedirectResponse(f"{self.prefix}/archive/", 302)

    async def archive_index(self, request: Request) -> Response:
        published = await self.db(campaigns.public_campaigns)
        headers = {"Cache-Control": "public, max-age=300"}
        return self.page("archive", 200, headers, title="Archive", campaigns=published)

    async def archive_page(self, request: Request) -> Response:
        campaign_id = request.path_params["campaign_id"]
        campaign = await self.db(lambda database: campaigns.public_campaign(database, campaign_id))
        if campaign is None:
            return self.invalid()
        html = await run_in_threadpool(self.archive.html, campaign)
        headers = {**BASE_HEADERS, "Content-Security-Policy": ARCHIVE_CSP,
                   "Cache-Control": "public, max-age=300"}  # fmt: skip
        return HTMLResponse(html, 200, headers)

    async def feed(self, request: Request) -> Response:
        published = await self.db(lambda database: campaigns.public_campaigns(database, 20))
        body = await run_in_threadpool(self.archive.feed, published)
        return Response(body, 200, BASE_HEADERS, media_type="application/atom+xml")

    async def not_found(self, request: Request, error: Exception) -> Response:
        return self.invalid()

    async def failure(self, request: Request, error: Exception) -> Response:
        log.error("%s %s: %s", request.method, request.url.path, error)
        headers = {"Retry-After": "60"}
        return self.page("busy", 503, headers, title="Please try again in a minute")


def _log_problem(member: Member, problem: str) -> None:
    log.warning("confirmation to subscriber %d: %s", member.id, problem)


def create_app(
    settings: Settings,
    *,
    ip_limit: tuple[int, float] = (20, 3600.0),
    address_limit: tuple[int, float] = (3, 3600.0),
    transport: Transport | None = None,
) -> Starlette:
    """The ASGI app; limits are (requests, seconds) of the subscribe form per IP and address."""
    site = Site(settings, ip_limit, address_limit, transport)
    routes = [
        Route("/", site.home),
        Route("/u/{token}", site.unsubscribe, methods=["GET", "POST"]),
        Route("/u/{token}/resubscribe", site.resubscribe, methods=["POST"]),
        Route("/c/{token}", site.confirm, methods=["GET", "POST"]),
        Route("/s/{slug}", site.subscribe, methods=["GET", "POST"]),
        Route("/archive/", site.archive_index),
        Route("/archive/feed.xml", site.feed),
        Route("/archive/{campaign_id:int}", site.archive_page),
    ]
    handlers = {404: site.not_found, MailerError: site.failure}
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=site.lifespan)
    app.state.site = site
    return app

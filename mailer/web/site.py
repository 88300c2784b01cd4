"""What every answer of the readers' side shares: settings, database, headers, bad links, queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.audience import lists, members
from mailer.audience.status import Change, Verdict, set_membership
from mailer.compose import translations
from mailer.compose.templates import template_dirs
from mailer.config import Settings
from mailer.db.database import Database
from mailer.db.opening import open_database
from mailer.models import MailingList, Member, MembershipStatus, SubscriberStatus, heard
from mailer.schedule.scheduler import Scheduler
from mailer.send.confirmation import Confirmations
from mailer.send.transports import choose_transport
from mailer.send.types import Transport
from mailer.tokens import Signer, load_secret
from mailer.web.archive_copies import Archive
from mailer.web.pages import Pages
from mailer.web.ratelimit import SlidingWindow

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
# What every response carries unless it says otherwise: redirects and errors too.
SECURITY_HEADERS = {**BASE_HEADERS, "Content-Security-Policy": PAGE_CSP}


class SecurityHeaders:
    """ASGI middleware, outermost: every response gets SECURITY_HEADERS (a response's own
    values win), whichever layer made it: a page, a redirect, a 405, a 413 or a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, secured)


class BodyLimit:
    """ASGI middleware: a request body over MAX_FORM_BYTES is a 413, whether it declares its
    length or comes in chunks that do not."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_FORM_BYTES:
                raise HTTPException(413)
            return message

        await self.app(scope, counted, send)


@dataclass(frozen=True, slots=True)
class Found:
    """What a valid link names: the list, the member, when the link was issued (confirm)."""

    list: MailingList
    member: Member
    issued: int | None


class Site:
    """The endpoints over one workspace; the database is opened per request in the thread pool."""

    def __init__(
        self,
        settings: Settings,
        ip_limit: tuple[int, float],
        address_limit: tuple[int, float],
        transport: Transport | None,
        clock: Callable[[], float] = time.time,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.settings, self.clock, self.scheduler = settings, clock, scheduler
        self.opened = False  # see run()
        self.prefix = urlsplit(settings.newsletter.base_url).path.rstrip("/")
        self.signer = Signer(load_secret(settings.workspace))
        self.pages = Pages(settings, self.prefix)
        self.archive = Archive(settings)
        self.per_ip = SlidingWindow(*ip_limit)
        self.per_address = SlidingWindow(*address_limit)
        self.transport: Transport = transport or choose_transport(settings)
        self.confirmations = Confirmations(
            settings, self.transport, template_dirs(settings.templates_dir),
            on_problem=_log_problem, clock=clock,
        )  # fmt: skip

    # plumbing

    async def db(self, work: Callable[[Database], T]) -> T:
        return await run_in_threadpool(self.run, work)

    def run(self, work: Callable[[Database], T]) -> T:
        """``work`` on a database opened for it (blocking: in a thread). Only the first open
        may create it: one that goes missing while serving (a moved file, an unmounted
        volume) is a 503 until it is back, never an empty database that calls every link
        invalid."""
        with open_database(self.settings, create=not self.opened) as database:
            self.opened = True
            return work(database)

    def page(
        self,
        template: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        /,
        lang: str = translations.SOURCE,
        **context: Any,
    ) -> HTMLResponse:
        """A page in ``lang``; SecurityHeaders adds what ``headers`` does not say. Pages are
        shown in the browser's language: caches keep one copy per Accept-Language."""
        body = self.pages.render(template, lang, **context)
        return HTMLResponse(body, status, {**(headers or {}), "Vary": "Accept-Language"})

    @staticmethod
    def language(request: Request | None, reader: str = "") -> str:
        """The language of a page: the reader's (a link's subscriber), else the browser's."""
        accept = request.headers.get("accept-language", "") if request is not None else ""
        return translations.page_language(accept, reader)

    def invalid(self, request: Request | None = None) -> HTMLResponse:
        """The one answer to every bad token, unknown list or campaign: nothing to learn."""
        return self.page("invalid", 404, PRIVATE, self.language(request))

    def refused(self, request: Request | None = None) -> HTMLResponse:
        """The answer to a form sent from another site's page: nothing changes."""
        return self.page("refused", 403, PRIVATE, self.language(request))

    async def form(self, request: Request) -> FormData:
        """The posted fields; a body we cannot parse is an empty form (one-click still works)."""
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            raise HTTPException(413)
        try:
            return await request.form(max_files=0, max_fields=20)
        except HTTPException as error:
            if error.status_code == 413:  # BodyLimit: too much, declared or not
                raise
            return FormData()
        except (ValueError, UnicodeDecodeError):
            return FormData()

    async def member(self, request: Request, purpose: str) -> Found | None:
        """The list and member a link's token names, if we signed it for ``purpose``."""
        subject = self.signer.check(request.path_params["token"])
        if subject is None or subject.purpose != purpose:
            return None

        def load(database: Database) -> Found | None:
            found = lists.by_id(database, subject.list_id)
            member = found and members.by_id(database, subject.list_id, subject.subscriber_id)
            return Found(found, member, subject.issued) if found and member else None

        return await self.db(load)

    async def unsubscribing(self, request: Request) -> list[Found]:
        """Each list an unsubscribe link names that the reader is on: its list (u), or every
        list of its campaign, when it went to several (k). Empty when the link is not ours."""
        subject = self.signer.check(request.path_params["token"])
        if subject is None or subject.purpose not in ("u", "k"):
            return []

        def load(database: Database) -> list[Found]:
            if subject.purpose == "k":
                named = lists.of_campaign(database, subject.list_id)
            else:
                named = [found] if (found := lists.by_id(database, subject.list_id)) else []
            reader = subject.subscriber_id
            on = [Found(each, member, None) for each in named
                  if (member := members.by_id(database, each.id, reader))]  # fmt: skip
            # An erased reader is nobody: the link says nothing of them, not even that.
            return [f for f in on if f.member.subscriber_status != SubscriberStatus.ERASED]

        return await self.db(load)

    async def move(
        self,
        mailing_list: MailingList,
        member: Member,
        change: Change,
        detail: str,
        to: MembershipStatus | None = None,
        campaign_id: int | None = None,
    ) -> Verdict:
        return await self.db(
            lambda database: set_membership(database, change, member.id, mailing_list.id,
                                            to=to, detail=detail, campaign_id=campaign_id)
        )  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        ticking = asyncio.ensure_future(self.scheduler.run()) if self.scheduler else None
        yield
        if self.scheduler is not None and ticking is not None:
            await self.scheduler.stop()  # messages in flight finish, the campaigns pause
            ticking.cancel()
        await self.confirmations.drain(30.0)  # finish what was promised, within reason

    async def not_found(self, request: Request, error: Exception) -> Response:
        return self.invalid(request)

    async def failure(self, request: Request, error: Exception) -> Response:
        log.error("%s %s: %s", request.method, route(request.url.path), heard(str(error)))
        headers = {"Retry-After": "60"}
        return self.page("busy", 503, headers, self.language(request), too_many=False)


def route(path: str) -> str:
    """A path as the log shows it: its first part only, since the rest may be a reader's
    token (/u/, /p/ and /c/ links act for the reader)."""
    first, _, rest = heard(path).lstrip("/").partition("/")
    return f"/{first}/…" if rest else f"/{first}"


def _log_problem(who: str, problem: str) -> None:
    log.warning("confirmation for %s: %s", who, problem)


WORD_JOINER, NO_BREAK_HYPHEN = "\u2060", "\u2011"


def mask(address: str) -> str:
    """Show enough of an address for its owner to recognise it, and no more (re…r1@example.net;
    a…@example.org when the name is short), in one piece: nothing a line may break at."""
    local, _, domain = address.rpartition("@")
    if not local:
        return address
    shown = f"{local[:2]}…{local[-2:]}" if len(local) > 5 else f"{local[:1]}…"
    return f"{shown}@{domain}".replace("…", "…" + WORD_JOINER).replace("-", NO_BREAK_HYPHEN)

"""The readers' side as one ASGI app: routes, one error page, security headers on every response."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from mailer.config import Settings
from mailer.errors import MailerError, StoreUnavailable
from mailer.schedule.scheduler import Scheduler
from mailer.send.types import Transport
from mailer.web import archive, confirm, preferences, subscribe, unsubscribe
from mailer.web.health import health
from mailer.web.media import media
from mailer.web.site import BodyLimit, SecurityHeaders, Site

Handler = Callable[[Site, Request], Awaitable[Response]]


class _SecuredStarlette(Starlette):
    """Starlette with SecurityHeaders outside even its error middleware, so a 500 has them,
    and bodies capped however they are sent."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(BodyLimit(super().build_middleware_stack()))


def create_app(
    settings: Settings,
    *,
    ip_limit: tuple[int, float] = (20, 3600.0),
    address_limit: tuple[int, float] = (3, 3600.0),
    transport: Transport | None = None,
    clock: Callable[[], float] = time.time,
    scheduler: bool = False,
) -> Starlette:
    """The ASGI app; limits are (requests, seconds) of the subscribe form per IP and address;
    ``clock`` dates confirmation links and judges their age, and tells the ``scheduler`` (of
    `mailer serve`, off for a second web instance) what time it is."""
    ticking = Scheduler(settings, clock) if scheduler else None
    site = Site(settings, ip_limit, address_limit, transport, clock, ticking)
    with contextlib.suppress(StoreUnavailable):  # not reachable yet: 503 until it is
        site.run(lambda database: None)  # a new workspace's database is made now, once

    def route(path: str, handler: Handler, methods: list[str] | None = None) -> Route:
        async def endpoint(request: Request) -> Response:
            if not all(str(value).isprintable() for value in request.path_params.values()):
                return site.invalid(request)  # no slug, token or name holds a NUL or a control
            return await handler(site, request)

        return Route(path, endpoint, methods=methods)

    routes = [
        route("/", archive.home),
        route("/u/{token}", unsubscribe.unsubscribe, ["GET", "POST"]),
        route("/u/{token}/resubscribe", unsubscribe.resubscribe, ["POST"]),  # GET, HEAD: 405
        route("/c/{token}", confirm.confirm, ["GET", "POST"]),
        route("/s/{slug}", subscribe.subscribe, ["GET", "POST"]),
        route("/p/{token}", preferences.preferences, ["GET", "POST"]),
        route("/a/{token}", preferences.new_address, ["GET", "POST"]),
        route("/archive/", archive.archive_index),
        route("/archive/feed.xml", archive.feed),
        route("/archive/{campaign_id:int}", archive.archive_page),
        route("/archive/{campaign_id:int}/{lang}", archive.archive_page),
        route("/media/{name}", media),
        route("/healthz", health),
    ]
    handlers = {404: site.not_found, MailerError: site.failure}
    app = _SecuredStarlette(routes=routes, exception_handlers=handlers, lifespan=site.lifespan)
    app.state.scheduler = ticking  # for `mailer serve` to tell of a signal at once
    return app

"""GET /healthz for a supervisor or a load balancer: 200 with the scheduler's state, else 503."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mailer.errors import MailerError
from mailer.schedule import calendar
from mailer.web.site import Site

NO_STORE = {"Cache-Control": "no-store"}


async def health(site: Site, request: Request) -> Response:
    scheduler = site.scheduler
    try:
        if scheduler is None:
            upcoming = await site.db(calendar.next_time)
            state = {"scheduler": "off", "next_due": upcoming}
        else:
            state = await run_in_threadpool(scheduler.state)
    except MailerError as error:
        return JSONResponse({"status": "unavailable", "error": str(error)}, 503, NO_STORE)
    return JSONResponse({"status": "ok", **state}, 200, NO_STORE)

"""GET /healthz for a supervisor or a load balancer: 200 with the scheduler's state, else 503."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mailer.errors import MailerError, StoreError
from mailer.schedule import calendar
from mailer.web.site import Site

NO_STORE = {"Cache-Control": "no-store"}
log = logging.getLogger("mailer.web")


async def health(site: Site, request: Request) -> Response:
    scheduler = site.scheduler
    try:
        if scheduler is None:
            upcoming = await site.db(calendar.next_time)
            state = {"scheduler": "off", "next_due": upcoming}
        else:
            state = await run_in_threadpool(scheduler.state)
    except MailerError as error:  # the detail (the database's address) is for the log only
        log.error("GET /healthz: %s", error)
        said = "the database does not answer" if isinstance(error, StoreError) else "unavailable"
        return JSONResponse({"status": "unavailable", "error": said}, 503, NO_STORE)
    return JSONResponse({"status": "ok", **state}, 200, NO_STORE)

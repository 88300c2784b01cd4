"""Serving the readers' side with uvicorn on a socket bound first, so the address is known."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from mailer.config import Settings
from mailer.errors import InputError
from mailer.schedule.scheduler import Scheduler
from mailer.web.app import create_app

GRACE = 20  # seconds the web side waits for open connections when it stops


class _Server(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        on_ready: Callable[[str], None],
        url: str,
        scheduler: Scheduler | None,
    ) -> None:
        super().__init__(config)
        self.on_ready, self.url, self.scheduler = on_ready, url, scheduler
        self.signals = 0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The scheduler hears of a stop at once, not after the web side has closed: it takes
        no new work and drains; a second signal aborts what is in flight."""
        self.signals += 1
        if self.scheduler is not None:
            self.scheduler.interrupt(abort=self.signals > 1)
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.on_ready(self.url)


def serve(
    settings: Settings,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    scheduler: bool = True,
) -> None:
    """Serve until Ctrl-C or SIGTERM, then shut down gracefully (the scheduler's campaigns
    pause) and return; ``on_ready`` gets the address once it is listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except (OSError, OverflowError) as error:
        listener.close()
        reason = getattr(error, "strerror", None) or str(error)
        raise InputError(f"cannot listen on {host}:{port}: {reason}") from None
    bound = listener.getsockname()[1]
    url = f"http://[{host}]:{bound}" if family == socket.AF_INET6 else f"http://{host}:{bound}"
    app = create_app(settings, scheduler=scheduler)
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                            timeout_graceful_shutdown=GRACE)  # fmt: skip
    # uvicorn shuts down on SIGTERM, then raises it again to end the process: by then all is
    # done, so the signal is let go and the service exits 0, as a supervisor expects.
    previous = signal.signal(signal.SIGTERM, lambda number, frame: None)
    try:
        _Server(config, on_ready, url, app.state.scheduler).run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # uvicorn shut down gracefully, then re-raised the signal
    finally:
        signal.signal(signal.SIGTERM, previous)
        listener.close()

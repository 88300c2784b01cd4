"""CLI command for the one long-running service: serve (the readers' side and the scheduler)."""

from __future__ import annotations

from typing import Annotated

import typer

from mailer.cli.common import app, out, settings


@app.command(epilog="Example: mailer serve --port 8000")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8000,
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Send scheduled campaigns and welcome messages; off for a second web instance.",
        ),
    ] = True,
) -> None:
    """Serve the readers' side (unsubscribe, preferences, confirmation, subscribe form,
    archive) and run the scheduler; SIGTERM or Ctrl-C lets messages in flight finish."""
    from mailer.web.server import serve as serve_web  # starlette and uvicorn load only here

    current = settings()

    def ready(address: str) -> None:
        running = "with the scheduler" if scheduler else "without the scheduler"
        out.print(f"serving on {address} (public address {current.newsletter.base_url}),"
                  f" {running}; Ctrl-C stops", markup=False)  # fmt: skip

    serve_web(current, host, port, on_ready=ready, scheduler=scheduler)
    out.print("stopped")

"""CLI command for the readers' side: serve (unsubscribe, confirmation, subscribe form, archive)."""

from __future__ import annotations

from typing import Annotated

import typer

from mailer.cli.common import app, out, settings


@app.command(epilog="Example: mailer serve --port 8000")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8000,
) -> None:
    """Serve the readers' side: one-click unsubscribe, confirmation, subscribe form, archive."""
    from mailer.web.server import serve as serve_web  # starlette and uvicorn load only here

    current = settings()

    def ready(address: str) -> None:
        out.print(f"serving on {address} (public address {current.newsletter.base_url});"
                  " Ctrl-C stops", markup=False)  # fmt: skip

    serve_web(current, host, port, on_ready=ready)
    out.print("stopped")

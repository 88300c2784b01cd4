"""A run's first connection: opened before anything is recorded, given up when the run stops."""

from __future__ import annotations

import asyncio

from mailer.send.types import Connection, Control, StopReason, Transport


# Nothing is recorded before this connection is open, so that an unreachable server leaves no trace.
async def open_first(transport: Transport, control: Control | None) -> Connection | None:
    """The first connection, before anything is recorded; None when stopped meanwhile.
    Raises TransportError when the server cannot be reached."""
    if control is not None and control.requested:
        return None
    connecting = asyncio.ensure_future(transport.connect())
    if control is None:
        return await connecting
    stopped = asyncio.get_running_loop().create_future()

    def on_stop(_: StopReason) -> None:
        if not stopped.done():
            stopped.set_result(None)

    control.listeners.append(on_stop)
    try:
        await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        control.listeners.remove(on_stop)
    if not connecting.done():  # Ctrl-C while connecting: leave before anything is recorded
        connecting.cancel()
        return None
    return connecting.result()

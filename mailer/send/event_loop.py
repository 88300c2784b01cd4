"""The event loop a command runs on: uvloop when installed (the `fast` extra), else asyncio's."""

from __future__ import annotations

import asyncio


def runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)

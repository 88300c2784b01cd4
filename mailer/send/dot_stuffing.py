"""A message's chunks as SMTP DATA carries them: CRLF, dot-stuffed, ending in CRLF "." CRLF."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mailer.compose.mime import Shared
from mailer.send.types import Message

LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
LONG = 1024  # a campaign's shared chunks this long are stuffed once, then remembered
KEPT = 4096  # remembered chunks at most (a campaign has a few dozen, a long report hundreds)


class DataPayload:
    """Makes DATA payloads. A campaign's long Shared chunks (its attachments, the report's
    text) are checked and stuffed once, so the per-message work is the reader's own chunks
    and one join. Nothing else is kept: a message built elsewhere is new bytes each time."""

    def __init__(self) -> None:
        self.remembered: dict[int, tuple[bytes, bytes | None]] = {}

    def __call__(self, message: Message) -> bytes:
        pieces: list[bytes] = []
        line_start = True
        for chunk, shared in _segments(message):
            stuffed = self._remembered(chunk) if shared else _stuff(chunk)
            if stuffed is None:  # a bare CR or LF, or a CRLF split around a shared chunk
                return payload(b"".join(message))
            if line_start and chunk[:1] == b".":
                pieces.append(b".")
            pieces.append(stuffed)
            line_start = chunk.endswith(b"\n")
        if not line_start or not pieces:
            pieces.append(b"\r\n")
        pieces.append(b".\r\n")
        return b"".join(pieces)

    def _remembered(self, chunk: bytes) -> bytes | None:
        known = self.remembered.get(id(chunk))
        if known is not None and known[0] is chunk:  # the chunk is kept alive, so ids match
            return known[1]
        stuffed = _stuff(chunk)
        if len(self.remembered) >= KEPT:
            self.remembered.clear()
        self.remembered[id(chunk)] = (chunk, stuffed)
        return stuffed


def _segments(message: Message) -> Iterator[tuple[bytes, bool]]:
    """The long shared chunks, each alone, and the runs of other chunks between them joined
    (whether each is shared): a message is stuffed in a few pieces, not one per chunk."""
    run: list[bytes] = []
    for chunk in message:
        if type(chunk) is Shared and len(chunk) >= LONG:
            if run:
                yield b"".join(run), False
                run = []
            yield chunk, True
        elif chunk:
            run.append(chunk)
    if run:
        yield b"".join(run), False


def _stuff(chunk: bytes) -> bytes | None:
    """``chunk`` with every line that starts with "." doubled after a CRLF; None unless each
    CR and LF in it is part of a CRLF."""
    crlf = chunk.count(b"\r\n")
    if chunk.count(b"\n") != crlf or chunk.count(b"\r") != crlf:
        return None
    # replace() copies even when nothing matches (always, for a bytes subclass): a campaign's
    # attachment is kept once, not twice.
    return chunk.replace(b"\r\n.", b"\r\n..") if b"\r\n." in chunk else chunk


def payload(message: bytes) -> bytes:
    """The body of one message in bytes as DATA carries it, whatever its line endings."""
    crlf = message.count(b"\r\n")  # a bare LF or a bare CR: make every ending CRLF
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
        message = LINE_ENDINGS.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    data = message.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    return b"." + data if data.startswith(b".") else data

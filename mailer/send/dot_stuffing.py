"""A message's chunks as SMTP DATA carries them: CRLF, dot-stuffed, ending in CRLF "." CRLF."""

from __future__ import annotations

import re

from mailer.compose.mime import Shared
from mailer.send.types import Message

LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
DOT, LF = ord("."), ord("\n")
KEPT = 4096  # remembered chunks at most (a campaign has a few dozen, a long report hundreds)


class DataPayload:
    """Makes DATA payloads. A campaign's Shared chunks (its attachments, the report's text,
    the headers every reader gets) are checked and stuffed once, so the per-message work is
    one check of the reader's own chunks together, and one join. Nothing else is kept: a
    message built elsewhere is new bytes each time."""

    def __init__(self) -> None:
        self.remembered: dict[int, tuple[bytes, bytes | None]] = {}

    def __call__(self, message: Message) -> bytes:
        pieces: list[bytes] = []
        own: list[int] = []  # where the reader's own chunks are: checked together, at the end
        line_start = True
        remembered = self.remembered
        for chunk in message:
            if not chunk:
                continue
            if type(chunk) is Shared:
                known = remembered.get(id(chunk))
                if known is None or known[0] is not chunk:  # kept alive while known: ids match
                    known = self._remember(chunk)
                stuffed = known[1]
                if stuffed is None:  # a bare CR or LF, or a CRLF split around a shared chunk
                    return payload(b"".join(message))
                if line_start and chunk[0] == DOT:
                    pieces.append(b".")
            else:
                stuffed = chunk
                if line_start and chunk[0] == DOT:
                    pieces.append(b".")
                own.append(len(pieces))
            pieces.append(stuffed)
            line_start = chunk[-1] == LF
        if own:
            joined = b"\r\n".join([pieces[i] for i in own])
            crlf = joined.count(b"\r\n")
            if joined.count(b"\n") != crlf or joined.count(b"\r") != crlf:
                return payload(b"".join(message))  # as each chunk alone: a CR ending one, or
                # an LF starting one, would sit beside the joining CRLF
            if b"\r\n." in joined:  # a line of the reader's own that starts with a dot
                for i in own:
                    pieces[i] = pieces[i].replace(b"\r\n.", b"\r\n..")
        if not line_start or not pieces:
            pieces.append(b"\r\n")
        pieces.append(b".\r\n")
        return b"".join(pieces)

    def _remember(self, chunk: bytes) -> tuple[bytes, bytes | None]:
        if len(self.remembered) >= KEPT:
            self.remembered.clear()
        known = self.remembered[id(chunk)] = (chunk, _stuff(chunk))
        return known


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

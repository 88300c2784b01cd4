"""SMTP PIPELINING (RFC 2920): MAIL, RCPT and DATA in one write, their replies read in order."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from typing import cast

import aiosmtplib
from aiosmtplib.errors import (
    SMTPReadTimeoutError,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from aiosmtplib.response import SMTPResponse

from mailer.errors import ReplyLost
from mailer.models import Reply

# What aiosmtplib's execute_command refuses in an argument: such a command takes today's path,
# which raises as it always did.
PROHIBITED = re.compile(rb"[\x00-\x1f\x7f]")
MAX_REPLY = 8192 * 4  # aiosmtplib's own bound on one reply
CLOSING = 421  # aiosmtplib closes the connection on this reply to any command; so does this


class Replies(asyncio.Protocol):
    """Stands in for aiosmtplib's protocol on the connection's transport while one pipelined
    transaction is in flight, and hands back every reply in the order it came.

    aiosmtplib reads one reply per command written and drops bytes that arrive while no command
    waits (two replies in one TCP read or TLS record: the second is lost), so the replies to a
    pipelined group cannot go through it. ``transport.set_protocol`` (asyncio's public API)
    swaps this reader in and ``restore`` gives the transport back."""

    def __init__(self, transport: asyncio.Transport, timeout: float | None) -> None:
        self.transport, self.timeout = transport, timeout
        self.owner = transport.get_protocol()
        self.buffer = bytearray()
        self.ready: deque[SMTPResponse] = deque()
        self.failure: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        transport.set_protocol(self)

    def restore(self) -> None:
        if not self.transport.is_closing():
            self.transport.set_protocol(self.owner)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            while (reply := self._parse()) is not None:
                self.ready.append(reply)
            if len(self.buffer) > MAX_REPLY:
                raise SMTPResponseException(-1, "Response too long")
        except SMTPResponseException as error:
            self._fail(error)
        self._wake()

    def eof_received(self) -> bool:
        self._fail(SMTPServerDisconnected("Unexpected EOF received"))
        return False  # asyncio closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(SMTPServerDisconnected("Connection lost"))

    async def next(self, timeout: float | None = None) -> SMTPResponse:
        """The next reply, waited for ``timeout`` seconds (else the connection's); the replies
        that came before a drop are still handed back first."""
        if not self.ready and self.failure is None:
            loop = asyncio.get_running_loop()
            self.waiter = loop.create_future()
            # A timer on the future itself: wait_for would wrap it in a task every reply.
            wait = timeout or self.timeout
            timer = None if wait is None else loop.call_later(wait, self._late)
            try:
                await self.waiter
            finally:
                self.waiter = None
                if timer is not None:
                    timer.cancel()
        if self.ready:
            return self.ready.popleft()
        assert self.failure is not None
        raise self.failure

    def _late(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(SMTPReadTimeoutError("Timed out waiting for server response"))

    def _fail(self, error: Exception) -> None:
        if self.failure is None:
            self.failure = error
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _parse(self) -> SMTPResponse | None:
        """One whole reply off the buffer (continuation lines joined with a newline, as
        aiosmtplib joins them), or None while it is incomplete."""
        lines: list[bytes] = []
        offset = 0
        while (end := self.buffer.find(b"\n", offset)) != -1:
            line = bytes(self.buffer[offset : end + 1])
            offset = end + 1
            try:
                code = int(line[:3])
            except ValueError:
                text = line.decode("utf-8", errors="ignore")
                raise SMTPResponseException(-1, f"Malformed SMTP response line: {text}") from None
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                del self.buffer[:offset]
                return SMTPResponse(code, b"\n".join(lines).decode("utf-8", "surrogateescape"))
        return None


async def transact(
    client: aiosmtplib.SMTP,
    mail: bytes,
    rcpt: bytes,
    payload: bytes,
    where: str = "",
    data_timeout: float | None = None,
) -> tuple[Reply, bool]:
    """One message as a pipelined group: ``mail`` and ``rcpt`` are whole command lines,
    ``payload`` the dot-stuffed body with its final ".". Returns the reply the transaction
    ends with and whether it is a refusal that leaves an envelope to RSET.

    Replies are judged in order, as the command-by-command path judges them: the first refusal
    (MAIL not 250, RCPT not 250/251, DATA not 354) is the outcome, and the later replies are
    read only to keep the stream in step. After a refusal no body is sent. A DATA that
    answers 354 all the same gets a lone "." when no recipient is open (RFC 2920 section 3.1;
    Postfix's smtp client does the same), whose reply is ignored; when a RCPT was accepted
    after a refused MAIL the connection is closed instead, so no empty message can go out.
    A drop or a timeout before the outcome is known raises, as today's path does; after it,
    the connection is closed and the refusal returned, as a failed RSET leaves it today. Once
    the whole message is written, its reply is waited for ``data_timeout`` seconds, and a drop
    or a silence then is ReplyLost (``where``): the message may have arrived."""
    protocol = client.protocol
    transport = protocol.transport if protocol is not None else None
    if transport is None or transport.is_closing():
        raise SMTPServerDisconnected("Server not connected")
    transport = cast(asyncio.Transport, transport)
    replies = Replies(transport, client.timeout)
    refusal: Reply | None = None
    try:
        transport.write(mail + rcpt + b"DATA\r\n")
        answers: list[SMTPResponse] = []
        for stage, wanted in (("mail", (250,)), ("rcpt", (250, 251)), ("data", (354,))):
            answer = await replies.next()
            answers.append(answer)
            if refusal is None and answer.code not in wanted:
                refusal = Reply(answer.code, answer.message, stage)
            if answer.code == CLOSING:  # the server is going away: nothing more will come
                client.close()
                assert refusal is not None
                return refusal, True
        if refusal is None:
            if transport.is_closing() or replies.failure is not None:  # gone after its 354
                raise SMTPServerDisconnected("Connection lost before the message was sent")
            transport.write(payload)
            try:
                final = await replies.next(data_timeout)
            except (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException) as error:
                client.close()  # silent, gone or garbled once the message went: it may be there
                raise ReplyLost(where, str(error) or type(error).__name__) from None
            return Reply(final.code, final.message), False
        if answers[2].code == 354:
            if answers[1].code in (250, 251):
                client.close()  # an open envelope with a recipient: abort, never end the data
            else:
                transport.write(b".\r\n")
                await replies.next()
        return refusal, True
    except (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException):
        client.close()  # dropped, silent, or out of step (a malformed reply)
        if refusal is None:
            raise
        return refusal, True
    finally:
        replies.restore()

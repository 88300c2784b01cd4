"""The SMTP transport: persistent connections over aiosmtplib, replies as data, TLS verified."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

import aiosmtplib
from aiosmtplib.errors import (
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from aiosmtplib.response import SMTPResponse

from mailer.compose.mime import ascii_address
from mailer.config import SmtpSettings
from mailer.errors import ConnectionLost, ReplyLost, TransportError
from mailer.models import Reply, heard, heard_line
from mailer.send import pipelining
from mailer.send.dot_stuffing import DataPayload
from mailer.send.retry import session_refusal
from mailer.send.types import Message

# The fast DATA path writes through these aiosmtplib internals; tested with the aiosmtplib
# versions pyproject.toml allows, and tests/test_smtp_transport.py fails loudly if they move.
INTERNALS = ("_command_lock", "_response_pending", "write", "read_response")
# What a client sees when it speaks plain SMTP to a TLS port: no greeting, a drop, or noise.
NO_GREETING = (SMTPConnectTimeoutError, SMTPConnectResponseError, SMTPServerDisconnected)
STARTTLS, TLS = "use security = starttls", "use security = tls"
NO_SMTPUTF8 = Reply(553, "5.6.7 the server does not offer SMTPUTF8, needed for this address")


class SmtpConnection:
    """One persistent SMTP session; 4xx/5xx answers come back as data, a drop as ConnectionLost."""

    def __init__(
        self,
        client: aiosmtplib.SMTP,
        where: str,
        payload: DataPayload,
        settings: SmtpSettings | None = None,
    ) -> None:
        self.client, self.where = client, where
        self.payload = payload  # shared by a transport's connections
        self.settings = settings or SmtpSettings()
        self.smtputf8 = client.supports_extension("smtputf8")
        self.fast = fast_data_possible(client)
        # RFC 2920: only a server whose EHLO lists PIPELINING gets MAIL, RCPT and DATA at once.
        self.pipelining = client.supports_extension("pipelining")

    async def send(self, sender: str, recipient: str, message: Message, smtputf8: bool) -> Reply:
        return self._for_a_reader(await self._send(sender, recipient, message, smtputf8))

    async def _send(self, sender: str, recipient: str, message: Message, smtputf8: bool) -> Reply:
        """The server's reply to one message, a refusal of the session included."""
        client = self.client
        options: list[bytes] = []
        if smtputf8:
            if not self.smtputf8:
                return NO_SMTPUTF8
            options.append(b"SMTPUTF8")
        if not smtputf8:  # an IDN domain goes as A-labels, as the message's headers have it
            sender, recipient = ascii_address(sender), ascii_address(recipient)
        mail = [b"MAIL", b"FROM:<" + sender.encode() + b">", *options]
        rcpt = [b"RCPT", b"TO:<" + recipient.encode() + b">"]
        if self.pipelining and not any(pipelining.PROHIBITED.search(a) for a in mail + rcpt):
            return await self._pipelined(b" ".join(mail) + b"\r\n", b" ".join(rcpt) + b"\r\n",
                                         message)  # fmt: skip
        # MAIL, RCPT and DATA directly: sendmail() re-parses addresses and copies the message.
        try:
            answer = await client.execute_command(*mail)
            if answer.code != 250:
                return await self._refused(answer.code, answer.message, "mail")
            answer = await client.execute_command(*rcpt)
            if answer.code not in (250, 251):
                return await self._refused(answer.code, answer.message, "rcpt")
            answer = await self._data(message)
        except SMTPResponseException as error:
            return await self._refused(error.code, error.message)
        except (SMTPException, OSError) as error:
            raise ConnectionLost(self.where, str(error) or type(error).__name__) from None
        return Reply(answer.code, answer.message)

    def _for_a_reader(self, reply: Reply) -> Reply:
        """``reply``, unless it refuses the session itself (530: start TLS, or log in, first):
        then a TransportError that names the setting to change stops the run."""
        refusal = session_refusal(reply)
        if refusal is not None:
            raise TransportError(self.where, session_advice(self.settings, refusal, reply))
        return reply

    async def _pipelined(self, mail: bytes, rcpt: bytes, message: Message) -> Reply:
        """The same transaction as a pipelined group; the same replies make the same Reply, a
        refusal is followed by RSET, a drop before the outcome is ConnectionLost."""
        try:
            data = self.payload(message)
            reply, refused = await pipelining.transact(self.client, mail, rcpt, data, self.where,
                                                       self.settings.data_timeout)  # fmt: skip
        except SMTPResponseException as error:
            return await self._refused(error.code, error.message)
        except (SMTPException, OSError) as error:
            raise ConnectionLost(self.where, str(error) or type(error).__name__) from None
        return await self._refused(reply.code, reply.text, reply.stage) if refused else reply

    async def _data(self, message: Message) -> SMTPResponse:
        """DATA with the body written as is: mailer's messages are CRLF already, so only the
        dot-stuffing is left (DataPayload: once per campaign for its shared chunks).
        aiosmtplib's data() runs two regex passes over every message (~240 µs for 20 KB, half
        of a send's CPU)."""
        client, protocol = self.client, self.client.protocol
        lock = getattr(protocol, "_command_lock", None)
        if not self.fast or protocol is None or lock is None:
            # the public path: an aiosmtplib that moved
            return await client.data(b"".join(message), timeout=self.settings.data_timeout)
        data = self.payload(message)
        start = await client.execute_command(b"DATA")
        if start.code != 354:
            raise SMTPResponseException(start.code, start.message)
        async with lock:
            protocol._response_pending = True
            try:
                protocol.write(data)  # raises when the connection has gone: nothing was sent
            except SMTPServerDisconnected:
                client.close()
                raise
            try:
                return await protocol.read_response(timeout=self.settings.data_timeout)
            except (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException) as error:
                client.close()  # silent, gone or garbled once the message went: it may be there
                raise ReplyLost(self.where, str(error) or type(error).__name__) from None

    async def _refused(self, code: int, text: str, stage: str = "data") -> Reply:
        if self.client.is_connected:
            try:
                await self.client.rset()
            except (SMTPException, OSError):
                self.client.close()
        return Reply(code, text, stage)

    async def close(self) -> None:
        try:
            if self.client.is_connected:
                await self.client.quit()
        except (SMTPException, OSError):
            self.client.close()


def fast_data_possible(client: aiosmtplib.SMTP) -> bool:
    """Whether this aiosmtplib exposes what the fast DATA path writes through."""
    protocol = client.protocol
    return protocol is not None and all(hasattr(protocol, name) for name in INTERNALS)


class SmtpTransport:
    """Opens SMTP connections with the configured security; never shows the password."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.where = f"SMTP server {settings.host}:{settings.port}"
        self.context: ssl.SSLContext | None = None
        self.local_hostname = socket.getfqdn() or "localhost"
        self.probed = False  # the first connection asks whether this session may send at all
        self.payload = DataPayload()

    @property
    def description(self) -> str:
        return f"smtp://{self.settings.host}:{self.settings.port} ({self.settings.security})"

    async def connect(self) -> SmtpConnection:
        s = self.settings
        if self.context is None and s.security != "none":
            # Loading the CA bundle costs ~20 ms: once per transport, not per connection.
            self.context = ssl.create_default_context()
            if not s.verify_tls:
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            tls_context=self.context,
            validate_certs=s.verify_tls,
            local_hostname=self.local_hostname,
        )
        greeted = False
        try:
            await client.connect()
            greeted = True
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()
            if s.username:
                await client.login(s.username, s.password)
            refused = None if self.probed else await self._probe(client)
            self.probed = True
        except aiosmtplib.SMTPAuthenticationError as error:
            client.close()
            raise TransportError(self.where, _login_refused(s, error)) from None
        except (SMTPException, OSError) as error:
            client.close()
            reason = _reason(error)
            if s.security == "tls" and "WRONG_VERSION_NUMBER" in reason:
                reason = f"the server at {s.host}:{s.port} speaks plain SMTP first: {STARTTLS}"
            elif s.security != "tls" and not greeted and await self._speaks_tls(error):
                reason = f"the server at {s.host}:{s.port} expects TLS from the start: {TLS}"
            raise TransportError(self.where, reason) from None
        if refused is not None:
            client.close()
            raise TransportError(self.where, session_advice(s, refused[0], refused[1]))
        return SmtpConnection(client, self.where, self.payload, s)

    async def _probe(self, client: aiosmtplib.SMTP) -> tuple[str, Reply] | None:
        """With STARTTLS or AUTH offered but not used: MAIL FROM:<> then RSET, so that a server
        that takes no mail from such a session (530) says so before anything is recorded."""
        s = self.settings
        plain = s.security == "none" and client.supports_extension("starttls")
        if not plain and (s.username or not client.supports_extension("auth")):
            return None
        answer = await client.execute_command(b"MAIL", b"FROM:<>")
        reply = Reply(answer.code, answer.message, "mail")
        refusal = session_refusal(reply)
        if refusal is not None:
            return refusal, reply
        with contextlib.suppress(SMTPResponseException):
            await client.rset()
        return None

    async def _speaks_tls(self, error: BaseException) -> bool:
        """After no greeting (a timeout, a drop, a line that is not SMTP): whether the port
        completes a TLS handshake instead, as an implicit-TLS port (465) does."""
        if not isinstance(error, NO_GREETING):
            return False
        probe = ssl.create_default_context()
        probe.check_hostname, probe.verify_mode = False, ssl.CERT_NONE  # only asks: TLS at all?
        s = self.settings
        try:
            opening = asyncio.open_connection(s.host, s.port, ssl=probe, server_hostname=s.host)
            _, writer = await asyncio.wait_for(opening, s.timeout)
        except (OSError, TimeoutError, ssl.SSLError):
            return False
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        return True


def _reason(error: BaseException) -> str:
    if isinstance(error, SMTPResponseException):  # its str() is a tuple's repr
        return heard_line(f"the server answered {error.code} {error.message}")
    text = heard(str(error))
    if isinstance(error, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS certificate not trusted ({text}); set verify_tls = false only for a test relay"
    return text or type(error).__name__


def session_advice(s: SmtpSettings, refusal: str, reply: Reply) -> str:
    """What to change when the server takes no mail from this session: one line."""
    said = reply.line
    if refusal == "starttls" and s.security == "none":
        return f"the server takes mail only over TLS ({said}): set [smtp] security = starttls"
    if refusal == "starttls":
        return f"the server refuses this session ({said}): check [smtp] security"
    if not s.username:
        return (f"the server takes mail only after a login ({said}): set [smtp] username,"
                " and its password in MAILER_SMTP_PASSWORD")  # fmt: skip
    return f"the server takes no mail from {s.username!r} ({said}): check [smtp] username, password"


def _login_refused(s: SmtpSettings, error: aiosmtplib.SMTPAuthenticationError) -> str:
    """The server's refusal with its reply text; with no password set, says so first."""
    reply = heard_line(f"{error.code} {error.message}")
    unset = "" if s.password else "no password is set (set MAILER_SMTP_PASSWORD): "
    return f"login refused for {s.username!r}: {unset}{reply}"

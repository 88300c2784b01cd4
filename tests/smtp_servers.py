"""Real SMTP servers on 127.0.0.1 (aiosmtpd): a recorder and a fault-injecting variant."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session, syntax
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class LoopbackController(Controller):
    """An aiosmtpd Controller that binds port 0 and learns the port the OS picked."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=0, **kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class Received:
    sender: str
    recipient: str
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Recorder:
    """Accepts everything and remembers what arrived, one entry per recipient."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(r.recipient for r in self.received)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.received.append(
                    Received(envelope.mail_from or "", recipient, envelope.original_content or b"")
                )
        return "250 2.0.0 OK queued"


@dataclass
class Mailbox(Recorder):
    """A recorder that lets a test wait for the n-th message instead of sleeping."""

    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        with self.arrived:
            self.arrived.notify_all()
        return answer

    def wait_for(self, count: int) -> list[Received]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, timeout=20)
        return list(self.received)


Rule = Callable[[str, int], str | None]  # (recipient, attempt number from 1) -> action or None


@dataclass
class FaultyServer(Recorder):
    """Answers by rule: '421', '451', '550 5.1.1', 'drop' (close before answering DATA),
    'slow' (wait before accepting); None accepts. Counts every attempt per recipient."""

    rule: Rule = lambda recipient, attempt: None
    attempts: Counter[str] = field(default_factory=Counter)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            self.attempts[address] += 1
            attempt = self.attempts[address]
        action = self.rule(address, attempt)
        if action == "421":
            return "421 4.7.0 try again later, closing connection"
        if action == "451":
            return "451 4.7.1 greylisted, come back later"
        if action and action.startswith("550"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        [recipient] = envelope.rcpt_tos
        action = self.rule(recipient, self.attempts[recipient])
        if action == "drop":
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 connection dropped"
        if action == "slow":
            await asyncio.sleep(0.05)  # a slow server, not test synchronisation
        return await super().handle_DATA(server, session, envelope)


def start(handler: Any, **kwargs: Any) -> LoopbackController:
    controller = LoopbackController(handler, **kwargs)
    controller.start()
    return controller


def serving(**kwargs: Any) -> Iterator[tuple[LoopbackController, Recorder]]:
    """A fixture's body: a Recorder served with ``kwargs`` while the test runs."""
    recorder = Recorder()
    controller = start(recorder, **kwargs)
    yield controller, recorder
    controller.stop()


def closed_port() -> int:
    """A loopback port with nothing listening: bound by us for a moment, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PipeliningServer(FaultyServer):
    """A FaultyServer whose EHLO lists PIPELINING (aiosmtpd reads pipelined input but does not
    say so). Served by PipeliningSMTP: DATA with no recipient is answered ``no_recipients``
    ('554', or '354': take the data all the same, keep its lines, then 554); ``drop_mail``
    closes the connection when MAIL is read, before any reply (RCPT and DATA are in flight);
    the rule may also say '450' (a full mailbox) or 'silent' (RCPT never answered)."""

    no_recipients: str = "554"
    drop_mail: set[int] = field(default_factory=set)  # the n-th MAIL (from 1, every connection)
    mails: int = 0
    unwanted: list[bytes] = field(default_factory=list)  # data lines after DATA had no recipient

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        action = self.rule(address, self.attempts[address] + 1)
        if action == "450":
            with self.lock:
                self.attempts[address] += 1
            return "450 4.2.2 mailbox full, try again later"
        if action == "silent":  # never answers: the client's read timeout must end it
            await asyncio.Event().wait()
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            self.mails += 1
            drop = self.mails in self.drop_mail
        if drop:
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 connection dropped"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"


class PipeliningSMTP(SMTP):
    """aiosmtpd's SMTP, answering DATA without a recipient as its PipeliningServer says."""

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        handler = self.event_handler
        assert self.envelope is not None and isinstance(handler, PipeliningServer)
        if self.envelope.rcpt_tos or not self.envelope.mail_from or arg:
            await super().smtp_DATA(arg)
        elif handler.no_recipients == "354":
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            while (line := await self._reader.readuntil(b"\r\n")) != b".\r\n":
                handler.unwanted.append(line)
            self._set_post_data_state()
            await self.push("554 5.5.1 Error: no valid recipients")
        else:
            await self.push("554 5.5.1 Error: no valid recipients")


class PipeliningController(LoopbackController):
    def factory(self) -> SMTP:
        return PipeliningSMTP(self.handler, **self.SMTP_kwargs)


def start_pipelining(handler: PipeliningServer) -> LoopbackController:
    controller = PipeliningController(handler)
    controller.start()
    return controller


class WireProxy:
    """A TCP proxy on 127.0.0.1, run in the test's own event loop: it records each chunk either
    side wrote, in the order it saw them, per connection, so a test sees what the client sent
    before the server had answered."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.connections: list[list[tuple[str, bytes]]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.upstream)
        log: list[tuple[str, bytes]] = []
        self.connections.append(log)
        await asyncio.gather(
            self._pump("client", client_in, server_out, log),
            self._pump("server", server_in, client_out, log),
        )

    @staticmethod
    async def _pump(
        side: str,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        log: list[tuple[str, bytes]],
    ) -> None:
        try:
            while data := await source.read(65536):
                log.append((side, data))
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()

    def turns(self, connection: int = 0) -> list[tuple[str, bytes]]:
        """The connection's exchange as turns: consecutive chunks of one side joined."""
        turns: list[tuple[str, bytes]] = []
        for side, data in self.connections[connection]:
            if turns and turns[-1][0] == side:
                turns[-1] = (side, turns[-1][1] + data)
            else:
                turns.append((side, data))
        return turns


def server_tls(folder: Path) -> ssl.SSLContext:
    """A server's TLS context with a self-signed certificate for localhost, written to
    ``folder`` (cert.pem, key.pem): clients must not verify it (verify_tls = false)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pkcs8, bare = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, pkcs8, bare))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context

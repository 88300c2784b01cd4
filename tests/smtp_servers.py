"""Real SMTP servers on 127.0.0.1 (aiosmtpd): a recorder and a fault-injecting variant."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


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


def closed_port() -> int:
    """A loopback port with nothing listening: bound by us for a moment, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

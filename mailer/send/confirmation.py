"""Opt-in confirmations: one sent now (the CLI), or form requests done after the page answered."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mailer.compose.confirmation import build_confirmation, confirm_url
from mailer.compose.templates import template_dirs
from mailer.config import Settings
from mailer.errors import MailerError, TransportError
from mailer.models import MailingList, Member, Reply
from mailer.send.transactional import deliver_notice
from mailer.send.transports import choose_transport
from mailer.send.types import Transport
from mailer.tokens import Signer, load_secret


async def send_confirmation(
    settings: Settings,
    transport: Transport,
    mailing_list: MailingList,
    member: Member,
    templates: Sequence[Path],
    clock: Callable[[], float] = time.time,
) -> Reply:
    """Sign a confirm link for ``member`` and deliver the message; the server's answer is data,
    an unreachable server raises TransportError."""
    signer = Signer(load_secret(settings.workspace))
    issued = int(clock())
    url = confirm_url(settings.newsletter.base_url, signer, member.id, mailing_list.id, issued)
    message = build_confirmation(settings.newsletter, mailing_list, member, url, templates)
    return await deliver_notice(settings, transport, member.email, message, member.smtputf8)


# A form request's database work, run in a thread: the member to mail, or None for nobody.
Prepare = Callable[[], Member | None]


class Confirmations:
    """One task does the web form's requests after the page answered, in order: the database
    work, then the confirmation message when one is due. So the answer takes as long, and says
    the same, whether the address was known or not; problems go to ``on_problem(who, what)``."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        templates: Sequence[Path],
        on_problem: Callable[[str, str], None],
        capacity: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.transport, self.templates = settings, transport, templates
        self.clock = clock
        self.on_problem, self.capacity = on_problem, capacity
        self.queue: asyncio.Queue[tuple[MailingList, Prepare]] | None = None
        self.worker: asyncio.Task[None] | None = None

    def put(self, mailing_list: MailingList, prepare: Prepare) -> None:
        """Queue a request: ``prepare`` runs later, then its member (if any) is mailed."""
        if self.queue is None:  # created in the serving loop, on first use
            self.queue = asyncio.Queue(self.capacity)
            self.worker = asyncio.get_running_loop().create_task(self._run(self.queue))
        try:
            self.queue.put_nowait((mailing_list, prepare))
        except asyncio.QueueFull:
            self.on_problem("a form request", "not done: too many requests waiting")

    async def _run(self, queue: asyncio.Queue[tuple[MailingList, Prepare]]) -> None:
        while True:
            mailing_list, prepare = await queue.get()
            who = "a form request"
            try:
                member = await asyncio.to_thread(prepare)
                if member is None:
                    continue  # nothing is due: confirmed already, bounced, blocked or erased
                who = f"subscriber {member.id}"
                reply = await send_confirmation(
                    self.settings, self.transport, mailing_list, member, self.templates, self.clock
                )
                if not reply.accepted:
                    self.on_problem(who, f"refused: {reply.line}")
            except MailerError as error:
                self.on_problem(who, f"not sent: {error}")
            except Exception as error:  # keep serving the next ones whatever happened
                self.on_problem(who, f"failed: {type(error).__name__}: {error}")
            finally:
                queue.task_done()

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for the waiting requests, then stop the task."""
        if self.queue is None or self.worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout)
        self.worker.cancel()


async def confirm_by_mail(settings: Settings, mailing_list: MailingList, member: Member) -> None:
    """Double opt-in from the CLI: mail the reader a link to {base_url}/c/{token} now; a
    refusal is a TransportError."""
    transport = choose_transport(settings)
    dirs = template_dirs(settings.templates_dir)
    reply = await send_confirmation(settings, transport, mailing_list, member, dirs)
    if not reply.accepted:
        reason = f"confirmation to {member.email} refused: {reply.line}"
        raise TransportError(transport.description, reason)

"""How readers' messages get built for a run (here, or in DKIM worker processes); its options."""

from __future__ import annotations

import os
from collections.abc import Awaitable
from dataclasses import replace

from mailer import config
from mailer.models import Reader
from mailer.send.build_processes import BuildPool
from mailer.send.messages import MessageFactory, Recipe
from mailer.send.transports import return_path
from mailer.send.types import Build, Message, Ready, Render, SendOptions
from mailer.tokens import Signer, verp_local_part


def build_pool(settings: config.Settings, recipe: Recipe) -> BuildPool | None:
    """With [dkim] set, worker processes that build and sign the messages (not started yet):
    the signature costs more CPU than the rest of a send. None when messages go unsigned."""
    if not settings.dkim.domain:
        return None
    processes = settings.dkim.processes or min(4, max(1, (os.cpu_count() or 1) - 1))
    return BuildPool(recipe, processes)


def message_builder(factory: MessageFactory, campaign_id: int | None) -> Render:
    """Per reader, in this process (dry runs and checks; runs use campaign_builder)."""

    def build(reader: Reader) -> tuple[Message, str]:
        return factory.make(reader, campaign_id)

    return build


def campaign_builder(
    factory: MessageFactory, pool: BuildPool | None, campaign_id: int | None
) -> Build:
    """As message_builder, for the pipeline: with ``pool`` the messages are built in its worker
    processes, and this process only numbers them."""
    if pool is None:
        render = message_builder(factory, campaign_id)

        def build(reader: Reader) -> tuple[Awaitable[Message], str]:
            message, message_id = render(reader)
            return Ready(message), message_id

        return build

    skeleton = factory.compiled.skeleton

    def build_in_pool(reader: Reader) -> tuple[Awaitable[Message], str]:
        message_id = skeleton.message_id(reader.id)
        return pool.build(reader, campaign_id, message_id), message_id

    return build_in_pool


def send_options(
    settings: config.Settings, concurrency: int | None, rate: float | None, limit: int
) -> SendOptions:
    """Options from settings and the run's flags; the return path validated."""
    return SendOptions(
        sender=return_path(settings),
        concurrency=concurrency or settings.smtp.concurrency,
        rate=settings.smtp.rate if rate is None else rate,
        max_per_connection=settings.smtp.max_per_connection,
        max_attempts=settings.send.max_attempts,
        retry_delay=settings.send.retry_delay,
        max_consecutive_failures=settings.send.max_consecutive_failures,
        limit=limit,
    )


def with_verp(
    settings: config.Settings, options: SendOptions, campaign_id: int, signer: Signer
) -> SendOptions:
    """With [bounces] verp, each reader's return path names them and the campaign, signed
    with the workspace's ``signer`` (the run's message factory holds it)."""
    if not settings.bounces.verp:
        return options
    domain = settings.bounces.domain or options.sender.rpartition("@")[2]

    def sender_for(reader: Reader) -> str:
        return f"{verp_local_part(signer, reader.id, campaign_id)}@{domain}"

    return replace(options, sender_for=sender_for)

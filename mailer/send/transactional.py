"""One message to one reader outside any campaign, DKIM-signed and sent like a campaign's."""

from __future__ import annotations

from mailer.config import Settings
from mailer.models import Reply
from mailer.send.dkim import dkim_signer
from mailer.send.transports import return_path
from mailer.send.types import Transport


async def deliver_notice(
    settings: Settings, transport: Transport, recipient: str, message: bytes, smtputf8: bool
) -> Reply:
    """Sign ``message`` (CRLF bytes) when [dkim] is set and deliver it; the server's answer is
    data, an unreachable server raises TransportError."""
    signer = dkim_signer(settings)
    chunks = [message] if signer is None else signer.sign([message])
    connection = await transport.connect()
    try:
        return await connection.send(return_path(settings), recipient, chunks, smtputf8)
    finally:
        await connection.close()

"""The SMTP connection's fast DATA path against aiosmtplib's internals, and the public path
it falls back to when they move: both put the same bytes on the wire."""

from __future__ import annotations

import asyncio
import tomllib
from importlib.metadata import version
from types import SimpleNamespace

import aiosmtplib
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from mailer.config import SmtpSettings
from mailer.send.smtp import INTERNALS, SmtpTransport, fast_data_possible
from tests.conftest import ROOT
from tests.smtp_servers import Recorder, start

BODIES = [
    b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\nmiddle . dot\r\n.\r\nend",
    b"Subject: bare newlines\n\n.dot after LF\nlast line\n",
    b"Subject: bare CR\r\rline\r\n" + b"x" * 900 + b"\r\n.\r\n",
]


def transport(port: int) -> SmtpTransport:
    return SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5))


def on_the_wire(body: bytes) -> bytes:
    """What a correct DATA delivers: CRLF line endings, ending in CRLF."""
    expected = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return expected if expected.endswith(b"\r\n") else expected + b"\r\n"


async def send_all(port: int, fast: bool) -> list[bool]:
    connection = await transport(port).connect()
    used = [connection.fast]
    connection.fast = fast and connection.fast
    try:
        for body in BODIES:
            reply = await connection.send("a@example.org", "b@example.org", [body], False)
            assert reply.code == 250, reply
    finally:
        await connection.close()
    return used


def test_aiosmtplib_still_has_what_the_fast_path_uses() -> None:
    """If this fails, aiosmtplib moved its internals: mailer still sends (through the public
    data()), but slower. Update mailer/send/smtp.py, or pin aiosmtplib below this release."""
    recorder = Recorder()
    server = start(recorder)
    try:
        [fast] = asyncio.run(send_all(server.port, fast=True))
    finally:
        server.stop()
    installed = version("aiosmtplib")
    assert fast, f"aiosmtplib {installed} lacks one of {INTERNALS} on its protocol"
    assert [r.data for r in recorder.received] == [on_the_wire(b) for b in BODIES]


def test_the_installed_aiosmtplib_is_one_the_fast_path_was_tested_with() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [line] = [r for r in project["dependencies"] if Requirement(r).name == "aiosmtplib"]
    allowed: SpecifierSet = Requirement(line).specifier
    assert allowed.contains(aiosmtplib.__version__), (line, aiosmtplib.__version__)
    assert any(spec.operator == "<" for spec in allowed), f"{line}: no upper bound pinned"


def test_the_public_fallback_path_puts_the_same_bytes_on_the_wire() -> None:
    fast, public = Recorder(), Recorder()
    servers = [start(fast), start(public)]
    try:
        asyncio.run(send_all(servers[0].port, fast=True))
        asyncio.run(send_all(servers[1].port, fast=False))
    finally:
        for server in servers:
            server.stop()
    assert [r.data for r in public.received] == [r.data for r in fast.received]
    assert [r.data for r in public.received] == [on_the_wire(b) for b in BODIES]


@pytest.mark.parametrize("missing", INTERNALS)
def test_a_protocol_without_an_internal_is_not_driven_directly(missing: str) -> None:
    present = {name: object() for name in INTERNALS if name != missing}
    client = SimpleNamespace(protocol=SimpleNamespace(**present))
    assert fast_data_possible(client) is False  # type: ignore[arg-type]
    whole = SimpleNamespace(protocol=SimpleNamespace(**present, **{missing: object()}))
    assert fast_data_possible(whole) is True  # type: ignore[arg-type]

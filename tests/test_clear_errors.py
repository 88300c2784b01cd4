"""Errors that say what to do: a named --to reader, SMTP login and TLS mismatches, bench rows."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailer.config import SmtpSettings
from mailer.errors import TransportError
from mailer.send.smtp import SmtpTransport
from tests.conftest import EXAMPLE_REPORT, ROOT, Invoke
from tests.smtp_servers import Recorder, server_tls, start

NAMED = "Séverine Lefèvre <severine@example.org>"


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# 1. mailer render --to 'Name <address>'


def test_render_to_a_named_address_encodes_the_name(mailer: Invoke, workspace: Path) -> None:
    result = mailer("render", str(EXAMPLE_REPORT), "--to", NAMED, "--out", str(workspace / "p"))
    assert result.exit_code == 0, result.output
    raw = (workspace / "p" / "message.eml").read_bytes()
    [to_line] = [line for line in raw.split(b"\r\n") if line.startswith(b"To:")]
    assert to_line.isascii() and b"=?utf-8?" in to_line.lower(), to_line
    message = message_from_bytes(raw, policy=policy.default)
    [address] = message["To"].addresses  # type: ignore[union-attr]
    assert (address.display_name, address.addr_spec) == ("Séverine Lefèvre", "severine@example.org")
    assert "Séverine Lefèvre" in (workspace / "p" / "message.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("to", ["not an address", "Ada <ada@>", "a@example.org, b@example.org"])
def test_render_to_an_invalid_address_is_one_line(mailer: Invoke, workspace: Path, to: str) -> None:
    result = mailer("render", str(EXAMPLE_REPORT), "--to", to, "--out", str(workspace / "p"))
    assert result.exit_code == 1
    assert one_line(result.stderr).startswith(f"error: invalid address {to!r}: ")
    assert not (workspace / "p" / "message.eml").exists()


# 2. SMTP login without a password


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    good = isinstance(data, LoginPassword) and (data.login, data.password) == (b"editor", b"ok")
    return AuthResult(success=good, handled=False)  # handled=False: aiosmtpd answers 535


@pytest.fixture
def auth_port() -> Iterator[int]:
    controller = start(Recorder(), authenticator=authenticator, auth_require_tls=False)
    yield controller.port
    controller.stop()


def connect(**settings: Any) -> str:
    """Connect with these settings; the TransportError's message, or "connected"."""

    async def attempt() -> str:
        try:
            connection = await SmtpTransport(SmtpSettings(host="127.0.0.1", **settings)).connect()
        except TransportError as error:
            return str(error)
        await connection.close()
        return "connected"

    return asyncio.run(attempt())


def test_a_wrong_password_keeps_the_servers_reply(auth_port: int) -> None:
    right = connect(port=auth_port, security="none", username="editor", password="ok")
    assert right == "connected"
    said = connect(port=auth_port, security="none", username="editor", password="nope")
    assert said == (
        f"SMTP server 127.0.0.1:{auth_port}: login refused for 'editor': "
        "535 5.7.8 Authentication credentials invalid"
    )


def test_no_password_set_says_so_and_names_the_variable(auth_port: int) -> None:
    said = connect(port=auth_port, security="none", username="editor", password="")
    assert said == (
        f"SMTP server 127.0.0.1:{auth_port}: login refused for 'editor': no password is set "
        "(set MAILER_SMTP_PASSWORD): 535 5.7.8 Authentication credentials invalid"
    )


# 3. tls against a plain port, starttls against an implicit-TLS port


def test_tls_against_a_plain_smtp_port_says_use_starttls(auth_port: int) -> None:
    said = connect(port=auth_port, security="tls", verify_tls=False, timeout=5)
    assert said == (
        f"SMTP server 127.0.0.1:{auth_port}: the server at 127.0.0.1:{auth_port} speaks plain "
        "SMTP first: use security = starttls"
    )


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An implicit-TLS port (like 465) with a self-signed certificate: it greets after the
    handshake, and says nothing to a client that speaks first."""
    context = server_tls(tmp_path_factory.mktemp("tls"))
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                plain, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the test is over
            with plain:
                try:
                    with context.wrap_socket(plain, server_side=True) as secure:
                        secure.sendall(b"220 tls.example ESMTP\r\n")
                        secure.recv(1024)
                except OSError:
                    continue  # the client gave up, or spoke plain text: next one

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    listener.close()


@pytest.mark.parametrize("security", ["starttls", "none"])
def test_plain_start_against_an_implicit_tls_port_says_use_tls(
    tls_port: int, security: str
) -> None:
    said = connect(port=tls_port, security=security, verify_tls=False, timeout=1)
    assert said == (
        f"SMTP server 127.0.0.1:{tls_port}: the server at 127.0.0.1:{tls_port} expects TLS "
        "from the start: use security = tls"
    )
    # and with security = tls, an untrusted certificate keeps its own explanation
    said = connect(port=tls_port, security="tls", verify_tls=True, timeout=5)
    assert "TLS certificate not trusted" in said and "verify_tls = false" in said, said
    assert len(said.splitlines()) == 1


# 4. the send bench: rows missing from a round, and a row that fails


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("send_bench", ROOT / "bench" / "send_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(per_second: float) -> dict[str, float]:
    return {"per_second": per_second, "send_per_second": per_second * 2, "message_bytes": 9000}


def test_a_row_only_some_rounds_have_is_compared_in_those_rounds() -> None:
    rounds = [
        {"mailer": row(100), "bare aiosmtplib": row(200), "mailmerge 2.3.0": row(50)},
        {"mailer": row(120), "bare aiosmtplib": row(200)},
        {"mailer": row(80), "bare aiosmtplib": row(200)},
    ]
    rows, ratios = bench().summarise(rounds)
    assert rows["mailer"]["per_second"] == 100  # the median of 80, 100, 120
    assert rows["mailmerge 2.3.0"]["per_second"] == 50
    assert ratios["mailer_vs_mailmerge"] == [2.0]
    assert ratios["mailer_vs_bare"] == [0.5, 0.6, 0.4]
    assert "rsa_signed_vs_unsigned" not in ratios  # no round has the signed rows


def test_a_failing_bench_row_is_reported_and_the_others_kept(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "bench" / "send_bench.py"), "-n", "60", "--rounds",
               "2", "--concurrency", "2", "--sink", "aiosmtpd", "--loop", "asyncio",
               "--fail-row", "mailer + DKIM rsa"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "mailer + DKIM rsa failed in round 1: RuntimeError: forced failure" in done.stdout
    assert "mailer + DKIM rsa failed in round 2: RuntimeError: forced failure" in done.stdout
    for kept in ("mailer ", "mailer + DKIM ed25519", "bare aiosmtplib", "mailer / bare"):
        assert kept in done.stdout, done.stdout
    assert "DKIM RSA 2048 signed" not in done.stdout
    assert "Traceback" not in done.stderr, done.stderr

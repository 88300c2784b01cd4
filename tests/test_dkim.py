"""DKIM: signatures made with `cryptography` verify with dkimpy; keygen; signed sends."""

from __future__ import annotations

import re
from pathlib import Path

import dkim
import pytest
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import strategies as st

from mailer.dkim_sign import DkimSigner, canonical_body, dns_record, generate_key
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, Invoke
from tests.smtp_servers import LoopbackController, Recorder


def dns_for(record: str) -> object:
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mailer._domainkey.example.org."
        return record.encode()

    return lookup


@given(
    st.lists(st.sampled_from([b"a", b"b", b" ", b"  ", b"\t", b"\r\n", b"=20", b"."]), max_size=60)
)
def test_canonical_body_equals_dkimpy(pieces: list[bytes]) -> None:
    body = b"".join(pieces)
    assert canonical_body(body) == Relaxed.canonicalize_body(body)


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_signatures_verify_with_dkimpy(tmp_path: Path, kind: str) -> None:
    key = generate_key(kind)
    signer = DkimSigner("example.org", "mailer", key)
    message = (
        b"From: News <news@example.org>\r\nTo: Ada <ada@example.org>\r\nSubject: Hello\r\n"
        b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n"
        b"List-Id: News <news.example.org>\r\nList-Unsubscribe: <https://example.org/u/x>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n"
        b"Body  with   runs \r\n\r\n\r\n"
    )
    signed = signer.sign(message)
    assert dkim.verify(signed, dnsfunc=dns_for(dns_record(key)))
    tampered = signed.replace(b"Subject: Hello", b"Subject: Hullo")
    assert not dkim.verify(tampered, dnsfunc=dns_for(dns_record(key)))
    other = dns_record(generate_key(kind))
    assert not dkim.verify(signed, dnsfunc=dns_for(other))


def test_keygen_then_send_signs_every_message(
    mailer: Invoke, workspace: Path, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    generated = mailer("dkim", "keygen", "--domain", "example.org")
    assert generated.exit_code == 0, generated.output
    assert (workspace / "dkim" / "private.pem").stat().st_mode & 0o777 == 0o600
    [line] = [x for x in generated.stdout.splitlines() if "._domainkey." in x]
    strings = re.findall(r'"([^"]*)"', line)
    record = "".join(strings)
    assert record.startswith("v=DKIM1; k=rsa; p=") and all(len(s) <= 255 for s in strings)
    env = {
        "MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(controller.port),
        "MAILER_SMTP_SECURITY": "none", "MAILER_DKIM_DOMAIN": "example.org",
    }  # fmt: skip
    mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    sent = mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes", env=env)
    assert sent.exit_code == 0, sent.output
    assert len(recorder.received) == 20
    for received in recorder.received:
        assert dkim.verify(received.data, dnsfunc=dns_for(record)), received.recipient
        signed = received.message["DKIM-Signature"]
        names = re.search(r"h=([^;]+);", str(signed)).group(1)  # type: ignore[union-attr]
        required = {"from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
                    "list-unsubscribe-post"}  # fmt: skip
        assert required <= set(names.replace(" ", "").split(":"))


def test_bad_key_file_is_one_line(mailer: Invoke, workspace: Path) -> None:
    (workspace / "dkim").mkdir()
    (workspace / "dkim" / "private.pem").write_text("not a key")
    mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    result = mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes",
                    env={"MAILER_DKIM_DOMAIN": "example.org"})  # fmt: skip
    assert result.exit_code == 1
    assert "private.pem: not a PEM private key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

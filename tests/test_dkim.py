"""DKIM: signatures made with `cryptography` verify with dkimpy; keygen; signed sends."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import dkim
import pytest
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import strategies as st

from mailer.compose.compiled import CompiledCampaign, Links
from mailer.compose.relaxed import relaxed_body
from mailer.compose.report import load_report
from mailer.config import NewsletterSettings
from mailer.models import MailingList, Reader
from mailer.send.dkim import DkimSigner, canonical_headers
from mailer.send.dkim_keys import dns_record, generate_key
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, PUBLICATION, Invoke
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
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


FIELD = st.tuples(
    st.sampled_from([b"From", b"to", b"Subject", b"X-Tab", b"DATE"]),
    st.lists(st.sampled_from([b"a", b"B", b" ", b"  ", b"\t", b"\r\n ", b"\r\n\t", b";"]),
             max_size=12),
)  # fmt: skip


@given(st.lists(FIELD, min_size=1, max_size=6))
def test_canonical_headers_equal_dkimpy(fields: list[tuple[bytes, list[bytes]]]) -> None:
    head = b"\r\n".join(name + b":" + b"".join(value) for name, value in fields)
    parsed, _ = dkim.rfc822_parse(head + b"\r\n\r\n")
    expected = [(name, value) for name, value in Relaxed.canonicalize_headers(parsed)]
    assert canonical_headers(head) == expected


NAMES = st.text(st.sampled_from(["a", "Z", " ", "\t", "é", "=", ".", "\n", "\u2028"]),
                max_size=30)  # fmt: skip
COMPILED: list[CompiledCampaign] = []


@given(name=NAMES, city=NAMES, token=st.text("ab  -_", max_size=20))
def test_precomputed_relaxed_body_equals_dkimpy(name: str, city: str, token: str) -> None:
    if not COMPILED:
        news = NewsletterSettings(base_url="https://bulletin.example.org")
        mailing_list = MailingList(1, "survey", "Lower Vale Water Survey", False)
        COMPILED.append(CompiledCampaign(load_report(EXAMPLE_REPORT), news, mailing_list))
    reader = Reader(1, "ada@example.org", name, {"city": city})
    links = Links(f"https://bulletin.example.org/u/{token}", f"https://x.org/a/{token}")
    chunks, _, relaxed_chunks = COMPILED[0].build_relaxed(reader, links)
    assert relaxed_chunks is not None
    message, relaxed = b"".join(chunks), b"".join(relaxed_chunks)
    body = message.partition(b"\r\n\r\n")[2]
    assert relaxed == Relaxed.canonicalize_body(body)
    body_hash = hashlib.sha256(relaxed).digest()
    key = generate_key("ed25519")
    signed = b"".join(DkimSigner("example.org", "mailer", key).sign(chunks, body_hash))
    assert dkim.verify(signed, dnsfunc=dns_for(dns_record(key)))


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
    signed = b"".join(signer.sign([message]))
    assert dkim.verify(signed, dnsfunc=dns_for(dns_record(key)))
    tampered = signed.replace(b"Subject: Hello", b"Subject: Hullo")
    assert not dkim.verify(tampered, dnsfunc=dns_for(dns_record(key)))
    other = dns_record(generate_key(kind))
    assert not dkim.verify(signed, dnsfunc=dns_for(other))


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_keygen_then_send_signs_every_message(
    mailer: Invoke, workspace: Path, smtp_server: tuple[LoopbackController, Recorder], kind: str
) -> None:
    controller, recorder = smtp_server
    generated = mailer("dkim", "keygen", "--domain", "example.org", "--type", kind)
    assert generated.exit_code == 0, generated.output
    assert (workspace / "dkim" / "private.pem").stat().st_mode & 0o777 == 0o600
    [line] = [x for x in generated.stdout.splitlines() if "._domainkey." in x]
    strings = re.findall(r'"([^"]*)"', line)
    record = "".join(strings)
    assert record.startswith(f"v=DKIM1; k={kind}; p=") and all(len(s) <= 255 for s in strings)
    env = {
        **PUBLICATION,
        "MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(controller.port),
        "MAILER_SMTP_SECURITY": "none", "MAILER_DKIM_DOMAIN": "example.org",
    }  # fmt: skip
    mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    sent = mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes", env=env)
    assert sent.exit_code == 0, sent.output
    assert len(recorder.received) == 20
    for received in recorder.received:
        assert dkim.verify(received.data, dnsfunc=dns_for(record)), received.recipient
        assert max(len(line) for line in received.data.split(b"\r\n")) <= 78
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


def test_the_confirmation_is_signed_like_the_newsletter(
    mailer: Invoke, workspace: Path, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    """A new reader's first message goes through the same signing as every issue."""
    controller, recorder = smtp_server
    generated = mailer("dkim", "keygen", "--domain", "example.org")
    assert generated.exit_code == 0, generated.output
    [line] = [x for x in generated.stdout.splitlines() if "._domainkey." in x]
    record = "".join(re.findall(r'"([^"]*)"', line))
    env = {
        **PUBLICATION,
        "MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(controller.port),
        "MAILER_SMTP_SECURITY": "none", "MAILER_DKIM_DOMAIN": "example.org",
    }  # fmt: skip
    assert mailer("lists", "create", "letters", "--double-opt-in").exit_code == 0
    added = mailer("subscribers", "add", "letters", "bea@example.org", env=env)
    assert added.exit_code == 0, added.output
    [received] = recorder.received
    assert received.message["Subject"] == "Please confirm your subscription to letters"
    assert dkim.verify(received.data, dnsfunc=dns_for(record))
    tampered = received.data.replace(b"Hello,", b"Hullo,")
    assert tampered != received.data and not dkim.verify(tampered, dnsfunc=dns_for(record))

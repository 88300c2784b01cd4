"""Attachments named in the front matter: multipart/mixed, byte for byte, limits, DKIM."""

from __future__ import annotations

import email
import email.policy
import os
import re
from email.message import EmailMessage
from hashlib import sha256
from pathlib import Path

import dkim
import pytest
from dkim.canonicalization import Relaxed

from mailer.compose import parts
from mailer.compose.compiled import CompiledCampaign, compile_campaign, preview_links
from mailer.compose.report import load_report
from mailer.config import NewsletterSettings, SendSettings, Settings
from mailer.config.settings import ImageSettings
from mailer.errors import FileInputError
from mailer.models import MailingList, Reader
from mailer.send.dkim import DkimSigner
from mailer.send.dkim_keys import dns_record, generate_key
from tests.conftest import EXAMPLE_CSV, PUBLICATION, Invoke
from tests.message_checks import check_message
from tests.smtp_servers import LoopbackController, Recorder

LIST = MailingList(1, "survey", "Lower Vale Water Survey", False)
READERS = [Reader(i, f"reader{i}@example.org", f"Reader {i}", {}) for i in range(1, 4)]
LINKS = preview_links("https://news.example.org")
BODY = "# The annual report\n\nDear {{ subscriber.name }}, the full report is attached.\n"
FILES = {
    "annex.pdf": b"%PDF-1.4\n" + os.urandom(300_000) + b"\n%%EOF\n",
    "Données été 2026 — séries complètes des quarante sites de mesure.csv": (
        b"site;nitrate\nMillbrook;0,13\n"
    ),
    "notes.txt": b"caf\xe9 in Latin-1, not UTF-8\n",
}


def write_report(folder: Path, names: list[str], sizes: dict[str, int] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        size = (sizes or {}).get(name)
        (folder / name).write_bytes(FILES[name] if size is None else os.urandom(size))
    listed = "".join(f"  - {name}\n" for name in names)
    path = folder / "report.md"
    path.write_text(f"---\nsubject: The annual report\nattachments:\n{listed}---\n{BODY}")
    return path


def compiled(report: Path, mode: str = "hosted", max_mb: float = 10.0) -> CompiledCampaign:
    settings = Settings(
        workspace=report.parent,
        newsletter=NewsletterSettings(base_url="https://news.example.org"),
        send=SendSettings(max_attachment_mb=max_mb),
        images=ImageSettings(mode=mode),
    )
    return compile_campaign(settings, load_report(report), LIST, "c9")


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_each_attachment_round_trips_byte_for_byte(tmp_path: Path) -> None:
    names = list(FILES)
    campaign = compiled(write_report(tmp_path, names))
    raw = campaign.message(READERS[0], LINKS)
    assert check_message(raw) == []
    message = parse(raw)
    assert message.get_content_type() == "multipart/mixed"
    first, *attached = message.iter_parts()
    assert first.get_content_type() == "multipart/alternative"
    assert [part.get_filename() for part in attached] == names
    for part, name in zip(attached, names, strict=True):
        assert part.get_content_disposition() == "attachment"
        assert part.get_payload(decode=True) == FILES[name]
    types = [part.get_content_type() for part in attached]
    assert types == ["application/pdf", "text/csv", "application/octet-stream"]
    assert attached[1].get_content_charset() == "utf-8"
    assert "filename*0*=utf-8''Donn%C3%A9es" in raw.decode("ascii")  # RFC 2231, over lines
    assert 'filename="annex.pdf"' in raw.decode("ascii")


def test_attachments_are_encoded_once_per_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = compiled(write_report(tmp_path, ["annex.pdf"]))
    encoded = parts.base64_lines(FILES["annex.pdf"])

    def refuse(data: bytes) -> bytes:
        raise AssertionError("encoded again for a reader")

    monkeypatch.setattr(parts, "base64_lines", refuse)
    messages = [campaign.message(reader, LINKS) for reader in READERS]
    for reader, raw in zip(READERS, messages, strict=True):
        assert encoded in raw and raw.count(encoded) == 1
        assert reader.email.encode() in raw
    assert encoded in campaign.skeleton.end  # held in the shared frame, once


def test_inline_images_sit_beside_the_html_and_attachments_after_it_all(tmp_path: Path) -> None:
    from PIL import Image

    report = write_report(tmp_path, ["annex.pdf"])
    Image.new("RGB", (50, 20), "teal").save(tmp_path / "chart.png")
    report.write_text(report.read_text() + "\n![A chart](chart.png)\n")
    message = parse(compiled(report, "inline").message(READERS[0], LINKS))
    shape = [part.get_content_type() for part in message.walk()]
    assert shape == ["multipart/mixed", "multipart/alternative", "text/plain",
                     "multipart/related", "text/html", "image/png", "application/pdf"]  # fmt: skip
    alternative = next(message.iter_parts())
    related = list(alternative.iter_parts())[1]
    assert related.get_param("type") == "text/html"


def test_more_than_1_mb_is_a_warning(tmp_path: Path) -> None:
    report = write_report(tmp_path, ["annex.pdf"], {"annex.pdf": 1_200_000})
    campaign = compiled(report)
    [warning] = [str(notice) for notice in campaign.warnings]
    assert warning.startswith(f"{report}:4: attachments are 1.2 MB in all (annex.pdf 1.2 MB)")
    assert check_message(campaign.message(READERS[0], LINKS)) == []


def test_over_max_attachment_mb_is_refused_naming_the_sizes(tmp_path: Path) -> None:
    report = write_report(tmp_path, ["annex.pdf", "notes.txt"], {"annex.pdf": 2_500_000})
    with pytest.raises(FileInputError) as caught:
        compiled(report, max_mb=2)
    assert str(caught.value) == (
        f"{report}:4: attachments are 2.5 MB in all (annex.pdf 2.5 MB, notes.txt 27 B),"
        " over [send] max_attachment_mb = 2"
    )


def test_a_missing_attachment_names_its_front_matter_line(mailer: Invoke, workspace: Path) -> None:
    report = write_report(workspace, ["annex.pdf"])
    report.write_text(
        report.read_text().replace("  - annex.pdf\n", "  - annex.pdf\n  - gone.pdf\n")
    )
    done = mailer("render", str(report), "--out", str(workspace / "out"))
    assert done.exit_code == 1
    assert done.stderr == f"error: {report}:5: attachment gone.pdf: not found\n"


def test_a_file_listed_twice_is_a_warning_and_attached_once(
    mailer: Invoke, workspace: Path
) -> None:
    report = write_report(workspace, ["annex.pdf", "notes.txt"])
    report.write_text(
        report.read_text().replace("  - notes.txt\n", "  - notes.txt\n  - ./annex.pdf\n")
    )
    said = (f"{report}:6: attachment ./annex.pdf is listed twice (first as annex.pdf): it is"
            " attached once")  # fmt: skip
    assert [str(notice) for notice in compiled(report).warnings] == [said]
    done = mailer("render", str(report), "--out", str(workspace / "out"))
    assert done.exit_code == 0, done.output
    assert done.stderr == f"warning: {said}\n"
    message = parse((workspace / "out" / "message.eml").read_bytes())
    assert [part.get_filename() for part in message.iter_attachments()] == [
        "annex.pdf",
        "notes.txt",
    ]
    strict = mailer("render", str(report), "--out", str(workspace / "o2"), "--strict")
    assert strict.exit_code == 1 and strict.stderr == f"error: {said} (--strict)\n"


def test_the_same_name_listed_twice_is_named_at_its_second_line(workspace: Path) -> None:
    report = write_report(workspace, ["annex.pdf", "notes.txt"])
    report.write_text(
        report.read_text().replace("  - annex.pdf\n", "  - annex.pdf\n  - annex.pdf\n")
    )
    [notice] = [str(notice) for notice in compiled(report).warnings]
    assert notice.startswith(f"{report}:5: attachment annex.pdf is listed twice")


@pytest.mark.parametrize("mode", ["hosted", "inline"])
def test_a_signed_message_with_an_attachment_verifies_with_dkimpy(
    tmp_path: Path, mode: str
) -> None:
    from PIL import Image

    report = write_report(tmp_path, ["annex.pdf", "notes.txt"])
    Image.new("RGB", (50, 20), "teal").save(tmp_path / "chart.png")
    report.write_text(report.read_text() + "\n![A chart](chart.png)\n")
    campaign = compiled(report, mode)
    key = generate_key("ed25519")
    record = dns_record(key).encode()
    for reader in READERS:
        chunks, _, relaxed_chunks = campaign.build_relaxed(reader, LINKS)
        assert relaxed_chunks is not None  # shared chunks canonicalised once per campaign
        message, relaxed = b"".join(chunks), b"".join(relaxed_chunks)
        assert relaxed == Relaxed.canonicalize_body(message.partition(b"\r\n\r\n")[2])
        signer = DkimSigner("example.org", "mailer", key)
        signed = b"".join(signer.sign(chunks, sha256(relaxed).digest()))
        assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
        tampered = signed.replace(b"JVBERi0xLjQK", b"JVBERi0xLjUK", 1)  # "%PDF-1.4" -> 1.5
        assert tampered != signed and not dkim.verify(
            tampered, dnsfunc=lambda name, timeout=5: record
        )


def test_a_signed_send_delivers_the_attachment_intact(
    mailer: Invoke, workspace: Path, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    made = mailer("dkim", "keygen", "--domain", "example.org", "--type", "ed25519")
    assert made.exit_code == 0, made.output
    record = "".join(re.findall(r'"([^"]*)"', made.stdout)).encode()
    report = write_report(workspace / "issue", ["annex.pdf"])
    env = {**PUBLICATION, "MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(controller.port),
           "MAILER_SMTP_SECURITY": "none", "MAILER_DKIM_DOMAIN": "example.org"}  # fmt: skip
    mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    sent = mailer("send", str(report), "--list", "example", "--yes", env=env)
    assert sent.exit_code == 0, sent.output
    assert len(recorder.received) == 20
    for received in recorder.received:
        assert dkim.verify(received.data, dnsfunc=lambda name, timeout=5: record)
        assert check_message(received.data) == []
        [annex] = list(received.message.iter_attachments())
        assert annex.get_payload(decode=True) == FILES["annex.pdf"]


def test_a_resume_sends_the_files_the_campaign_read_first(mailer: Invoke, workspace: Path) -> None:
    """Files changed or deleted after the first run change nothing for the readers after."""
    from PIL import Image

    folder = workspace / "issue"
    folder.mkdir()
    annex = b"%PDF-1.4\n% the first annex\n" + os.urandom(2000)
    (folder / "annex.pdf").write_bytes(annex)
    Image.new("RGB", (40, 20), "teal").save(folder / "chart.png")
    report = folder / "issue.md"
    report.write_text("---\nsubject: Files\nattachments: [annex.pdf]\n---\n# Files\n\n"
                      "![A chart](chart.png)\n", encoding="utf-8")  # fmt: skip
    mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    outbox = workspace / "sent"
    first = mailer("send", str(report), "--list", "example", "--yes", "--limit", "5",
                   "--outbox", str(outbox))  # fmt: skip
    assert first.exit_code == 0, first.output
    (folder / "annex.pdf").unlink()
    Image.new("RGB", (40, 20), "red").save(folder / "chart.png")
    rest = mailer("campaigns", "resume", "1", "--outbox", str(outbox))
    assert rest.exit_code == 0, rest.output
    sent = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in (outbox / "new").iterdir()]  # fmt: skip
    assert len(sent) == 20
    annexes = {part.get_content() for m in sent for part in m.iter_attachments()}  # type: ignore[union-attr]
    assert annexes == {annex}
    images = {re.search(r"/media/([0-9a-f]+\.png)", str(m.get_body(("html",)).get_content()))[1]  # type: ignore[union-attr, index]
              for m in sent}  # fmt: skip
    assert len(images) == 1  # the chart as it was when the campaign began


def test_every_reader_s_message_holds_the_campaign_s_encoded_attachment_not_a_copy(
    tmp_path: Path,
) -> None:
    """The per-reader cost does not grow with the attachments: each message's chunks hold
    the one encoded part the campaign made, and only the reader's own chunks are new."""
    campaign = compiled(write_report(tmp_path, ["annex.pdf"]))
    messages = [campaign.build(reader, LINKS)[0] for reader in READERS]
    [annex] = [chunk for chunk in messages[0] if len(chunk) > len(FILES["annex.pdf"])]
    for chunks in messages[1:]:
        assert sum(chunk is annex for chunk in chunks) == 1
    assert b"".join(messages[0]) != b"".join(messages[1])  # the readers' own parts differ
    wire = email.message_from_bytes(b"".join(messages[0]), policy=email.policy.default)
    [part] = [p for p in wire.walk() if p.get_filename() == "annex.pdf"]
    assert part.get_payload(decode=True) == FILES["annex.pdf"]


def test_an_edition_that_takes_the_default_s_attachments_is_not_warned_of_them_again(
    mailer: Invoke, workspace: Path
) -> None:
    """The default's warning names the default's file and line, once; an edition that lists
    attachments of its own is warned at its own lines."""
    report = write_report(workspace, ["annex.pdf", "notes.txt"])
    report.write_text(
        report.read_text().replace("  - notes.txt\n", "  - notes.txt\n  - ./annex.pdf\n")
    )
    french = workspace / "report.fr.md"
    french.write_text("---\nsubject: Le rapport annuel\n---\nBonjour.\n", encoding="utf-8")
    said = (f"warning: {report}:6: attachment ./annex.pdf is listed twice (first as annex.pdf):"
            " it is attached once\n")  # fmt: skip
    for command in (["render", str(report), "--out", str(workspace / "out")],
                    ["send", str(report), "--list", "nobody", "--dry-run"]):  # fmt: skip
        done = mailer(*command)
        assert done.stderr.startswith(said) and done.stderr.count("warning:") == 1, done.output
    german = workspace / "report.de.md"
    german.write_text("---\nsubject: Der Bericht\nattachments:\n  - notes.txt\n  - notes.txt\n"
                      "---\nHallo.\n", encoding="utf-8")  # fmt: skip
    done = mailer("render", str(report), "--out", str(workspace / "out2"))
    assert done.exit_code == 0, done.output
    assert done.stderr == said + (f"warning: {german}:5: attachment notes.txt is listed twice:"
                                  " it is attached once\n")  # fmt: skip

"""A report's own images: fitted with Pillow, hosted by `mailer serve` or sent inline, checked."""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageCms

from mailer.compose.compiled import CompiledCampaign, compile_campaign, preview_links
from mailer.compose.imaging import fit
from mailer.compose.preview import archive_copy
from mailer.compose.report import load_report
from mailer.config import NewsletterSettings, Settings
from mailer.config.settings import ImageSettings
from mailer.errors import FileInputError
from mailer.models import MailingList, Reader
from tests.conftest import EXAMPLE_CSV, PUBLICATION, Invoke
from tests.message_checks import check_message
from tests.smtp_servers import LoopbackController, Recorder
from tests.test_web import smtp_environ, start_web

LIST = MailingList(1, "survey", "Lower Vale Water Survey", False)
READER = Reader(7, "ada@example.org", "Ada Lovelace", {"city": "Ashby"})
BODY = """# Water and light

Dear {{ subscriber.name or "reader" }}, the photo from the weir:

![The weir at dawn, from the footbridge](images/weir.jpg)

Our logo, small: ![The survey's logo](images/logo%20small.png), and a drawing from a friend:
![A heron](https://example.org/heron.png)

The weir again, the same file: ![The weir](images/weir.jpg)
"""


def photo(width: int, height: int, orientation: int = 1) -> bytes:
    """A JPEG as a phone makes it: EXIF with the camera, GPS position and orientation, an
    sRGB ICC profile, XMP and a comment."""
    image = Image.new("RGB", (width, height))
    for x in range(0, width, 100):
        image.paste((x % 256, 90, 160), (x, 0, x + 50, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (51.0, 28.0, 38.0),
        ExifTags.GPS.GPSLongitudeRef: "W", ExifTags.GPS.GPSLongitude: (0.0, 7.0, 39.0),
    }  # fmt: skip
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = BytesIO()
    image.save(out, "JPEG", exif=exif, icc_profile=icc, comment=b"taken at home",
               xmp=b"<x:xmpmeta>taken at home</x:xmpmeta>")  # fmt: skip
    return out.getvalue()


def write_report(folder: Path, body: str = BODY, front: str = "subject: Water and light\n") -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "images" / "weir.jpg").write_bytes(photo(2400, 1600))
    Image.new("RGBA", (240, 80), (20, 90, 160, 200)).save(folder / "images" / "logo small.png")
    path = folder / "report.md"
    path.write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return path


def settings_for(
    workspace: Path, mode: str, base_url: str = "https://news.example.org"
) -> Settings:
    news = NewsletterSettings(base_url=base_url, sender="Vale Bulletin <bulletin@example.org>")
    return Settings(workspace=workspace, newsletter=news, images=ImageSettings(mode=mode))


def compiled(workspace: Path, mode: str, report: Path) -> CompiledCampaign:
    return compile_campaign(settings_for(workspace, mode), load_report(report), LIST, "c1")


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def clean_of_metadata(data: bytes) -> Image.Image:
    """The image in ``data``, asserted to carry no EXIF, GPS, ICC, XMP or comment."""
    image = Image.open(BytesIO(data))
    assert dict(image.getexif()) == {}
    assert not {"exif", "icc_profile", "xmp", "comment"} & set(image.info)
    assert b"PhoneMaker" not in data and b"taken at home" not in data
    return image


def test_inline_every_cid_reference_has_its_part(tmp_path: Path) -> None:
    campaign = compiled(tmp_path, "inline", write_report(tmp_path))
    message = parse(campaign.message(READER, preview_links("https://news.example.org")))
    assert message.get_content_type() == "multipart/alternative"
    plain, related = message.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"  # the html, then its images
    html = html_of(message)
    cids = set(re.findall(r'src="cid:([^"]+)"', html))
    parts = {str(part["Content-ID"]).strip("<>"): part for part in message.walk()
             if part["Content-ID"]}  # fmt: skip
    assert len(cids) == 2 and cids == set(parts)  # the weir once, however often it is shown
    for cid in cids:
        part = parts[cid]
        assert part.get_content_disposition() == "inline"
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        assert Image.open(BytesIO(data)).get_format_mimetype() == part.get_content_type()
    assert 'src="https://example.org/heron.png"' in html  # remote images stay as written
    assert check_message(campaign.message(READER, preview_links("https://x.org"))) == []


def test_resized_images_are_at_most_1200_wide_shown_at_600_and_carry_no_metadata(
    tmp_path: Path,
) -> None:
    report = write_report(tmp_path)
    (tmp_path / "images" / "weir.jpg").write_bytes(photo(1600, 2400, orientation=6))
    campaign = compiled(tmp_path / "ws", "inline", report)
    [weir, logo] = [placed.picture for placed in campaign.images.placed]
    image = clean_of_metadata(weir.data)
    assert image.size == (1200, 800)  # turned upright as EXIF said, then narrowed
    assert clean_of_metadata(logo.data).size == (240, 80)  # small: kept at its size
    html = html_of(parse(campaign.message(READER, preview_links("https://x.org"))))
    shown = re.findall(r'<img src="cid:[^"]+" alt="([^"]*)" width="(\d+)" height="(\d+)"', html)
    assert ("The weir at dawn, from the footbridge", "600", "400") in shown
    assert ("The survey's logo", "240", "80") in shown
    assert all(int(width) <= 600 for _, width, _ in shown)
    hosted = compiled(tmp_path / "ws", "hosted", report)
    for placed in hosted.images.placed:
        served = tmp_path / "ws" / "media" / placed.picture.name
        assert clean_of_metadata(served.read_bytes()).width <= 1200


def test_hosted_images_answer_200_from_mailer_serve_with_their_type(
    mailer: Invoke, workspace: Path, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    live = start_web(workspace, {})
    try:
        report = write_report(workspace / "issue")
        env = {
            **PUBLICATION,
            **smtp_environ(controller.port),
            "MAILER_NEWSLETTER_BASE_URL": live.url,
        }
        mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
        sent = mailer("send", str(report), "--list", "example", "--yes", env=env)
        assert sent.exit_code == 0, sent.output
        assert "has no alt text" not in sent.stderr
        raw = recorder.received[0].data
        assert check_message(raw) == []
        urls = set(re.findall(r'<img src="([^"]+)"', html_of(parse(raw))))
        local = {url for url in urls if url.startswith(f"{live.url}/media/")}
        assert len(local) == 2 and urls - local == {"https://example.org/heron.png"}
        for url in local:
            with urllib.request.urlopen(url, timeout=20) as answer:
                assert answer.status == 200
                data = answer.read()
                kind = answer.headers["Content-Type"]
                assert "immutable" in answer.headers["Cache-Control"]
                assert "max-age=31536000" in answer.headers["Cache-Control"]
            assert kind == Image.open(BytesIO(data)).get_format_mimetype()
            assert kind == {"jpg": "image/jpeg", "png": "image/png"}[url.rpartition(".")[2]]
            clean_of_metadata(data)
        for bad in ("0" * 32 + ".png", "../mailer.toml", "x.png"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{live.url}/media/{bad}", timeout=20)
            assert refused.value.code == 404
    finally:
        live.stop()


def test_the_text_part_shows_each_image_by_its_alt_text(tmp_path: Path) -> None:
    campaign = compiled(tmp_path, "hosted", write_report(tmp_path))
    text = " ".join(
        text_of(parse(campaign.message(READER, preview_links("https://x.org")))).split()
    )
    assert "[image: The weir at dawn, from the footbridge]" in text
    assert "[image: A heron]" in text and "heron.png" not in text
    assert "images/" not in text and "/media/" not in text


def test_a_missing_image_is_an_error_naming_the_report_line(
    mailer: Invoke, workspace: Path
) -> None:
    body = BODY.replace("images/logo%20small.png", "images/gone.png")
    report = write_report(workspace, body)
    line = next(n for n, text in enumerate(report.read_text().splitlines(), 1) if "gone" in text)
    with pytest.raises(FileInputError) as caught:
        compiled(workspace, "hosted", report)
    assert (caught.value.path, caught.value.line) == (report, line)
    done = mailer("render", str(report), "--out", str(workspace / "out"))
    assert done.exit_code == 1
    assert done.stderr == f"error: {report}:{line}: image images/gone.png not found" + (
        f" ({workspace / 'images' / 'gone.png'})\n"
    )


def test_strict_refuses_an_image_without_alt_text(mailer: Invoke, workspace: Path) -> None:
    report = write_report(workspace, BODY.replace("[A heron]", "[]"))
    line = next(n for n, text in enumerate(report.read_text().splitlines(), 1) if "heron" in text)
    said = f"{report}:{line}: image https://example.org/heron.png has no alt text"
    done = mailer("render", str(report), "--out", str(workspace / "out"))
    assert done.exit_code == 0, done.output
    assert done.stderr.startswith(f"warning: {said}") and len(done.stderr.splitlines()) == 1
    strict = mailer("render", str(report), "--out", str(workspace / "o2"), "--strict")
    assert strict.exit_code == 1
    assert strict.stderr.startswith(f"error: {said}") and strict.stderr.endswith("(--strict)\n")
    assert not (workspace / "o2").exists()
    mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    send = mailer("send", str(report), "--list", "example", "--dry-run", "--strict")
    assert send.exit_code == 1 and send.stderr.startswith(f"error: {said}")


def test_plain_http_is_a_warning(tmp_path: Path) -> None:
    report = write_report(tmp_path, BODY.replace("https://example.org/heron", "http://x.org/h"))
    warnings = [str(notice) for notice in compiled(tmp_path, "hosted", report).warnings]
    line = next(n for n, text in enumerate(report.read_text().splitlines(), 1) if "h.png" in text)
    assert warnings == [
        f"{report}:{line}: image http://x.org/h.png loads over plain http, which many mail"
        " clients block: use https"
    ]


RAW = """
Our chart, in HTML: <img src="images/weir.jpg" alt="The weir, in HTML"> and a remote one
<img src='https://example.org/heron.png' alt="A heron &amp; its nest">.

<figure>
<img src="images/logo%20small.png" alt="The logo, in a figure" />
<!-- <img src="images/last-year.png"> a draft's: no image -->
</figure>
"""


@pytest.mark.parametrize("mode", ["hosted", "inline"])
def test_a_local_img_in_raw_html_is_placed_as_markdown_images_are(
    tmp_path: Path, mode: str
) -> None:
    campaign = compiled(tmp_path / "ws", mode, write_report(tmp_path, "# Raw\n" + RAW))
    assert campaign.warnings == []
    raw = campaign.message(READER, preview_links("https://news.example.org"))
    assert check_message(raw) == []
    message = parse(raw)
    html = re.sub(r"<!--.*?-->", "", html_of(message), flags=re.DOTALL)  # a comment shows none
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == 3 and "images/" not in html  # nothing left pointing at the disk
    assert sources[1] == "https://example.org/heron.png"  # remote: as written
    weir, logo = sources[0], sources[2]
    if mode == "inline":
        parts = {f"cid:{str(part['Content-ID']).strip('<>')}" for part in message.walk()
                 if part["Content-ID"]}  # fmt: skip
        assert {weir, logo} == parts
    else:
        assert weir.startswith("https://news.example.org/media/")
        assert logo.startswith("https://news.example.org/media/")
        served = tmp_path / "ws" / "media" / weir.rpartition("/")[2]
        assert clean_of_metadata(served.read_bytes()).width == 1200
    tag = re.search(r'<img src="[^"]+" alt="The weir, in HTML"[^>]*>', html)
    assert tag and 'width="600"' in tag.group() and 'height="400"' in tag.group()
    text = " ".join(text_of(message).split())
    assert "[image: The weir, in HTML]" in text
    assert "[image: A heron & its nest]" in text
    assert "[image: The logo, in a figure]" in text


def test_a_missing_file_in_raw_html_is_an_error_naming_its_line(
    mailer: Invoke, workspace: Path
) -> None:
    report = write_report(workspace, "# Raw\n" + RAW.replace("logo%20small", "map"))
    line = next(n for n, text in enumerate(report.read_text().splitlines(), 1) if "map" in text)
    done = mailer("render", str(report), "--out", str(workspace / "out"))
    assert done.exit_code == 1
    assert done.stderr == f"error: {report}:{line}: image images/map.png not found" + (
        f" ({workspace / 'images' / 'map.png'})\n"
    )
    assert not (workspace / "out").exists()


def test_an_img_in_raw_html_without_alt_text_is_a_warning_or_under_strict_an_error(
    mailer: Invoke, workspace: Path
) -> None:
    report = write_report(workspace, "# Raw\n" + RAW.replace(' alt="The logo, in a figure"', ""))
    line = next(n for n, text in enumerate(report.read_text().splitlines(), 1) if "logo" in text)
    said = (
        f"{report}:{line}: image images/logo%20small.png has no alt text: readers who do"
        ' not load images, and screen readers, get nothing (write alt="what it shows")'
    )
    done = mailer("render", str(report), "--out", str(workspace / "out"))
    assert done.exit_code == 0, done.output
    assert done.stderr == f"warning: {said}\n"
    assert "[image]" in (workspace / "out" / "message.txt").read_text(encoding="utf-8")
    strict = mailer("render", str(report), "--out", str(workspace / "o2"), "--strict")
    assert strict.exit_code == 1 and strict.stderr == f"error: {said} (--strict)\n"


@pytest.mark.parametrize(
    "written",
    ["![The map](file:///home/ada/map.png)", '<img src="file:///home/ada/map.png" alt="m">'],
)
def test_an_image_from_a_file_url_is_refused_naming_its_line(
    mailer: Invoke, workspace: Path, written: str
) -> None:
    report = write_report(workspace, BODY + f"\nThe map: {written}\n")
    line = len(report.read_text().splitlines())
    done = mailer("render", str(report), "--out", str(workspace / "out"))
    assert done.exit_code == 1
    assert done.stderr == (
        f"error: {report}:{line}: image file:///home/ada/map.png: a message cannot show a file"
        " of this computer; write its path relative to the report, such as images/chart.png\n"
    )


def corrupt_exif(width: int, height: int) -> bytes:
    """A JPEG whose EXIF block says it holds more entries than it does, as a broken camera
    or editor writes it."""
    image = Image.new("RGB", (width, height), (10, 90, 160))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Orientation] = 1
    out = BytesIO()
    image.save(out, "JPEG", exif=exif)
    data = bytearray(out.getvalue())
    tiff = data.index(b"Exif\x00\x00") + 6
    data[tiff + 8 : tiff + 10] = b"\x00\x40"  # 64 entries (big-endian "MM" TIFF header)
    assert data[tiff : tiff + 2] == b"MM"
    return bytes(data)


def test_a_jpeg_with_damaged_exif_is_one_warning_line_and_no_python_warning(
    workspace: Path,
) -> None:
    report = write_report(workspace, "# Damaged\n\n![A damaged photo](images/damaged.jpg)\n")
    (workspace / "images" / "damaged.jpg").write_bytes(corrupt_exif(80, 60))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    command = [sys.executable, "-W", "default", "-m", "mailer", "--workspace", str(workspace),
               "render", str(report), "--out", str(workspace / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = len(report.read_text().splitlines())
    [said] = done.stderr.splitlines()
    assert said.startswith(
        f"warning: {report}:{line}: image images/damaged.jpg has damaged metadata (Corrupt EXIF"
    )
    assert said.endswith("it is dropped, as all metadata is, but check that the picture stands"
                         " the right way up")  # fmt: skip
    sent = (workspace / "out" / "media").iterdir()
    assert [clean_of_metadata(path.read_bytes()).size for path in sent] == [(80, 60)]
    strict = subprocess.run([*command, "--strict"], capture_output=True, text=True, env=env,
                            check=False, timeout=120)  # fmt: skip
    assert strict.returncode == 1 and strict.stderr.startswith(f"error: {report}:{line}: image")
    assert len(strict.stderr.splitlines()) == 1


@pytest.mark.parametrize("mode", ["hosted", "inline"])
def test_render_out_writes_the_images_that_message_html_shows(
    mailer: Invoke, workspace: Path, mode: str
) -> None:
    report = write_report(workspace / "issue")
    out = workspace / "preview"
    env = {"MAILER_IMAGES_MODE": mode, "MAILER_NEWSLETTER_BASE_URL": "https://news.example.org"}
    done = mailer("render", str(report), "--out", str(out), env=env)
    assert done.exit_code == 0, done.output
    page = (out / "message.html").read_text(encoding="utf-8")
    shown = re.findall(r'<img src="([^"]+)"', page)
    local = [src for src in shown if not src.startswith("https://example.org/")]
    assert len(local) == 3 and all(src.startswith("media/") for src in local)
    sent = html_of(parse((out / "message.eml").read_bytes()))
    prefix = "cid:" if mode == "inline" else "https://news.example.org/media/"
    for src in local:
        assert Image.open(out / src).width <= 1200
        name = src.removeprefix("media/")
        assert f'src="{prefix}{name}' in sent
    assert not (workspace / "media").exists()  # a preview publishes nothing


def test_an_inline_campaign_is_archived_with_hosted_images(tmp_path: Path) -> None:
    campaign = compiled(tmp_path, "inline", write_report(tmp_path))
    copy = archive_copy(campaign, "https://news.example.org")
    assert "cid:" not in copy
    for placed in campaign.images.placed:
        assert f'src="https://news.example.org/media/{placed.picture.name}"' in copy
        assert (tmp_path / "media" / placed.picture.name).read_bytes() == placed.picture.data


@pytest.mark.parametrize("mode", ["hosted", "inline"])
def test_spamassassin_scores_a_message_with_images_low(tmp_path: Path, mode: str) -> None:
    body = BODY + "\nThe figures[^1] are in the annex.\n\n[^1]: Measured in October.\n"
    report = write_report(tmp_path, body, "subject: Water and light\nattachments: [annex.pdf]\n")
    (tmp_path / "annex.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 2000 + b"%%EOF\n")
    raw = compiled(tmp_path, mode, report).message(READER, preview_links("https://x.org"))
    assert check_message(raw) == []
    done = subprocess.run(["spamassassin", "-L", "-t"], input=raw, capture_output=True,
                          check=False, timeout=120)  # fmt: skip
    analysis = done.stdout.decode(errors="replace")
    found = re.search(r"^Content analysis details: +\((-?[0-9.]+) points", analysis, re.MULTILINE)
    assert found, analysis[-2000:] + done.stderr.decode(errors="replace")
    assert float(found.group(1)) <= 1.0, analysis[-2000:]


def test_an_image_pillow_cannot_read_names_its_line(tmp_path: Path) -> None:
    report = write_report(tmp_path)
    (tmp_path / "images" / "weir.jpg").write_bytes(b"%PDF-1.4 not a picture")
    line = next(n for n, text in enumerate(report.read_text().splitlines(), 1) if "dawn" in text)
    with pytest.raises(FileInputError, match=r"image images/weir\.jpg is not an image") as caught:
        compiled(tmp_path, "hosted", report)
    assert caught.value.line == line


def test_a_16_bit_grey_image_keeps_its_tones() -> None:
    ramp = Image.new("I;16", (256, 2))
    for x in range(256):
        for y in range(2):
            ramp.putpixel((x, y), x * 257)  # black to white across 0..65535
    out = BytesIO()
    ramp.save(out, format="PNG")
    picture = fit(out.getvalue())
    with Image.open(BytesIO(picture.data)) as seen:
        grey = seen.convert("L")
        tones = [grey.getpixel((x, 0)) for x in (0, 64, 128, 192, 255)]
    assert tones == [0, 64, 128, 192, 255]


def test_two_files_with_the_same_bytes_are_one_inline_part(tmp_path: Path) -> None:
    report = write_report(tmp_path, BODY + "\n![The weir again](images/weir-copy.jpg)\n")
    (tmp_path / "images" / "weir-copy.jpg").write_bytes(
        (tmp_path / "images" / "weir.jpg").read_bytes()
    )
    message = parse(
        compiled(tmp_path, "inline", report).message(
            READER, preview_links("https://news.example.org")
        )
    )
    ids = [str(part["Content-ID"]) for part in message.walk() if part["Content-ID"]]
    assert len(ids) == len(set(ids)) == 2  # the weir (one part for both files) and the logo


def test_an_image_path_with_a_space_is_a_warning(mailer: Invoke, workspace: Path) -> None:
    report = write_report(workspace, BODY + "\nThe map: ![Our map](my pics/map one.png).\n")
    done = mailer("render", str(report), "--out", str(workspace / "out"))
    assert done.exit_code == 0, done.output
    line = len(report.read_text().splitlines())
    said = (f"warning: {report}:{line}: ![Our map](my pics/map one.png) is shown as text:"
            " a path with a space is written <my pics/map one.png> or with %20")  # fmt: skip
    assert said in done.stderr
    strict = mailer("render", str(report), "--out", str(workspace / "o2"), "--strict")
    assert strict.exit_code == 1

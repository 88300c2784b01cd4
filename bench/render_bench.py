"""Time per-recipient message assembly against an EmailMessage per reader, light and heavy."""

from __future__ import annotations

import argparse
import email.policy
import mimetypes
import os
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

from mailer.compose.assets import AssetOptions
from mailer.compose.compiled import CompiledCampaign, Links
from mailer.compose.reference import reference_message
from mailer.compose.report import load_report
from mailer.config import NewsletterSettings
from mailer.models import MailingList, Reader

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "report.md"
NAMES = ["Ada Lovelace", "Zoë Brontë", "José Álvarez", "Małgorzata Wiśniewska", "", "Bob O'Brien"]
IMAGES = """
![The Vale at Harker's Weir in late August, from the footbridge](images/weir.jpg)

![Phosphate at the four sites below Millbrook, August to October](images/phosphate.png)
"""


def write_heavy_report(folder: Path) -> Path:
    """examples/report.md with a 500 KB PDF attached and two images: a 2400 x 1600 photo as a
    phone takes it, and a chart; returns the report's path in ``folder``."""
    from PIL import Image, ImageDraw

    (folder / "images").mkdir(parents=True, exist_ok=True)

    def channel() -> Image.Image:  # smooth shapes with a little grain, as a photo has
        shapes = Image.frombytes("L", (120, 80), os.urandom(120 * 80)).resize((2400, 1600), 3)
        grain = Image.frombytes("L", (2400, 1600), os.urandom(2400 * 1600))
        return Image.blend(shapes, grain, 0.08)

    photo = Image.merge("RGB", (channel(), channel(), channel()))
    photo.save(folder / "images" / "weir.jpg", quality=92)
    chart = Image.new("RGB", (1000, 500), "white")
    draw = ImageDraw.Draw(chart)
    for i, value in enumerate((8, 9, 13, 12, 11, 13)):
        draw.rectangle((80 + i * 150, 450 - value * 30, 180 + i * 150, 450), fill=(11, 92, 173))
    chart.save(folder / "images" / "phosphate.png")
    stream = os.urandom(500_000 - 200)  # as compressed page content: base64 can't shrink it
    pdf = b"%PDF-1.4\n1 0 obj << /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
    (folder / "annex.pdf").write_bytes(pdf + b"\nendstream\nendobj\ntrailer << >>\n%%EOF\n")
    text = EXAMPLE.read_text(encoding="utf-8")
    front, _, body = text.partition("\n---\n")
    heading, _, rest = body.partition("\n\n")
    report = folder / "report.md"
    report.write_text(f"{front}\nattachments: [annex.pdf]\n---\n{heading}\n{IMAGES}\n{rest}")
    return report


def readers(count: int) -> list[Reader]:
    return [
        Reader(i, f"reader{i}@example.org", NAMES[i % len(NAMES)], {"city": "Ashby"})
        for i in range(count)
    ]


def twin(campaign: CompiledCampaign, reader: Reader, links: Links) -> EmailMessage:
    """The message built the slow way: the reference, with the campaign's attachments."""
    message_id = campaign.skeleton.message_id(reader.id)
    date = campaign.skeleton.date().decode()
    built = reference_message(campaign, reader, links, message_id=message_id, date=date)
    for listed in campaign.report.attachments:
        path = campaign.report.path.parent / listed.name
        kind = (mimetypes.guess_type(path.name)[0] or "application/octet-stream").split("/")
        built.add_attachment(path.read_bytes(), kind[0], kind[1], filename=path.name)
    return built


def bench(report: Path, mode: str, count: int, reference: int) -> None:
    news = NewsletterSettings(base_url="https://bulletin.example.org")
    mailing_list = MailingList(1, "survey", "Lower Vale Water Survey", False)
    assets = AssetOptions(mode=mode)  # media=None: nothing is written
    started = time.perf_counter()
    campaign = CompiledCampaign(
        load_report(report), news, mailing_list, campaign_id="bench", assets=assets
    )
    compiled = time.perf_counter() - started
    people = readers(count)
    links = [Links(f"https://bulletin.example.org/u/{i:024x}") for i in range(count)]

    total_bytes = 0
    started = time.perf_counter()
    for reader, link in zip(people, links, strict=True):
        chunks, _ = campaign.build(reader, link)  # what the send pipeline gets: no join
        total_bytes += sum(map(len, chunks))
    fast = (time.perf_counter() - started) / count

    print(f"report           {report} ({mode} images)")
    print(f"compile once     {compiled * 1e3:.1f} ms (Markdown, images, attachments, templates,"
          " CSS inlining, skeleton)")  # fmt: skip
    print(f"fast assembly    {fast * 1e6:.1f} µs per recipient over {count} recipients"
          f" ({1 / fast:,.0f} messages/s, {total_bytes / count / 1024:.1f} KiB each)")  # fmt: skip
    if mode == "inline" or not reference:
        print()
        return  # the reference builds no multipart/related
    shown = min(reference, count)
    started = time.perf_counter()
    for reader, link in zip(people[:shown], links[:shown], strict=True):
        twin(campaign, reader, link).as_bytes(policy=email.policy.SMTP)
    slow = (time.perf_counter() - started) / shown
    print(f"EmailMessage     {slow * 1e6:.1f} µs per recipient over {shown} recipients"
          f" ({1 / slow:,.0f} messages/s)")  # fmt: skip
    print(f"ratio            {slow / fast:.1f}x faster\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] + " Heavy: examples/report.md with a 500 KB PDF"
        " attached and two images, hosted and inline."
    )
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--reference", type=int, default=1_000, help="EmailMessage builds to time")
    parser.add_argument("--report", default="both",
                        help="example, heavy, both (default) or the path of a report")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runs: list[tuple[Path, str]] = []
        if args.report in ("example", "both"):
            runs.append((EXAMPLE, "hosted"))
        if args.report in ("heavy", "both"):
            heavy = write_heavy_report(Path(folder))
            runs += [(heavy, "hosted"), (heavy, "inline")]
        if not runs:
            runs.append((Path(args.report), "hosted"))
        for report, mode in runs:
            bench(report, mode, args.recipients, args.reference)


if __name__ == "__main__":
    main()

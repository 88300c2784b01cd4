"""Time per-recipient message assembly for examples/report.md against an EmailMessage per reader."""

from __future__ import annotations

import argparse
import email.policy
import time
from pathlib import Path

from mailer.compose.compiled import CompiledCampaign, Links
from mailer.compose.reference import reference_message
from mailer.compose.report import load_report
from mailer.config import NewsletterSettings
from mailer.models import MailingList, Reader

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["Ada Lovelace", "Zoë Brontë", "José Álvarez", "Małgorzata Wiśniewska", "", "Bob O'Brien"]


def readers(count: int) -> list[Reader]:
    return [
        Reader(i, f"reader{i}@example.org", NAMES[i % len(NAMES)], {"city": "Ashby"})
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--reference", type=int, default=1_000, help="EmailMessage builds to time")
    parser.add_argument("--report", type=Path, default=ROOT / "examples" / "report.md")
    args = parser.parse_args()

    news = NewsletterSettings(base_url="https://bulletin.example.org")
    mailing_list = MailingList(1, "survey", "Lower Vale Water Survey", False)
    started = time.perf_counter()
    campaign = CompiledCampaign(load_report(args.report), news, mailing_list, campaign_id="bench")
    compiled = time.perf_counter() - started
    people = readers(args.recipients)
    links = [Links(f"https://bulletin.example.org/u/{i:024x}") for i in range(args.recipients)]

    total_bytes = 0
    started = time.perf_counter()
    for reader, link in zip(people, links, strict=True):
        total_bytes += len(campaign.message(reader, link))
    fast = (time.perf_counter() - started) / args.recipients

    count = min(args.reference, args.recipients)
    started = time.perf_counter()
    for reader, link in zip(people[:count], links[:count], strict=True):
        message_id = campaign.skeleton.message_id(reader.id)
        date = campaign.skeleton.date().decode()
        built = reference_message(campaign, reader, link, message_id=message_id, date=date)
        built.as_bytes(policy=email.policy.SMTP)
    slow = (time.perf_counter() - started) / count

    print(f"report           {args.report}")
    print(f"compile once     {compiled * 1e3:.1f} ms (Markdown, templates, CSS inlining, skeleton)")
    print(
        f"fast assembly    {fast * 1e6:.1f} µs per recipient over {args.recipients} recipients"
        f" ({1 / fast:,.0f} messages/s, {total_bytes / args.recipients / 1024:.1f} KiB each)"
    )
    print(
        f"EmailMessage     {slow * 1e6:.1f} µs per recipient over {count} recipients"
        f" ({1 / slow:,.0f} messages/s)"
    )
    print(f"ratio            {slow / fast:.1f}x faster")


if __name__ == "__main__":
    main()

"""Import benchmark: generate N readers as CSV (a plain layout, and Mailchimp's 22-column export),
import each with the real CLI, twice, into SQLite and PostgreSQL (a private server, as the tests
start one), and print rows/s, peak RSS and the ratios between layouts and engines."""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.postgres_server import postgres_server

NAMES = ["Zoë Brontë", "José Álvarez", "Łukasz Nowak", "Ada Lovelace", "Søren Ødegaard", "Li Wei"]
CITIES = ["Haworth", "Sevilla", "Kraków", "London", "Bergen", "Chengdu"]
PLACES = [("51.5072", "-0.1276", "0", "1", "Europe/London", "GB", "ENG"),
          ("37.3891", "-5.9845", "1", "2", "Europe/Madrid", "ES", "AN"),
          ("", "", "", "", "", "", "")]  # fmt: skip
TAGS = ["", '"steward"', '"steward","press"', '"2021 donor"']
# The subscribed export of a Mailchimp audience with its default merge fields: 22 columns.
MAILCHIMP = ("Email Address,First Name,Last Name,Address,Phone Number,MEMBER_RATING,OPTIN_TIME,"
             "OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,"
             "REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS")  # fmt: skip


def generate(path: Path, rows: int) -> None:
    rng = random.Random(7)
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,city,member_since\n")
        for i in range(rows):
            name = rng.choice(NAMES)
            out.write(
                f"reader{i}@example{i % 97}.org,{name},{rng.choice(CITIES)},{2000 + i % 26}\n"
            )


def generate_mailchimp(path: Path, rows: int) -> None:
    """Rows as Mailchimp writes them: quoted times, IPs, places, ids, quoted tags."""
    rng = random.Random(7)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(MAILCHIMP + "\r\n")
        for i in range(rows):
            first, last = rng.choice(NAMES).split(" ")
            day = f"20{10 + i % 14}-{1 + i % 12:02d}-{1 + i % 28:02d}"
            optin = f'"{day} 09:{i % 60:02d}:{(i * 7) % 60:02d}"' if i % 3 else ""
            ip = f"198.51.{i % 256}.{(i * 13) % 256}" if i % 3 else ""
            confirm = f'"{day} 09:{i % 60:02d}:{(i * 11) % 60:02d}"'
            place = ",".join(rng.choice(PLACES))
            tags = rng.choice(TAGS)
            tags = f'"{tags.replace(chr(34), chr(34) * 2)}"' if tags else ""
            out.write(
                f"reader{i}@example{i % 97}.org,{first},{last},,,{1 + i % 5},{optin},{ip},"
                f"{confirm},{ip},{place},{confirm},{100000 + i},{i * 2654435761 % 16**10:010x},,"
                f"{tags}\r\n"
            )


def run(workspace: Path, env: dict[str, str], *args: str) -> tuple[float, int, str]:
    """Run ``mailer`` in a child; return wall seconds, peak child RSS (KiB), stdout."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mailer", "--workspace", str(workspace), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0,):
        sys.exit(f"mailer {' '.join(args)} failed: {done.stderr.strip()}")
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.stdout.strip()


def layout(
    rows: int, make: Callable[[Path, int], None], name: str, env: dict[str, str]
) -> dict[str, object]:
    """Import ``rows`` readers of one layout into a new workspace, twice."""
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        source = workspace / name
        make(source, rows)
        run(workspace, env, "lists", "create", "bench")
        first, rss, summary = run(workspace, env, "subscribers", "import", "bench", str(source))
        again, rss_again, summary_again = run(
            workspace, env, "subscribers", "import", "bench", str(source)
        )
    return {
        "first_import_s": round(first, 2),
        "first_rows_per_s": round(rows / first),
        "reimport_s": round(again, 2),
        "reimport_rows_per_s": round(rows / again),
        "peak_rss_mb": round(max(rss, rss_again) / 1024, 1),
        "summary": summary,
        "summary_again": summary_again,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--layout", choices=("both", "plain", "mailchimp"), default="both")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--segments",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="then time --where segments over as many readers (bench/segment_bench.py)",
    )
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"])
    options = parser.parse_args()
    result: dict[str, object] = {"rows": options.rows}
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    server = postgres_server() if "postgresql" in options.engines else None
    pg = next(server) if server is not None else None
    try:
        for engine in options.engines:
            env = dict(base)
            if engine == "postgresql" and pg is not None:
                env["MAILER_DATABASE_URL"] = pg.create_database()
            suffix = "" if engine == "sqlite" else f" ({engine})"
            if options.layout in ("both", "plain"):
                result[f"plain{suffix}"] = layout(options.rows, generate, "readers.csv", env)
            if options.layout in ("both", "mailchimp"):
                result[f"mailchimp{suffix}"] = layout(
                    options.rows, generate_mailchimp, "subscribed_members_export_bench.csv", env
                )
    finally:
        for _ in server or ():  # stops it, removes its folder
            pass
    plain, mailchimp = result.get("plain"), result.get("mailchimp")
    if isinstance(plain, dict) and isinstance(mailchimp, dict):
        result["mailchimp_over_plain_time"] = round(
            mailchimp["first_import_s"] / plain["first_import_s"], 2
        )
    on_pg = result.get("plain (postgresql)")
    if isinstance(plain, dict) and isinstance(on_pg, dict):
        result["postgresql_over_sqlite_time"] = round(
            on_pg["first_import_s"] / plain["first_import_s"], 2
        )
    if options.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if isinstance(value, dict):
                print(key)
                for name, figure in value.items():
                    print(f"{name:>22}  {figure}")
            else:
                print(f"{key}  {value}")
    if options.segments:  # picking a segment's readers, over a database of the same size
        segments = Path(__file__).with_name("segment_bench.py")
        subprocess.run([sys.executable, str(segments), "--rows", str(options.rows)], check=True)


if __name__ == "__main__":
    main()

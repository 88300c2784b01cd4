"""Import benchmark: generate N readers as CSV, import them with the real CLI, print rows/s, RSS."""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAMES = ["Zoë Brontë", "José Álvarez", "Łukasz Nowak", "Ada Lovelace", "Søren Ødegaard", "Li Wei"]
CITIES = ["Haworth", "Sevilla", "Kraków", "London", "Bergen", "Chengdu"]


def generate(path: Path, rows: int) -> None:
    rng = random.Random(7)
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,city,member_since\n")
        for i in range(rows):
            name = rng.choice(NAMES)
            out.write(
                f"reader{i}@example{i % 97}.org,{name},{rng.choice(CITIES)},{2000 + i % 26}\n"
            )


def run(workspace: Path, *args: str) -> tuple[float, int, str]:
    """Run ``mailer`` in a child; return wall seconds, peak child RSS (KiB), stdout."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mailer", "--workspace", str(workspace), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0,):
        sys.exit(f"mailer {' '.join(args)} failed: {done.stderr.strip()}")
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        source = workspace / "readers.csv"
        generate(source, options.rows)
        run(workspace, "lists", "create", "bench")
        first, rss, summary = run(workspace, "subscribers", "import", "bench", str(source))
        again, rss_again, summary_again = run(
            workspace, "subscribers", "import", "bench", str(source)
        )
        result = {
            "rows": options.rows,
            "first_import_s": round(first, 2),
            "first_rows_per_s": round(options.rows / first),
            "reimport_s": round(again, 2),
            "reimport_rows_per_s": round(options.rows / again),
            "peak_rss_mb": round(max(rss, rss_again) / 1024, 1),
            "summary": summary,
            "summary_again": summary_again,
        }
    if options.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>20}  {value}")


if __name__ == "__main__":
    main()

"""Several hosts on one campaign, simulated on loopback: three `campaigns work` processes, each
with its own workspace, settings and relay, one PostgreSQL; one of them is killed mid-run.

Run by hand from the repository (needs PostgreSQL's Debian package):
    .venv/bin/python bench/multihost_bench.py [-n 100000] [--kill-at 0.3] [--lease 5]
Prints the readers reached, the duplicates against the bound the campaign recorded (the killed
worker's messages in flight), and the time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from workers_bench import mailer

from tests.postgres_server import postgres_server
from tests.smtp_servers import Recorder, start

REPORT = Path(__file__).resolve().parent.parent / "examples" / "report.md"
HOSTS = ("host-a", "host-b", "host-c")


def settings(url: str, port: int, lease: float) -> str:
    """One host's mailer.toml: the shared database, its own relay."""
    return (
        f'[newsletter]\nsender = "Bench <bench@example.org>"\n'
        f'postal_address = "1 Bench Road, Oslo"\nbase_url = "https://bench.example.org"\n'
        f'[database]\nurl = "{url}"\n[smtp]\nhost = "127.0.0.1"\nport = {port}\n'
        f'security = "none"\n[send]\nlease_seconds = {lease}\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="readers (default 100,000)")
    parser.add_argument("--kill-at", type=float, default=0.3, help="share sent when one dies")
    parser.add_argument("--lease", type=float, default=5.0, help="[send] lease_seconds")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}  # each its toml
    relays = [Recorder() for _ in HOSTS]
    servers = [start(relay) for relay in relays]
    server = postgres_server()
    try:
        url = next(server).create_database()
        with tempfile.TemporaryDirectory() as name:
            root = Path(name)
            hosts = [root / host for host in HOSTS]
            for folder, relay in zip(hosts, servers, strict=True):
                folder.mkdir()
                (folder / "mailer.toml").write_text(settings(url, relay.port, args.lease))
            readers = root / "readers.csv"
            with readers.open("w") as handle:
                handle.write("email,name\n")
                handle.writelines(f"reader{i}@example.org,Reader {i}\n" for i in range(args.n))
            started = time.perf_counter()
            mailer(hosts[0], env, "subscribers", "import", "big", str(readers), "--create-list")
            imported = time.perf_counter() - started
            mailer(hosts[0], env, "send", str(REPORT), "--list", "big", "--yes", "--limit", "1")
            for folder in hosts[1:]:  # the same secret: the links in every message are good
                shutil.copy(hosts[0] / ".mailer-secret", folder / ".mailer-secret")
            started = time.perf_counter()
            workers = [subprocess.Popen(
                [sys.executable, "-m", "mailer", "--workspace", str(folder), "campaigns", "work",
                 "1", "--name", folder.name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=env,
            ) for folder in hosts]  # fmt: skip
            while sum(len(r.received) for r in relays) < args.kill_at * args.n:
                time.sleep(0.01)
            workers[0].send_signal(signal.SIGKILL)
            killed_after = sum(len(r.received) for r in relays)
            for worker in workers[1:]:
                _, err = worker.communicate()
                assert worker.returncode == 0, err
            workers[0].wait()
            elapsed = time.perf_counter() - started
    finally:
        for controller in servers:
            controller.stop()
    with psycopg.connect(url) as db:
        [(settings_json, status)] = db.execute("SELECT settings, status FROM campaigns").fetchall()
        per = dict(db.execute("SELECT claimed_by, COUNT(*) FROM deliveries WHERE status = 'sent'"
                              " GROUP BY claimed_by").fetchall())  # fmt: skip
    for _ in server:
        pass
    counts: Counter[str] = Counter()
    for relay in relays:
        counts.update(relay.counts())
    bound = json.loads(settings_json)["in_flight_limit"]
    duplicates = sum(n - 1 for n in counts.values())
    result = {
        "readers": args.n, "reached": len(counts), "duplicates": duplicates, "bound": bound,
        "killed_after": killed_after, "status": status, "seconds": round(elapsed, 1),
        "import_seconds": round(imported, 1), "sent_per_worker": per, "cpus": os.cpu_count(),
    }  # fmt: skip
    print(f"{args.n} readers, 3 workers (host-a killed after {killed_after} messages in all),"
          f" one PostgreSQL, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"reached {len(counts)} distinct readers of {args.n}; {duplicates} duplicates"
          f" (bound: {bound}, the killed worker's messages in flight); campaign {status}"
          f" in {elapsed:.1f} s")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()

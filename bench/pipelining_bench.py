"""Pipelining on and off, side by side, over one connection to a server whose replies lag."""

# Run by hand from the repository (the test extra installs aiosmtpd):
#   .venv/bin/python bench/pipelining_bench.py [--messages 300] [--delay-ms 2] [--rounds 3]
# A proxy on 127.0.0.1 holds each chunk the server writes for --delay-ms before passing it on,
# as a relay across a network would: a round trip costs that much. The ratio of the two rates
# from the same run is what to quote, not either rate alone.

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailer.config import SmtpSettings
from mailer.send.smtp import SmtpTransport
from tests.smtp_servers import PipeliningServer, start_pipelining

SENDER = "news@example.org"


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, delay: float) -> None:
    """Pass each chunk on ``delay`` seconds after it arrived (latency, not a queue of waits)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def send() -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            sink.write(data)
            await sink.drain()
        sink.close()

    sender = asyncio.create_task(send())
    while data := await source.read(65536):
        queue.put_nowait((loop.time() + delay, data))
    queue.put_nowait(None)
    await sender


async def _rates(port: int, messages: int, delay: float) -> dict[bool, float]:
    relays: set[asyncio.Task[object]] = set()

    async def relay(client: asyncio.StreamReader, back: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            relays.add(task)
        server, forward = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(_pump(client, forward, 0.0), _pump(server, back, delay))

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    lagging = proxy.sockets[0].getsockname()[1]
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=lagging, security="none"))
    rates = {}
    for on in (False, True):
        connection = await transport.connect()
        connection.pipelining = on  # type: ignore[attr-defined]
        started = time.perf_counter()
        for n in range(messages):
            body = f"From: {SENDER}\r\nSubject: message {n}\r\n\r\nHello {n}\r\n".encode()
            reply = await connection.send(SENDER, f"r{n}@example.org", body, False)
            assert reply.code == 250, reply
        rates[on] = messages / (time.perf_counter() - started)
        await connection.close()
    await asyncio.gather(*relays, return_exceptions=True)  # each ends when its client closes
    proxy.close()
    await proxy.wait_closed()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--delay-ms", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = start_pipelining(PipeliningServer())
    ratios = []
    try:
        for round_ in range(1, args.rounds + 1):
            rates = asyncio.run(_rates(server.port, args.messages, args.delay_ms / 1000))
            ratios.append(rates[True] / rates[False])
            print(f"round {round_}: one command per round trip {rates[False]:.0f} msg/s,"
                  f" pipelined {rates[True]:.0f} msg/s, ratio {ratios[-1]:.2f}x")  # fmt: skip
    finally:
        server.stop()
    print(
        f"median ratio {statistics.median(ratios):.2f}x over {args.rounds} rounds"
        f" ({args.messages} messages, {args.delay_ms:g} ms per reply, one connection)"
    )


if __name__ == "__main__":
    main()

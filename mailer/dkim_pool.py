"""DKIM signing in worker processes, so the key operation runs beside the event loop, not in it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import struct
import sys
from collections import deque
from collections.abc import Awaitable, Generator
from typing import Any, cast

from cryptography.hazmat.primitives import serialization

from mailer.dkim_sign import DkimSigner, header_end, private_pem
from mailer.errors import SigningError
from mailer.mime import relaxed_body

LENGTH = struct.Struct("!I")
STDERR_KEPT = 2000  # bytes of a worker's stderr kept to explain why it died
# Requests travel in batches, so a worker wakes once per batch rather than once per message;
# the campaign builds messages well ahead of sending them, so the wait costs no throughput.
BATCH = 8
BATCH_WAIT = 0.002  # seconds a request waits at most for its batch to fill


def frame(payload: bytes) -> bytes:
    return LENGTH.pack(len(payload)) + payload


class Frames:
    """Splits a byte stream into the length-prefixed frames ``frame`` makes."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self.buffer
        buffer += data
        frames, position = [], 0
        while len(buffer) - position >= LENGTH.size:
            (size,) = LENGTH.unpack_from(buffer, position)
            start = position + LENGTH.size
            if len(buffer) - start < size:
                break
            frames.append(bytes(buffer[start : start + size]))
            position = start + size
        del buffer[:position]
        return frames


class SigningPool:
    """``processes`` signing workers fed body hash + header block, answering with the
    DKIM-Signature line. Requests go out in batches (BATCH), and each worker signs whatever
    has arrived before answering in one write."""

    def __init__(self, signer: DkimSigner, processes: int) -> None:
        self.signer, self.processes = signer, max(1, processes)
        self.workers: list[_Worker] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        names = {"domain": self.signer.domain, "selector": self.signer.selector}
        setup = json.dumps(names).encode() + b"\n" + private_pem(self.signer.key)
        for _ in range(self.processes):
            _, worker = await loop.subprocess_exec(
                lambda: _Worker(loop), sys.executable, "-m", __name__,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            worker.send(setup)
            self.workers.append(worker)

    def sign(self, message: bytes, body_hash: bytes | None = None) -> Awaitable[bytes]:
        """Start signing ``message``; awaiting the result gives it back with its DKIM-Signature
        header in front, as DkimSigner.sign does. ``body_hash``, when known, is the SHA-256 of
        the relaxed canonical body (hashing here costs less than piping the body over)."""
        end = header_end(message)
        if body_hash is None:
            body_hash = hashlib.sha256(relaxed_body(message[end + 4 :])).digest()
        if not self.workers:
            raise SigningError("the DKIM signing processes are not running")
        worker = min(self.workers, key=_Worker.outstanding)
        return _Signed(worker.request(body_hash + message[:end]), message)

    async def close(self) -> None:
        """End the workers (EOF on their input) and wait for them; kill any that hang."""
        for worker in self.workers:
            worker.finish()
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.ended, 5)
            except TimeoutError:
                worker.kill()
        self.workers = []


class _Signed:
    """A message whose DKIM-Signature header is on the way (no task: one future, awaited)."""

    __slots__ = ("header", "message")

    def __init__(self, header: asyncio.Future[bytes], message: bytes) -> None:
        self.header, self.message = header, message

    def __await__(self) -> Generator[Any, None, bytes]:
        header = yield from self.header.__await__()
        return header + self.message


class _Worker(asyncio.SubprocessProtocol):
    """The parent's side of one signing process: replies come back in request order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.frames = Frames()
        self.waiting: deque[asyncio.Future[bytes]] = deque()
        self.outgoing: list[bytes] = []
        self.stderr = b""
        self.failure = ""
        self.ended: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.SubprocessTransport | None = None
        self.code: int | None = None
        self.timer: asyncio.TimerHandle | None = None

    def outstanding(self) -> int:
        return len(self.waiting)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.SubprocessTransport, transport)  # uvloop's is no subclass

    def send(self, payload: bytes) -> None:
        self.outgoing.append(frame(payload))
        if len(self.outgoing) >= BATCH:
            self._flush()
        elif self.timer is None:
            self.timer = self.loop.call_later(BATCH_WAIT, self._flush)

    def request(self, payload: bytes) -> asyncio.Future[bytes]:
        if self.failure:
            raise SigningError(self.failure)
        future = self.loop.create_future()
        self.waiting.append(future)
        self.send(payload)
        return future

    def _flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        data, self.outgoing = b"".join(self.outgoing), []
        stdin = self.transport.get_pipe_transport(0) if self.transport else None
        if stdin is not None and not stdin.is_closing():
            stdin.write(data)  # type: ignore[attr-defined]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.stderr = (self.stderr + data)[-STDERR_KEPT:]
            return
        for payload in self.frames.feed(data):
            future = self.waiting.popleft()
            if future.done():  # its sender was cancelled (abort)
                continue
            if payload[:1] == b"+":
                future.set_result(payload[1:])
            else:
                future.set_exception(SigningError(payload[1:].decode(errors="replace")))

    def process_exited(self) -> None:
        self.code = self.transport.get_returncode() if self.transport else None

    def connection_lost(self, exc: Exception | None) -> None:
        """The process has exited and its pipes are drained, stderr included."""
        self._fail(f"the DKIM signing process exited with code {self.code}")
        if not self.ended.done():
            self.ended.set_result(None)

    def _fail(self, reason: str) -> None:
        last = self.stderr.decode(errors="replace").strip().splitlines()
        self.failure = self.failure or (f"{reason}: {last[-1]}" if last else reason)
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(SigningError(self.failure))
                future.exception()  # a stopped campaign leaves some unawaited: no GC warning

    def finish(self) -> None:
        self._flush()
        stdin = self.transport.get_pipe_transport(0) if self.transport else None
        if stdin is not None:
            stdin.close()

    def kill(self) -> None:
        if self.transport is not None and self.transport.get_returncode() is None:
            self.transport.kill()


def serve() -> None:
    """The worker: the first frame carries domain, selector and key; every later frame is the
    body hash (32 bytes) and the header block, answered with b"+" + header line or b"-" +
    error."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it drains first
    os.nice(5)
    frames, signer = Frames(), None
    while chunk := os.read(0, 1 << 20):
        replies = []
        for payload in frames.feed(chunk):
            if signer is None:
                settings, _, pem = payload.partition(b"\n")
                names = json.loads(settings)
                key = serialization.load_pem_private_key(pem, password=None)
                signer = DkimSigner(names["domain"], names["selector"], key)  # type: ignore[arg-type]
                continue
            try:
                header = signer.header(payload[32:], payload[:32])
                replies.append(frame(b"+" + header))
            except Exception as error:  # one bad message must not end the worker
                replies.append(frame(b"-" + f"cannot DKIM-sign: {error}".encode()))
        data = memoryview(b"".join(replies))
        while data:
            data = data[os.write(1, data) :]


if __name__ == "__main__":
    serve()

"""Worker processes that build and DKIM-sign readers' messages beside the event loop."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import signal
import struct
import sys
from collections import deque
from typing import cast

from mailer import config
from mailer.errors import InputError, MailerError, WorkerError
from mailer.models import AnyAttributes, Reader
from mailer.send.messages import MessageFactory, Recipe
from mailer.send.types import Message

LENGTH = struct.Struct("!I")
STDERR_KEPT = 2000  # bytes of a worker's stderr kept to explain why it died
# Requests travel in batches, so a worker wakes once per batch rather than once per message;
# the campaign asks for messages well ahead of sending them, so the wait costs no throughput.
BATCH = 8
BATCH_WAIT = 0.002  # seconds a request waits at most for its batch to fill


def frame(payload: bytes) -> bytes:
    return b"".join(framed([payload]))


def framed(chunks: list[bytes]) -> list[bytes]:
    """A frame of ``chunks`` as chunks: its length, then them, for one join where written."""
    return [LENGTH.pack(sum(map(len, chunks))), *chunks]


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


class BuildPool:
    """``processes`` workers, each with its own MessageFactory made from the campaign's
    Recipe, that build and sign messages while the event loop talks SMTP. Requests go out in
    batches (BATCH); each worker answers whatever has arrived in one write."""

    def __init__(self, recipe: Recipe, processes: int) -> None:
        self.recipe, self.processes = recipe.without_passwords(), max(1, processes)
        self.workers: list[_Worker] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        setup = pickle.dumps(self.recipe)
        # The settings travel pickled, so the MAILER_* variables (passwords among them) stay
        # here; a session of their own keeps a terminal's Ctrl-C for this process, which drains.
        env = config.environment_without_settings()
        for _ in range(self.processes):
            try:
                _, worker = await loop.subprocess_exec(
                    lambda: _Worker(loop), sys.executable, "-m", __name__,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
                )  # fmt: skip
            except OSError as error:
                raise WorkerError(f"cannot start a message-building process: {error}") from None
            worker.send(setup)
            self.workers.append(worker)

    def build(
        self, reader: Reader, campaign_id: int | None, message_id: str
    ) -> asyncio.Future[Message]:
        """Ask for ``reader``'s finished message, as MessageFactory.make would return it.
        Awaiting raises InputError when it cannot be rendered, WorkerError when a worker
        fails."""
        if not self.workers:
            raise WorkerError("the message-building processes are not running")
        worker = min(self.workers, key=_Worker.outstanding)
        stand_in = isinstance(reader.attributes, AnyAttributes)  # keeps its blank-for-any-key
        request = [reader.id, reader.email, reader.name, dict(reader.attributes), stand_in,
                   campaign_id, message_id, reader.lang]  # fmt: skip
        return worker.request(json.dumps(request).encode())

    async def __aenter__(self) -> BuildPool:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

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


class _Worker(asyncio.SubprocessProtocol):
    """The parent's side of one worker process: replies come back in request order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.frames = Frames()
        self.waiting: deque[asyncio.Future[Message]] = deque()
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

    def request(self, payload: bytes) -> asyncio.Future[Message]:
        if self.failure:
            raise WorkerError(self.failure)
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
            kind, text = payload[:1], payload[1:]
            if kind == b"+":
                future.set_result([text])
            elif kind == b"!":  # this reader's message cannot be rendered
                _reject(future, InputError(text.decode(errors="replace")))
            else:
                _reject(future, WorkerError(text.decode(errors="replace")))

    def process_exited(self) -> None:
        self.code = self.transport.get_returncode() if self.transport else None

    def connection_lost(self, exc: Exception | None) -> None:
        """The process has exited and its pipes are drained, stderr included."""
        self._fail(f"the message-building process exited with code {self.code}")
        if not self.ended.done():
            self.ended.set_result(None)

    def _fail(self, reason: str) -> None:
        last = self.stderr.decode(errors="replace").strip().splitlines()
        self.failure = self.failure or (f"{reason}: {last[-1]}" if last else reason)
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                _reject(future, WorkerError(self.failure))

    def finish(self) -> None:
        self._flush()
        stdin = self.transport.get_pipe_transport(0) if self.transport else None
        if stdin is not None:
            stdin.close()

    def kill(self) -> None:
        if self.transport is not None and self.transport.get_returncode() is None:
            self.transport.kill()


def _reject(future: asyncio.Future[Message], error: MailerError) -> None:
    future.set_exception(error)
    future.exception()  # a stopped campaign leaves some unawaited: no warning when collected


def serve() -> None:
    """The worker: the first frame is the pickled Recipe; every later frame is a JSON request
    [subscriber id, email, name, attributes, stand-in?, campaign id, Message-ID, language],
    answered
    with b"+" and the message, b"!" and why it cannot be rendered, or b"-" and any other
    failure."""
    # Stopping is the parent's to decide (systemd signals a whole unit): a worker ends when its
    # input does, which is also when the parent dies.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    frames = Frames()
    factory: MessageFactory | None = None
    broken = ""
    while chunk := os.read(0, 1 << 20):
        replies: list[bytes] = []
        for payload in frames.feed(chunk):
            if factory is None and not broken:
                try:
                    factory = MessageFactory(pickle.loads(payload))
                except Exception as error:  # answered to every request: the campaign stops
                    broken = f"cannot set up a message-building process: {error}"
                continue
            replies += framed(_answer(factory, broken, payload))
            if len(replies) >= BATCH:  # the first messages go back while the rest are built
                _write_all(b"".join(replies))
                replies = []
        _write_all(b"".join(replies))


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def _answer(factory: MessageFactory | None, broken: str, payload: bytes) -> list[bytes]:
    """The reply to one request, as chunks: a kind byte, then the message or the reason."""
    if factory is None:
        return [b"-", broken.encode()]
    sid, email, name, attributes, stand_in, campaign_id, message_id, lang = json.loads(payload)
    if stand_in:
        attributes = AnyAttributes(attributes)
    reader = Reader(sid, email, name, attributes, lang=lang)
    try:
        message, _ = factory.make(reader, campaign_id, message_id)
    except MailerError as error:
        return [b"!", str(error).encode()]
    except Exception as error:  # a bug: the campaign stops with the reason
        return [b"-", f"building the message for {email}: {error!r}".encode()]
    return [b"+", *message]


if __name__ == "__main__":
    serve()

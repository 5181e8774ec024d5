"""The HJ 212 bridge: a TCP listener for a data logger (数采仪), a pushed sample source."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Collection
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from zoneinfo import ZoneInfo

from edge._driver import Sample
from edge._hj212 import (
    CHINA,
    DATA_COMMANDS,
    MAX_FRAME_BYTES,
    CodeTable,
    CommandKind,
    FrameSplitter,
    Hj212Error,
    Packet,
    Upload,
    command_kind,
    decode_upload,
    load_codes,
    parse_frame,
    response_for,
)

log = logging.getLogger(__name__)

READ_BYTES = 4096
PREVIEW_BYTES = 80  # of a rejected packet, in the log
_ACCESS_PASSWORD = re.compile(rb"PW=[^;&]*")  # never logged: the preview shows PW=***


@dataclass(slots=True)
class Hj212Stats:
    """What a bridge has received since it started."""

    connections: int = 0
    packets: int = 0  # accepted packets, any command
    samples: int = 0  # samples handed to ``samples()``
    replies: int = 0  # 9013 / 9014 sent
    commands: Counter[str] = field(default_factory=Counter)  # accepted packets by CN
    unmapped: Counter[str] = field(default_factory=Counter)  # codes read, quantity null
    unknown_codes: Counter[str] = field(default_factory=Counter)  # codes not in the table
    unknown_flags: Counter[str] = field(default_factory=Counter)  # flags not in Table 8


class Hj212Bridge:
    """Receives HJ 212-2017 (and 2005-style) packets from data loggers over TCP (section 5).

    Each frame's length and CRC are checked (section 6.3, Appendix A); data uploads (CN 2011,
    2051, 2061, 2031) become :class:`Sample` values through the factor-code table (Appendix
    B); an upload or a 1013 notification whose Flag has A = 1 is answered with 9014 or 9013
    (section 6.5, Appendix C), after its sample is queued. A malformed packet is not answered
    (section 6.3: on a CRC error the command ends), it is counted in ``rejections`` by reason
    and logged, and the connection stays open so the logger can retry. At most ``max_buffer``
    bytes per connection wait for a frame end.

    Use as ``async with Hj212Bridge(port=0) as bridge: async for sample in
    bridge.samples(): ...``; ``bridge.port`` is the bound port. Several loggers may connect;
    their samples are merged, so pin ``allowed_mn`` to the node's own logger.

    Args:
        host: address to listen on.
        port: TCP port, 0 for any free port.
        codes: the factor-code table; default ``edge/data/hj212_codes.yaml``.
        tz: the county's time zone, in which loggers stamp ``DataTime``.
        allowed_mn: accept only these device ids (MN); None accepts any.
        password: accept only this access password (PW); None accepts any.
        queue_size: samples held for ``samples()``; when full, reading from loggers pauses.
        max_buffer: bytes per connection waiting for a frame end before they are discarded.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        codes: CodeTable | None = None,
        tz: ZoneInfo = CHINA,
        allowed_mn: Collection[str] | None = None,
        password: str | None = None,
        queue_size: int = 1024,
        max_buffer: int = MAX_FRAME_BYTES,
    ) -> None:
        self.host = host
        self.codes = codes if codes is not None else load_codes()
        self.tz = tz
        self.allowed_mn = None if allowed_mn is None else frozenset(allowed_mn)
        self.password = password
        self.max_buffer = max_buffer
        self.rejections: Counter[str] = Counter()
        self.stats = Hj212Stats()
        self._requested_port = port
        self._queue: asyncio.Queue[Sample | None] = asyncio.Queue(queue_size)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the bridge is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._connection, self.host, self._requested_port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        # Wake a waiting ``samples()``; when full, it drains the queue and sees the bridge closed.
        with suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def samples(self) -> AsyncIterator[Sample]:
        """Samples in the order their packets arrived; ends when the bridge is closed."""
        while not (self._closed and self._queue.empty()):
            sample = await self._queue.get()
            if sample is None:
                return
            yield sample

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = str(writer.get_extra_info("peername"))
        self.stats.connections += 1
        log.info("HJ 212 logger connected from %s", peer)
        try:
            await self._serve(reader, writer, peer)
        except ConnectionError as exc:
            log.info("HJ 212 logger %s: connection lost (%s)", peer, exc)
        finally:
            self._tasks.discard(task)
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        splitter = FrameSplitter(self.max_buffer)
        while chunk := await reader.read(READ_BYTES):
            for item in splitter.feed(chunk):
                if isinstance(item, Hj212Error):
                    self._reject(item, peer, b"")
                    continue
                try:
                    reply = await self._accept(item)
                except Hj212Error as exc:
                    self._reject(exc, peer, item)
                    continue
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
                    self.stats.replies += 1
        log.info("HJ 212 logger %s closed the connection", peer)

    async def _accept(self, frame: bytes) -> bytes | None:
        packet = parse_frame(frame)
        self._authorize(packet)
        if command_kind(packet.cn) is CommandKind.HOST_ONLY:
            detail = f"CN={packet.cn} is a platform's command, not a data logger's"
            raise Hj212Error("unexpected_command", detail)
        if packet.cn in DATA_COMMANDS:
            await self._queue_upload(decode_upload(packet, self.codes, self.tz), packet.mn)
        self.stats.packets += 1
        self.stats.commands[packet.cn] += 1
        return response_for(packet)

    def _authorize(self, packet: Packet) -> None:
        if self.allowed_mn is not None and packet.mn not in self.allowed_mn:
            raise Hj212Error("mn", f"MN={packet.mn[:30]} is not an allowed device")
        if self.password is not None and packet.pw != self.password:
            raise Hj212Error("pw", f"wrong access password from MN={packet.mn[:30]}")

    async def _queue_upload(self, upload: Upload, mn: str) -> None:
        for counter, codes, what in (
            (self.stats.unmapped, upload.unmapped, "not mapped to a quantity"),
            (self.stats.unknown_codes, upload.unknown_codes, "not in the code table"),
            (self.stats.unknown_flags, upload.unknown_flags, "not in Table 8"),
        ):
            for code in codes:
                if not counter[code]:
                    log.info("HJ 212 logger %s: %r %s", mn, code, what)
                counter[code] += 1
        if upload.sample.values:
            await self._queue.put(upload.sample)
            self.stats.samples += 1

    def _reject(self, exc: Hj212Error, peer: str, frame: bytes) -> None:
        self.rejections[exc.reason] += 1
        shown = _ACCESS_PASSWORD.sub(b"PW=***", frame)
        more = "..." if len(shown) > PREVIEW_BYTES else ""
        packet = f" in {shown[:PREVIEW_BYTES]!r}{more}" if frame else ""
        log.warning("HJ 212 logger %s: packet rejected, %s%s", peer, exc, packet)

"""A sink that keeps every batch through a TSDB outage: what cannot be written is appended
durably to segment files on disk (bounded) and replayed, in order, once the database is back.
Layout, bound and counters: docs/protocol.md ("Spool").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import BinaryIO, Self

from ingest._backoff import Backoff
from ingest._influx import Sink, SinkError, SinkRejected

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
REPLAY_BATCH_LINES = 5000
SEGMENT_MAX_BYTES = 8 << 20
_SUFFIX = ".lp"


class SpoolingSink:
    """Write to ``inner``; on :class:`SinkError` spool the batch to ``directory`` and return.

    ``write`` returns once the batch is in the database or fsync'ed to the spool, so the caller
    may acknowledge it. While the spool holds anything, new batches are appended to it too
    (the database receives points roughly in time order, and a flapping database is probed by
    the replayer's backoff alone, not by every batch). A batch that would take the spool past
    ``max_bytes`` raises ``SinkError("spool full")``: the caller pauses intake (backpressure).

    A background task (started on entry, stopped on exit) replays segments oldest first in
    batches of ``REPLAY_BATCH_LINES``, deletes each once written, and backs off exponentially
    with jitter between failed attempts. A spool left by an earlier process is replayed too; a
    segment replayed twice (a crash between its write and its deletion) doubles nothing, as
    points are idempotent (same node and time: same point).
    """

    def __init__(
        self,
        inner: Sink,
        directory: Path,
        max_bytes: int,
        *,
        segment_bytes: int | None = None,
        retry_min_s: float | None = None,
        retry_max_s: float | None = None,
    ) -> None:
        self.inner = inner
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 << 10, min(SEGMENT_MAX_BYTES, max_bytes // 8))
        self.retry_min_s = retry_min_s if retry_min_s is not None else RETRY_MIN_S
        self.retry_max_s = retry_max_s if retry_max_s is not None else RETRY_MAX_S
        self.spooled_lines = 0
        self.replayed_lines = 0
        self.spool_bytes = 0
        self.spool_full = 0
        self.write_errors = 0
        self.rejected_lines = 0  # spooled lines the database refused (segment set aside)
        self._segments: dict[int, int] = {}  # number -> bytes, oldest first
        self._open: BinaryIO | None = None  # the newest segment, appended to until sealed
        self._open_number = -1
        self._next_number = 0
        self._replayed_offset = 0  # lines of the oldest segment already written this run
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()  # something was spooled (ends the idle wait)
        self._kick = asyncio.Event()  # drain() asks for an attempt now (ends the backoff)
        self._empty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def points_written(self) -> int:
        """Points the inner sink has stored (directly or replayed)."""
        return self.inner.points_written

    @property
    def spooled_segments(self) -> int:
        return len(self._segments)

    async def __aenter__(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._recover)
        try:
            await self.inner.__aenter__()
        except SinkError as exc:  # down at start: writes spool, the replayer retries
            self.write_errors += 1
            log.warning("TSDB not reachable at start: %s", exc)
        self._task = asyncio.create_task(self._replay_loop(), name="spool-replay")
        self._wake.set()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop replaying; what is still spooled stays on disk for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._lock:
            self._seal()
        await self.inner.__aexit__(*exc_info)

    async def write(self, lines: list[str]) -> None:
        if not lines:
            return
        if not self._segments:
            try:
                await self.inner.write(lines)
                return
            except SinkRejected:
                self.write_errors += 1
                raise  # would be refused again from the spool: the caller's to handle
            except SinkError as exc:
                self.write_errors += 1
                log.warning("TSDB write failed, spooling %d lines: %s", len(lines), exc)
        await self._append(lines)

    async def drain(self, timeout_s: float) -> bool:
        """Wake the replayer now (skipping its backoff) and wait up to ``timeout_s`` for an
        empty spool. True if it emptied."""
        self._kick.set()
        try:
            async with asyncio.timeout(timeout_s):
                while self._segments:
                    self._empty.clear()
                    if not self._segments:
                        break
                    await self._empty.wait()
        except TimeoutError:
            return False
        return True

    # -- spooling ---------------------------------------------------------------------------

    async def _append(self, lines: list[str]) -> None:
        data = ("\n".join(lines) + "\n").encode()
        async with self._lock:
            if self.spool_bytes + len(data) > self.max_bytes:
                self.spool_full += 1
                raise SinkError(
                    f"spool full ({self.spool_bytes} of {self.max_bytes} bytes in {self.directory})"
                )
            await asyncio.to_thread(self._append_sync, data)
            self.spool_bytes += len(data)
            self.spooled_lines += len(lines)
        self._wake.set()

    def _append_sync(self, data: bytes) -> None:
        size = self._segments.get(self._open_number, 0)
        if self._open is not None and size and size + len(data) > self.segment_bytes:
            self._seal()
        if self._open is None:
            self._open_number = self._next_number
            self._next_number += 1
            self._open = (self.directory / f"{self._open_number:012d}{_SUFFIX}").open("ab")
            self._segments[self._open_number] = 0
            _fsync_dir(self.directory)
        self._open.write(data)
        self._open.flush()
        os.fsync(self._open.fileno())
        self._segments[self._open_number] += len(data)

    def _seal(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None
            self._open_number = -1

    def _recover(self) -> None:
        """Take up segments left by an earlier process; cut a torn last line (a batch whose
        write never returned, so never acknowledged)."""
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            try:
                number = int(path.stem)
            except ValueError:
                continue
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                keep = data.rfind(b"\n") + 1
                with path.open("r+b") as f:
                    f.truncate(keep)
                    os.fsync(f.fileno())
                data = data[:keep]
            if not data:
                path.unlink()
                continue
            self._segments[number] = len(data)
            self._next_number = max(self._next_number, number + 1)
        self.spool_bytes = sum(self._segments.values())
        if self._segments:
            log.warning(
                "spool: %d bytes in %d segments left in %s, replaying",
                self.spool_bytes,
                len(self._segments),
                self.directory,
            )

    # -- replaying --------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        backoff = Backoff(self.retry_min_s, self.retry_max_s)
        while True:
            if not self._segments:
                self._empty.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._replay_oldest()
                backoff.reset()
            except SinkRejected as exc:
                await self._reject_oldest(exc)
            except SinkError as exc:
                self.write_errors += 1
                delay = backoff.next()
                log.info("spool replay failed, retrying in %.1f s: %s", delay, exc)
                self._kick.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._kick.wait()

    async def _replay_oldest(self) -> None:
        async with self._lock:
            number = next(iter(self._segments))
            if number == self._open_number:
                self._seal()  # new batches go to a new segment from now on
        path = self.directory / f"{number:012d}{_SUFFIX}"
        lines = (await asyncio.to_thread(path.read_bytes)).decode().split("\n")[:-1]
        while self._replayed_offset < len(lines):
            chunk = lines[self._replayed_offset : self._replayed_offset + REPLAY_BATCH_LINES]
            await self.inner.write(chunk)
            self._replayed_offset += len(chunk)
            self.replayed_lines += len(chunk)
        async with self._lock:
            await asyncio.to_thread(path.unlink)
            self.spool_bytes -= self._segments.pop(number)
            self._replayed_offset = 0
            if not self._segments:
                self._empty.set()

    async def _reject_oldest(self, exc: SinkRejected) -> None:
        """The database refused a replayed batch as malformed (InfluxDB keeps the good points of
        a partial write): retrying cannot help, so the segment goes to ``rejected/``."""
        async with self._lock:
            number = next(iter(self._segments))
            path = self.directory / f"{number:012d}{_SUFFIX}"
            aside = self.directory / "rejected"
            aside.mkdir(exist_ok=True)
            await asyncio.to_thread(path.rename, aside / path.name)
            lines = (await asyncio.to_thread((aside / path.name).read_bytes)).count(b"\n")
            self.rejected_lines += lines - self._replayed_offset
            self.write_errors += 1
            self.spool_bytes -= self._segments.pop(number)
            self._replayed_offset = 0
            if not self._segments:
                self._empty.set()
        log.error("spool segment %s refused by the TSDB, moved to %s: %s", path.name, aside, exc)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

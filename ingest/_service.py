"""The ingest service: MQTT -> decode, validate, de-duplicate -> batch -> detector and TSDB."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Self

from detect import Detector, ExceedanceEvent, ReadingBatch
from ingest._dedup import SeqWindow
from ingest._influx import InfluxV1Sink, SinkError
from ingest._lines import node_tags, reading_line
from ingest._validate import MessageValidator
from tianwang.aio import cancel_and_wait
from tianwang.codec import PayloadError
from tianwang.mqtt import BrokerAddress, LinkError, MqttLink
from tianwang.quantities import quantity_table
from tianwang.registry import Node, Registry
from tianwang.topics import DATA_FILTER

log = logging.getLogger(__name__)

# Retry delays (module-level so that tests can shrink them).
RETRY_MIN_S = 0.2
RETRY_MAX_S = 10.0


class Backoff:
    """Exponential backoff with jitter, from RETRY_MIN_S doubling up to RETRY_MAX_S."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._delay = RETRY_MIN_S

    def next(self) -> float:
        delay = self._delay * random.uniform(0.5, 1.0)
        self._delay = min(self._delay * 2, RETRY_MAX_S)
        return delay


EventHandler = Callable[[list[ExceedanceEvent]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class IngestConfig:
    broker: BrokerAddress
    client_id: str = "tianwang-ingest"
    topic_filter: str = DATA_FILTER
    batch_max: int = 5000
    flush_interval_s: float = 0.2
    quarantine_max: int = 1000
    session_expiry_s: int = 3600


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    topic: str
    payload: bytes
    detail: str


class _Pending:
    """Accepted readings waiting for the next flush, as columns plus their line protocol."""

    def __init__(self) -> None:
        self.series: list[int] = []
        self.ts_s: list[int] = []
        self.value: list[float] = []
        self.valid: list[bool] = []
        self.lines: list[str] = []

    def __len__(self) -> int:
        return len(self.lines)

    def extend(self, later: _Pending) -> None:
        self.series += later.series
        self.ts_s += later.ts_s
        self.value += later.value
        self.valid += later.valid
        self.lines += later.lines


class IngestService:
    """``async with IngestService(...)`` subscribes and consumes until the block ends, then
    flushes what it holds. Counters: ``counts`` (intake) and ``rejections`` (by reason)."""

    def __init__(
        self,
        config: IngestConfig,
        registry: Registry,
        detector: Detector,
        sink: InfluxV1Sink,
        on_events: EventHandler,
    ) -> None:
        self.config = config
        self.registry = registry
        self._sids: dict[tuple[str, str], int] = {}  # (node, quantity) -> detector series
        self.detector = detector
        self.sink = sink
        self.on_events = on_events
        self.counts: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.readings_by_node: Counter[str] = Counter()
        self.quarantine: deque[Rejected] = deque(maxlen=config.quarantine_max)
        self._validator = MessageValidator(registry, quantity_table())
        self._dedup = SeqWindow()
        self._pending = _Pending()
        self._tags = {node_id: node_tags(node) for node_id, node in registry.nodes.items()}
        self._flush_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._link: MqttLink | None = None
        self._subscribed = asyncio.Event()

    async def _connect(self) -> None:
        self._link = MqttLink(
            self.config.broker, self.config.client_id, session_expiry_s=self.config.session_expiry_s
        )
        await self._link.__aenter__()
        await self._link.subscribe(self.config.topic_filter, qos=1)

    async def __aenter__(self) -> Self:
        await self._connect()  # the first connection fails loudly; later ones are retried
        self._tasks = [asyncio.create_task(self._consume()), asyncio.create_task(self._tick())]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await cancel_and_wait(*self._tasks)
        await self.flush()
        await self._disconnect()

    async def _disconnect(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            with contextlib.suppress(LinkError):
                await link.__aexit__(None, None, None)

    def _reject(self, reason: str, topic: str, payload: bytes, detail: str) -> None:
        self.rejections[reason] += 1
        self.quarantine.append(Rejected(reason, topic, payload, detail))
        log.warning("rejected %s on %s: %s", reason, topic, detail)

    def handle(self, topic: str, payload: bytes) -> None:
        """Validate one message and queue its readings; bad input is counted, never raised."""
        self.counts["messages"] += 1
        try:
            node, readings = self._validator.message(topic, payload)
        except PayloadError as exc:
            self._reject(exc.reason, topic, payload, exc.detail)
            return
        tags = self._tags[node.id]
        pending = self._pending
        for raw in readings:
            reading, reason = self._validator.reading(node, raw)
            if reading is None:
                self._reject(reason or "invalid", topic, payload, f"{raw.quantity} seq {raw.seq}")
                self.counts["rejected_readings"] += 1
                continue
            seen = self._dedup.accept(node.id, reading.seq)
            if seen is not None:
                self.counts[seen] += 1
                continue
            pending.series.append(self._series_id(node, reading.quantity))
            pending.ts_s.append(reading.ts_ms // 1000)
            pending.value.append(reading.value)
            pending.valid.append(reading.flag == "N")
            pending.lines.append(reading_line(tags, reading))
            self.readings_by_node[node.id] += 1
            self.counts["readings"] += 1

    def _series_id(self, node: Node, quantity: str) -> int:
        sid = self._sids.get((node.id, quantity))
        if sid is None:
            limit_class = self.registry.limit_class(node, quantity)
            sid = self._sids[(node.id, quantity)] = self.detector.series_id(
                node.id, quantity, limit_class
            )
        return sid

    async def flush(self) -> None:
        """Write what is pending to the TSDB and through the detector."""
        async with self._flush_lock:
            pending, self._pending = self._pending, _Pending()
            if not len(pending):
                return
            try:
                await self.sink.write(pending.lines)
            except Exception:
                # Keep them, in order, ahead of what arrived meanwhile; the next flush retries.
                pending.extend(self._pending)
                self._pending = pending
                raise
            events = self.detector.update(
                ReadingBatch.from_lists(pending.series, pending.ts_s, pending.value, pending.valid)
            )
            self.counts["stored"] += len(pending)
            if events:
                await self.on_events(events)

    async def close_hours(self, cutoff_s: int) -> None:
        """Close the detector's hours that end by ``cutoff_s`` (end of a stream or a lull)."""
        await self.flush()
        events = self.detector.close_until(cutoff_s)
        if events:
            await self.on_events(events)

    async def _consume(self) -> None:
        """Intake loop. A broker outage means reconnect (the persistent session keeps what was
        published meanwhile); a TSDB outage means stop taking messages until a write succeeds."""
        backoff = Backoff()
        while True:
            try:
                if self._link is None:
                    await self._connect()
                    backoff.reset()
                async for topic, payload in self._link.messages():  # type: ignore[union-attr]
                    self.handle(topic, payload)
                    if len(self._pending) >= self.config.batch_max:
                        await self._flush_until_written()
            except LinkError as exc:
                delay = backoff.next()
                log.warning("broker link lost (%s); reconnecting in %.1f s", exc, delay)
                await self._disconnect()
                await asyncio.sleep(delay)

    async def _flush_until_written(self) -> None:
        backoff = Backoff()
        while True:
            try:
                await self.flush()
                return
            except SinkError as exc:
                delay = backoff.next()
                log.warning("TSDB write failed (%s); intake paused, retry in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            try:
                await self.flush()
            except SinkError as exc:  # kept pending and retried; intake pauses at batch_max
                log.warning("TSDB write failed: %s", exc)

    async def wait_for_readings(self, expected: int, timeout_s: float) -> bool:
        """Wait until ``expected`` readings were settled (accepted and stored, or rejected one
        by one), or the timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rejected = self.counts["rejected_readings"]
            if self.counts["readings"] + rejected >= expected:
                with contextlib.suppress(SinkError):
                    await self.flush()
                if self.counts["stored"] + rejected >= expected:
                    return True
            await asyncio.sleep(0.05)
        return False

"""The ingest service: MQTT -> decode, validate, de-duplicate -> batch -> TSDB and detector.

A message is acknowledged to the broker only after the batch it joined has been written
(to the TSDB, or to the sink's disk spool) and passed through the detector: a crash loses
nothing, the broker redelivers, and de-duplication by (node, seq) plus idempotent TSDB
points keep a redelivery from counting twice. The broker sends at most
``receive_maximum`` unacknowledged messages, so a slow sink slows intake instead of growing
a queue here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, Self, TypeVar

import numpy as np

from detect import Detector, ExceedanceEvent, ReadingBatch
from ingest._backoff import Backoff
from ingest._dedup import DUPLICATE, SeqWindow
from ingest._influx import Sink, SinkError, SinkRejected
from ingest._lines import node_health_line, node_tags, sample_lines
from ingest._liveness import Deadman
from ingest._metrics import IngestMetrics
from ingest._quarantine import Quarantine, Rejected
from ingest._report import Reporter, worker_nodes
from ingest._subscriber import Subscriber
from ingest._validate import MessageValidator
from tianwang.aio import cancel_and_wait
from tianwang.codec import PayloadError, Reading, decode_health, decode_status
from tianwang.mqtt import BrokerAddress
from tianwang.quantities import quantity_table
from tianwang.registry import Node, Registry
from tianwang.topics import DATA_FILTER, HEALTH_FILTER, STATUS_FILTER, TopicError, parse_topic

log = logging.getLogger(__name__)

# Retry delays (module-level so that tests can shrink them).
RETRY_MIN_S = 0.2
RETRY_MAX_S = 10.0
# Health reports held for the next report write at most (QoS 0 data: the oldest go first).
HEALTH_BUFFER_MAX = 100_000


EventHandler = Callable[[list[ExceedanceEvent]], Awaitable[None]]
# A batch the detector has taken, the series (id, node, quantity, limit class, neighbourhood)
# registered since the previous call, in order, and the batch's seqs: ingest/_journal.py
# makes them durable.
NewSeries = tuple[int, str, str, str, str | None]
DetectedHandler = Callable[[ReadingBatch, list[NewSeries], list[int]], None]


class _FromNode(Protocol):
    node: str


_M = TypeVar("_M", bound=_FromNode)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Args:
    broker: where to subscribe.
    client_id: fixed, so the broker keeps this worker's session across restarts.
    topic_filters: data (and status) filters; ``partition_filters`` splits a county set.
    batch_max: readings that trigger a flush before the interval.
    flush_interval_s: the longest a reading waits for its flush.
    receive_maximum: unacknowledged messages the broker may send (the intake bound).
    session_expiry_s: how long the broker keeps the session while ingest is away.
    quarantine_path: rejected payloads also go to this JSON-lines file (bounded).
    max_future_s, max_age_s: readings stamped further ahead or older are rejected.
    offline_after_periods, offline_min_s: the deadman (``ingest/_liveness.py``).
    report_interval_s: how often node state, health reports and ingest's own counters are
        written to the TSDB (``ingest/_report.py``); also once at start and at exit.
    seq_window: seqs per node remembered for de-duplication (``ingest/_dedup.py``).
    """

    broker: BrokerAddress
    client_id: str = "tianwang-ingest"
    topic_filters: tuple[str, ...] = (DATA_FILTER, STATUS_FILTER, HEALTH_FILTER)
    batch_max: int = 5000
    flush_interval_s: float = 0.2
    receive_maximum: int = 16384
    session_expiry_s: int = 3600
    quarantine_path: Path | None = None
    quarantine_max_bytes: int = 16 << 20
    max_future_s: float | None = 300.0
    max_age_s: float | None = 30 * 86400.0
    offline_after_periods: float = 3.0
    offline_min_s: float = 180.0
    deadman_interval_s: float = 5.0
    report_interval_s: float = 30.0
    seq_window: int = 65536


class _Pending:
    """Accepted readings waiting for the next flush, as columns plus their line protocol
    (one ``sample`` point per node and sample time), and the future their messages'
    acknowledgements wait on. Its length is the number of readings."""

    def __init__(self) -> None:
        self.series: list[int] = []
        self.ts_s: list[int] = []
        self.value: list[float] = []
        self.valid: list[bool] = []
        self.seq: list[int] = []
        self.lines: list[str] = []
        self.durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.later: list[asyncio.Future[None]] = []  # merged in after a failed write

    def __len__(self) -> int:
        return len(self.series)

    def extend(self, later: _Pending) -> None:
        self.series += later.series
        self.ts_s += later.ts_s
        self.value += later.value
        self.valid += later.valid
        self.seq += later.seq
        self.lines += later.lines
        self.later += [later.durable, *later.later]

    def done(self) -> None:
        for future in (self.durable, *self.later):
            if not future.done():
                future.set_result(None)


class IngestService:
    """``async with IngestService(...)`` subscribes and consumes until the block ends, then
    flushes what it holds. Counters: ``counts`` (intake) and ``rejections`` (by reason);
    ``quarantine.recent`` holds the latest rejected payloads."""

    def __init__(
        self,
        config: IngestConfig,
        registry: Registry,
        detector: Detector,
        sink: Sink,
        on_events: EventHandler,
        clock: Callable[[], float] = time.time,
        metrics: IngestMetrics | None = None,
        on_detected: DetectedHandler | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or IngestMetrics()
        self.registry = registry
        self.detector = detector
        self.sink = sink
        self.on_events = on_events
        self.on_detected = on_detected
        self._new_series: list[NewSeries] = []
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.readings_by_node: Counter[str] = Counter()
        self.quarantine = Quarantine(config.quarantine_path, config.quarantine_max_bytes)
        own = [node.id for node in worker_nodes(registry, config.topic_filters)]
        self.deadman = Deadman(registry, clock, config.offline_after_periods,
                               config.offline_min_s, own)  # fmt: skip
        self.reporter = Reporter(registry, self.deadman, config.client_id, config.topic_filters,
                                 clock)  # fmt: skip
        self._health_lines: list[str] = []  # node_health points for the next report
        self._validator = MessageValidator(registry, quantity_table(),
                                           max_future_s=config.max_future_s,
                                           max_age_s=config.max_age_s)  # fmt: skip
        self._dedup = SeqWindow(config.seq_window)
        self._sids: dict[str, dict[str, int]] = {}  # node -> quantity -> detector series
        self._tags = {node_id: node_tags(node) for node_id, node in registry.nodes.items()}
        self._flush_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: _Pending | None = None
        self._early: asyncio.Task[None] | None = None  # a flush started by a full batch
        self._inflight = 0  # messages received, not yet acknowledged
        self._subscriber = Subscriber(
            config.broker, config.client_id, config.topic_filters, self._on_message,
            session_expiry_s=config.session_expiry_s, receive_maximum=config.receive_maximum,
            reconnect_delay_s=max(RETRY_MIN_S, 0.05),  # read now: tests shrink it
        )  # fmt: skip

    async def __aenter__(self) -> Self:
        self._pending = _Pending()
        await self._subscriber.start()  # the first connection fails loudly; gmqtt retries later
        self._tasks = [asyncio.create_task(self._tick()), asyncio.create_task(self._watch()),
                       asyncio.create_task(self._report_loop())]  # fmt: skip
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await cancel_and_wait(*self._tasks, *([self._early] if self._early else []))
        with contextlib.suppress(SinkError):
            await self.flush()
        with contextlib.suppress(SinkError):
            await self.report()
        await self._subscriber.stop()
        self.quarantine.close()

    async def _on_message(self, topic: str, payload: bytes) -> None:
        """Handle the message now; its acknowledgement waits for the batch it joined (or, if
        it added nothing, for the batches before it: a redelivered duplicate must not be
        acknowledged before its first copy is durable)."""
        assert self._pending is not None
        durable = self._pending.durable
        self.handle(topic, payload)
        if len(self._pending) >= self.config.batch_max and self._early is None:
            self._early = asyncio.create_task(self._flush_quietly())  # one at a time
        self._inflight += 1
        try:
            await asyncio.shield(durable)
        finally:
            self._inflight -= 1

    def handle(self, topic: str, payload: bytes) -> None:
        """Validate one message and queue its readings; bad input is counted, never raised."""
        if topic.endswith("/status"):
            self._status(topic, payload)
            return
        if topic.endswith("/health"):
            self._health(topic, payload)
            return
        self.counts["messages"] += 1
        self.metrics.count_messages()
        try:
            node, readings = self._validator.message(topic, payload)
        except PayloadError as exc:
            self._reject(exc.reason, topic, payload, exc.detail)
            return
        self.deadman.seen(node.id)
        pending = self._pending
        assert pending is not None
        now_ms = self.clock() * 1000.0
        accepted = []
        refused: dict[str, list[int]] = {}  # seq_reused / seq_rewound -> the seqs
        # the per-reading loop is the hot path (~50k readings/s): names bound once
        check, accept, sids = self._validator.reading, self._dedup.accept, self._sids_of(node)
        for raw in readings:
            reading, reason = check(node, raw, now_ms)
            if reading is None:
                self._reject(reason or "invalid", topic, payload, f"{raw.quantity} seq {raw.seq}")
                self.counts["rejected_readings"] += 1
                continue
            seen = accept(node.id, reading.seq, reading.ts_ms)
            if seen is not None:
                if seen == DUPLICATE:
                    self.counts[seen] += 1
                    self.metrics.duplicate(seen)
                else:
                    refused.setdefault(seen, []).append(reading.seq)
                continue
            sid = sids.get(reading.quantity)
            pending.series.append(sid if sid is not None else self._series_id(node, reading))
            pending.ts_s.append(reading.ts_ms // 1000)
            pending.value.append(reading.value)
            pending.valid.append(reading.flag == "N")
            pending.seq.append(reading.seq)
            accepted.append(reading)
        for reason, seqs in refused.items():
            # one log line and quarantine entry per message, counted per reading
            detail = f"{len(seqs)} readings, seq {seqs[0]}..{seqs[-1]}"
            self._reject(reason, topic, payload, detail, n=len(seqs))
            self.counts["rejected_readings"] += len(seqs)
        if accepted:
            pending.lines += sample_lines(self._tags[node.id], accepted)
            self.readings_by_node[node.id] += len(accepted)
            self.counts["readings"] += len(accepted)
            self.metrics.count_readings(len(accepted))

    def remember(self, seen: list[tuple[str, int]]) -> None:
        """Mark (node, seq) pairs as seen, before intake starts: readings a previous process
        fed the detector (its journal) whose messages the broker may deliver again."""
        for node, seq in seen:
            self._dedup.remember(node, seq)

    def _node_message(self, topic: str, payload: bytes, decode: Callable[[bytes], _M],
                      what: str) -> tuple[Node, _M] | None:  # fmt: skip
        """A status or health payload decoded, with the registered node whose topic it came
        on; None (rejected and counted) when the topic, the payload or the node is wrong."""
        try:
            place, _ = parse_topic(topic)
            message = decode(payload)
        except (TopicError, PayloadError) as exc:
            self._reject(getattr(exc, "reason", "bad_topic"), topic, payload, str(exc))
            return None
        node = self.registry.nodes.get(message.node)
        if node is None or node.place != place:
            self._reject("topic_mismatch", topic, payload, f"{what} of {message.node!r}")
            return None
        return node, message

    def _status(self, topic: str, payload: bytes) -> None:
        """A node's retained status (or its last will): kept as what the node says."""
        got = self._node_message(topic, payload, decode_status, "status")
        if got is not None:
            node, status = got
            self.deadman.said[node.id] = status.state
            self.counts["status"] += 1

    def _health(self, topic: str, payload: bytes) -> None:
        """A node's health report: kept for the next report write (``node_health``)."""
        got = self._node_message(topic, payload, decode_health, "health")
        if got is not None:
            node, health = got
            self._health_lines.append(node_health_line(self._tags[node.id], health))
            del self._health_lines[:-HEALTH_BUFFER_MAX]
            self.counts["health"] += 1

    async def report(self) -> None:
        """Write the node states, the health reports received since the last report and the
        worker's own counters (``ingest/_report.py``); raises SinkError, keeping the health
        reports for the next try."""
        health, self._health_lines = self._health_lines, []
        self.counts["seq_gaps"] = self._dedup.gaps
        gauges = {"pending": len(self._pending) if self._pending is not None else 0,
                  "inflight": self._inflight, "nodes_offline": len(self.deadman.offline),
                  "spool_bytes": getattr(self.sink, "spool_bytes", None)}  # fmt: skip
        lines = [*health, *self.reporter.node_lines(),
                 *self.reporter.ingest_lines(self.counts, self.rejections, gauges,
                                             self.metrics.lag)]  # fmt: skip
        try:
            async with self._flush_lock:
                await self.sink.write(lines)
        except SinkRejected as exc:
            self._reject("tsdb_rejected", "", "\n".join(lines).encode(), str(exc))
        except SinkError:
            self._health_lines[:0] = health
            del self._health_lines[:-HEALTH_BUFFER_MAX]
            raise

    async def _report_loop(self) -> None:
        while True:
            try:
                await self.report()
            except SinkError as exc:
                log.warning("report write failed: %s", exc)
            await asyncio.sleep(self.config.report_interval_s)

    def _reject(self, reason: str, topic: str, payload: bytes, detail: str, n: int = 1) -> None:
        self.rejections[reason] += n
        self.metrics.reject(reason, n)
        self.quarantine.add(Rejected(reason, topic, payload, detail))
        log.warning("rejected %s on %s: %s", reason, topic, detail)

    def _sids_of(self, node: Node) -> dict[str, int]:
        """The node's detector series by quantity."""
        sids = self._sids.get(node.id)
        if sids is None:
            sids = self._sids[node.id] = {}
        return sids

    def _series_id(self, node: Node, reading: Reading) -> int:
        """Register the node's series of this quantity with the detector (first reading)."""
        quantity = reading.quantity
        limit_class = self.registry.limit_class(node, quantity)
        sid = self._sids_of(node)[quantity] = self.detector.series_id(
            node.id, quantity, limit_class, node.place.township
        )
        if self.on_detected is not None:
            self._new_series.append((sid, node.id, quantity, limit_class, node.place.township))
        return sid

    async def flush(self) -> None:
        """Write what is pending to the TSDB and through the detector, then release its
        messages' acknowledgements. A failed write keeps the batch, in order, ahead of what
        arrived meanwhile (its messages stay unacknowledged) and raises SinkError."""
        async with self._flush_lock:
            began = time.perf_counter()
            pending = self._pending
            assert pending is not None
            self._pending = _Pending()
            if not len(pending):
                pending.done()
                return
            try:
                await self.sink.write(pending.lines)
            except SinkRejected as exc:
                # The database refuses these lines for good (retrying cannot help): they go
                # to the quarantine, counted, and the readings still reach the detector.
                # (InfluxDB may have stored the good points of the batch: a partial write.)
                self.counts["tsdb_rejected"] += len(pending)
                self._reject("tsdb_rejected", "", "\n".join(pending.lines).encode(), str(exc))
                written = False
            except Exception:
                pending.extend(self._pending)
                self._pending = pending
                self.counts["sink_errors"] += 1
                self.metrics.sink_error()
                raise
            else:
                written = True
            batch = ReadingBatch.from_lists(pending.series, pending.ts_s, pending.value,
                                            pending.valid)  # fmt: skip
            events = self.detector.update(batch)
            self.counts["detected"] += len(batch)
            if self.on_detected is not None:  # before the acknowledgements below
                self.on_detected(batch, self._new_series, pending.seq)
                self._new_series = []
            now_ms = self.clock() * 1000.0
            self.counts["stored" if written else "detected_not_stored"] += len(pending)
            pending.done()
            self.metrics.observe_batch(
                len(pending), (now_ms - np.asarray(pending.ts_s, np.float64) * 1000.0) / 1000.0
            )
            self.metrics.observe_flush(time.perf_counter() - began)
            self._gauges()
        await self._emit(events)

    async def _emit(self, events: list[ExceedanceEvent]) -> None:
        if events:
            self.metrics.count_events(events)
            await self.on_events(events)

    def _gauges(self) -> None:
        self.counts["seq_gaps"] = self._dedup.gaps
        self.metrics.set_state(
            pending=len(self._pending) if self._pending is not None else 0,
            inflight=self._inflight,
            spool_bytes=getattr(self.sink, "spool_bytes", None),
            nodes_offline=len(self.deadman.offline),
        )

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except SinkError as exc:  # kept pending; the tick retries with backoff
            log.warning("TSDB write failed: %s", exc)
        finally:
            self._early = None

    async def close_hours(self, cutoff_s: int) -> None:
        """Close the detector's hours that end by ``cutoff_s`` (end of a stream or a lull)."""
        await self.flush()
        await self._emit(self.detector.close_until(cutoff_s))

    async def _tick(self) -> None:
        backoff = Backoff(RETRY_MIN_S, RETRY_MAX_S)  # read now: tests shrink them
        while True:
            try:
                await asyncio.sleep(self.config.flush_interval_s)
                await self.flush()
                backoff.reset()
            except SinkError as exc:
                delay = backoff.next()
                log.warning("TSDB write failed (%s); retry in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def _watch(self) -> None:
        """The deadman: nodes going silent, and coming back, become events for grid."""
        while True:
            await asyncio.sleep(self.config.deadman_interval_s)
            events = self.deadman.check()
            self.counts["offline_events"] += len(events)
            self._gauges()
            await self._emit(events)

    @property
    def connected(self) -> asyncio.Event:
        return self._subscriber.connected

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


def worker_config(base: IngestConfig, filters: Sequence[str], index: int) -> IngestConfig:
    """The config of partition worker ``index``: its own filters and its own session."""
    return replace(base, topic_filters=tuple(filters), client_id=f"{base.client_id}-{index}")

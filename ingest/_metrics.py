"""Prometheus metrics of one ingest worker (docs/operations.md, "Metrics").

``IngestMetrics`` owns its own ``CollectorRegistry``, so that tests and several workers in
one process do not share values. Its methods are meant to be called per message or per
batch, never per reading: the lag histogram takes a whole numpy array at once and is kept as
numpy bucket counts (one ``searchsorted`` + ``bincount`` per batch), exposed through a
custom collector.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

PREFIX = "tianwang_ingest"

# Sample-to-detection lag: from 10 ms (a live node on loopback) to an hour (an outbox replay
# after an outage); roughly x2.5 apart.
LAG_BUCKETS_S: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
# One flush: a TSDB write of up to batch_max points plus the detector.
FLUSH_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class _Event(Protocol):
    rule: str
    kind: str


class ArrayHistogram(Collector):
    """A Prometheus histogram updated with whole arrays (numpy bucket counts)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        bounds = np.asarray(sorted(float(b) for b in buckets), np.float64)
        if bounds.size == 0 or not np.all(np.isfinite(bounds)):
            raise ValueError("buckets must be finite and non-empty (+Inf is implied)")
        self.name = name
        self.documentation = documentation
        self.bounds = bounds
        self._counts = np.zeros(bounds.size + 1, np.int64)  # last slot: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_array(self, values: np.ndarray) -> None:
        """Add every finite value of ``values`` (NaN is skipped)."""
        values = np.asarray(values, np.float64).ravel()
        if values.size and not np.isfinite(values).all():
            values = values[~np.isnan(values)]
        if not values.size:
            return
        # Prometheus buckets are "le": bounds[i - 1] < v <= bounds[i] lands in slot i.
        slots = np.searchsorted(self.bounds, values, side="left")
        add = np.bincount(slots, minlength=self._counts.size)
        total = float(values.sum())
        with self._lock:
            self._counts += add
            self._sum += total

    def observe(self, value: float) -> None:
        self.observe_array(np.asarray([value], np.float64))

    def snapshot(self) -> tuple[np.ndarray, float]:
        """(cumulative counts per bucket, the last being +Inf = the count; sum)."""
        with self._lock:
            return np.cumsum(self._counts), self._sum

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative, total = self.snapshot()
        labels = [repr(float(b)) for b in self.bounds] + ["+Inf"]
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], list(zip(labels, cumulative.tolist(), strict=True)), total)
        yield family


class MetricsServer:
    """The HTTP endpoint started by ``IngestMetrics.serve``; ``close()`` stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host, self.port = server.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class IngestMetrics:
    """Counters, gauges and histograms of one ingest worker, in a registry of its own."""

    def __init__(
        self,
        lag_buckets: Sequence[float] = LAG_BUCKETS_S,
        flush_buckets: Sequence[float] = FLUSH_BUCKETS_S,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = PREFIX
        self.messages = Counter(f"{p}_messages", "MQTT data messages received", registry=r)
        self.readings = Counter(f"{p}_readings", "Readings accepted", registry=r)
        self.rejected = Counter(
            f"{p}_rejected",
            "Messages or readings rejected, by reason code",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            f"{p}_duplicates",
            "Readings dropped as a repeat of a (node, seq) already seen with the same sample",
            ["kind"],
            registry=r,
        )
        self.stored = Counter(f"{p}_stored", "Readings written to the TSDB", registry=r)
        self.sink_errors = Counter(f"{p}_sink_errors", "Failed TSDB writes", registry=r)
        self.events = Counter(
            f"{p}_events", "Detector events, by rule and kind", ["rule", "kind"], registry=r
        )
        self.pending = Gauge(f"{p}_pending", "Readings queued for the next flush", registry=r)
        self.inflight = Gauge(
            f"{p}_inflight", "MQTT messages received but not yet acknowledged", registry=r
        )
        self.spool_bytes = Gauge(f"{p}_spool_bytes", "Bytes in the local spool", registry=r)
        self.nodes_offline = Gauge(
            f"{p}_nodes_offline", "Nodes whose status is offline", registry=r
        )
        self.lag = ArrayHistogram(
            f"{p}_lag_seconds",
            "Now minus sample time, when the detector sees the reading",
            lag_buckets,
        )
        r.register(self.lag)
        self.flush_seconds = Histogram(
            f"{p}_flush_seconds",
            "Duration of one flush (TSDB write and detector update)",
            buckets=flush_buckets,
            registry=r,
        )

    # -- per message / per batch ------------------------------------------------------------

    def count_messages(self, n: int = 1) -> None:
        self.messages.inc(n)

    def count_readings(self, n: int) -> None:
        if n:
            self.readings.inc(n)

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected.labels(reason).inc(n)

    def duplicate(self, kind: str, n: int = 1) -> None:
        """``kind`` is ``duplicate`` (ingest._dedup.SeqWindow); a reused or rewound seq is a
        rejection (``reject``), not a duplicate."""
        self.duplicates.labels(kind).inc(n)

    def sink_error(self) -> None:
        self.sink_errors.inc()

    def observe_batch(self, n_readings: int, lags_s: np.ndarray | Sequence[float]) -> None:
        """A flushed batch: ``n_readings`` stored, ``lags_s`` their lags (one per reading, or
        a sample of them), in seconds."""
        if n_readings:
            self.stored.inc(n_readings)
        self.lag.observe_array(np.asarray(lags_s, np.float64))

    def observe_flush(self, seconds: float) -> None:
        self.flush_seconds.observe(seconds)

    def count_events(self, events: Iterable[_Event]) -> None:
        """Detector events (``detect.ExceedanceEvent`` or anything with rule and kind)."""
        tally: dict[tuple[str, str], int] = {}
        for event in events:
            key = (event.rule, event.kind)
            tally[key] = tally.get(key, 0) + 1
        for (rule, kind), n in tally.items():
            self.events.labels(rule, kind).inc(n)

    def set_state(
        self,
        *,
        pending: int | None = None,
        inflight: int | None = None,
        spool_bytes: int | None = None,
        nodes_offline: int | None = None,
    ) -> None:
        """Set the gauges given (None leaves one unchanged)."""
        for gauge, value in (
            (self.pending, pending),
            (self.inflight, inflight),
            (self.spool_bytes, spool_bytes),
            (self.nodes_offline, nodes_offline),
        ):
            if value is not None:
                gauge.set(value)

    # -- exposition -------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
        """Serve ``/metrics`` (any path, in fact) from a daemon thread; the handle has
        ``port``, ``url`` and ``close()``."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsServer(server, thread)

    def text(self) -> str:
        """The exposition text, as a scrape would get it."""
        return generate_latest(self.registry).decode()

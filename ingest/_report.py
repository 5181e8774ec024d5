"""What an ingest worker writes about its nodes and itself every report interval, so that the
dashboards read node and ingest health from InfluxDB (docs/protocol.md "TSDB storage"):

- ``node_state``: one point per node of this worker's topic filters (position, offline,
  silence, retained status), from the grid file and the deadman;
- ``ingest``: the worker's intake counters (cumulative since it started), its gauges and the
  sample-to-detection lag of the readings flushed since the last report;
- ``ingest_rejected``: per rejection reason, the cumulative count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ingest._lines import (
    INGEST_MEASUREMENT,
    INGEST_REJECTED_MEASUREMENT,
    node_state_line,
    node_tags,
    point_line,
    worker_tags,
)
from ingest._liveness import Deadman
from ingest._metrics import ArrayHistogram
from tianwang.registry import Node, Registry

# Intake counters of IngestService.counts written as fields of ``ingest`` (0 when absent).
COUNTERS = (
    "messages",
    "readings",
    "stored",
    "rejected_readings",
    "duplicate",
    "too_old",
    "sink_errors",
    "tsdb_rejected",
    "status",
    "health",
    "seq_gaps",
)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching: ``+`` is one level, a final ``#`` the rest (MQTT 5 §4.7)."""
    want, have = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)


def worker_nodes(registry: Registry, topic_filters: Sequence[str]) -> list[Node]:
    """The nodes whose data topic one of ``topic_filters`` matches: a worker's own nodes."""
    data = [f for f in topic_filters if f.endswith("/data") or f.endswith("/#")]
    return [node for node in registry.nodes.values()
            if any(topic_matches(f, node.place.topic("data")) for f in data)]  # fmt: skip


class Reporter:
    """Builds the report lines; the service writes them (``IngestService``)."""

    def __init__(
        self,
        registry: Registry,
        deadman: Deadman,
        worker: str,
        topic_filters: Sequence[str],
        clock: Callable[[], float],
    ) -> None:
        self.worker = worker
        self.deadman = deadman
        self.clock = clock
        self.nodes: list[Node] = worker_nodes(registry, topic_filters)
        self._tags = {node.id: node_tags(node) for node in self.nodes}
        # the lag histogram at the last report: cumulative bucket counts and sum
        self._lag_seen: tuple[np.ndarray | None, float] = (None, 0.0)

    def node_lines(self) -> list[str]:
        now = self.clock()
        ts_ms = round(now * 1000)
        d = self.deadman
        return [
            node_state_line(
                node,
                self._tags[node.id],
                ts_ms,
                offline=node.id in d.offline,
                silent_s=max(0.0, now - d.last_seen.get(node.id, now)),
                said=d.said.get(node.id),
            )
            for node in self.nodes
        ]

    def ingest_lines(
        self,
        counts: Mapping[str, int],
        rejections: Mapping[str, int],
        gauges: Mapping[str, int | None],
        lag: ArrayHistogram,
    ) -> list[str]:
        ts_ms = round(self.clock() * 1000)
        tags = worker_tags(self.worker)
        fields: dict[str, float | int | None] = {k: int(counts.get(k, 0)) for k in COUNTERS}
        fields["rejected"] = int(sum(rejections.values()))
        fields.update(gauges)
        fields.update(self._lag(lag))
        lines = [point_line(INGEST_MEASUREMENT, tags, fields, ts_ms)]
        lines += [
            point_line(
                INGEST_REJECTED_MEASUREMENT, f"{tags},reason={reason}", {"count": int(n)}, ts_ms
            )
            for reason, n in sorted(rejections.items())
            if reason.isidentifier()  # reason codes are identifiers; nothing to escape
        ]
        return lines

    def _lag(self, lag: ArrayHistogram) -> dict[str, float | None]:
        """Mean and 95th percentile (a bucket bound: an upper estimate) of the lag of the
        readings flushed since the last report; None when there were none."""
        cumulative, total = lag.snapshot()
        seen, seen_sum = self._lag_seen
        self._lag_seen = (cumulative, total)
        delta = cumulative if seen is None else cumulative - seen
        n = int(delta[-1])
        if n <= 0:
            return {"lag_mean_s": None, "lag_p95_s": None}
        slot = int(np.searchsorted(delta, 0.95 * n, side="left"))
        bounds = lag.bounds
        p95 = float(bounds[min(slot, bounds.size - 1)])
        return {"lag_mean_s": (total - seen_sum) / n, "lag_p95_s": p95}

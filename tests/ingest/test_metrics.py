"""IngestMetrics: values after calls, scraped over loopback; instances do not share values."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from detect import ExceedanceEvent
from ingest._metrics import LAG_BUCKETS_S, IngestMetrics, MetricsServer


def scrape(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint: (name, sorted labels) -> value."""
    response = httpx.get(server.url, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


@pytest.fixture
def served() -> Iterator[tuple[IngestMetrics, MetricsServer]]:
    metrics = IngestMetrics()
    server = metrics.serve()
    try:
        yield metrics, server
    finally:
        server.close()


def event(rule: str, kind: str) -> ExceedanceEvent:
    return ExceedanceEvent(
        kind, "n1", "PM2.5", rule, 0, 80.0, 75.0, "ug/m3", "GB 3095", "2012", "4.2", 0, 80.0
    )  # type: ignore[arg-type]


def test_counters_and_gauges_after_calls(served: tuple[IngestMetrics, MetricsServer]) -> None:
    metrics, server = served
    assert server.port > 0
    metrics.count_messages()
    metrics.count_messages(9)
    metrics.count_readings(54)
    metrics.reject("schema")
    metrics.reject("implausible", 3)
    metrics.duplicate("duplicate", 2)
    metrics.duplicate("too_old")
    metrics.sink_error()
    metrics.count_events(
        [event("1h_mean", "open"), event("1h_mean", "open"), event("24h_mean", "close")]
    )
    metrics.set_state(pending=120, inflight=7, spool_bytes=4096, nodes_offline=2)
    metrics.set_state(pending=5)  # the others unchanged

    got = scrape(server)
    assert got[("tianwang_ingest_messages_total", ())] == 10
    assert got[("tianwang_ingest_readings_total", ())] == 54
    assert got[("tianwang_ingest_rejected_total", (("reason", "schema"),))] == 1
    assert got[("tianwang_ingest_rejected_total", (("reason", "implausible"),))] == 3
    assert got[("tianwang_ingest_duplicates_total", (("kind", "duplicate"),))] == 2
    assert got[("tianwang_ingest_duplicates_total", (("kind", "too_old"),))] == 1
    assert got[("tianwang_ingest_sink_errors_total", ())] == 1
    assert got[("tianwang_ingest_events_total", (("kind", "open"), ("rule", "1h_mean")))] == 2
    assert got[("tianwang_ingest_events_total", (("kind", "close"), ("rule", "24h_mean")))] == 1
    assert got[("tianwang_ingest_pending", ())] == 5
    assert got[("tianwang_ingest_inflight", ())] == 7
    assert got[("tianwang_ingest_spool_bytes", ())] == 4096
    assert got[("tianwang_ingest_nodes_offline", ())] == 2


def test_lag_histogram_matches_per_value_bucketing(
    served: tuple[IngestMetrics, MetricsServer],
) -> None:
    metrics, server = served
    rng = np.random.default_rng(7)
    batches = [rng.lognormal(-1.0, 2.0, size) for size in (1, 500, 3000)]
    batches.append(np.array([0.01, 1.0, 3600.0, 5000.0, math.nan]))  # edges, +Inf, NaN skipped
    for lags in batches:
        metrics.observe_batch(len(lags), lags)
    metrics.observe_batch(0, np.array([]))

    values = np.concatenate(batches)
    finite = values[~np.isnan(values)]
    got = scrape(server)
    assert got[("tianwang_ingest_stored_total", ())] == len(values)
    assert got[("tianwang_ingest_lag_seconds_count", ())] == len(finite)
    assert got[("tianwang_ingest_lag_seconds_sum", ())] == pytest.approx(finite.sum())
    for bound in LAG_BUCKETS_S:
        le = (("le", repr(float(bound))),)
        assert got[("tianwang_ingest_lag_seconds_bucket", le)] == (finite <= bound).sum(), bound
    assert got[("tianwang_ingest_lag_seconds_bucket", (("le", "+Inf"),))] == len(finite)


def test_flush_histogram(served: tuple[IngestMetrics, MetricsServer]) -> None:
    metrics, server = served
    for seconds in (0.002, 0.03, 0.03, 4.0):
        metrics.observe_flush(seconds)
    got = scrape(server)
    assert got[("tianwang_ingest_flush_seconds_count", ())] == 4
    assert got[("tianwang_ingest_flush_seconds_bucket", (("le", "0.025"),))] == 1
    assert got[("tianwang_ingest_flush_seconds_bucket", (("le", "0.05"),))] == 3
    assert got[("tianwang_ingest_flush_seconds_sum", ())] == pytest.approx(4.062)


def test_two_instances_do_not_share_values() -> None:
    a, b = IngestMetrics(), IngestMetrics()
    with a.serve() as server_a, b.serve() as server_b:
        assert server_a.port != server_b.port
        a.count_messages(3)
        a.reject("schema")
        a.observe_batch(2, np.array([0.2, 0.3]))
        b.count_messages(1)
        got_a, got_b = scrape(server_a), scrape(server_b)
    assert got_a[("tianwang_ingest_messages_total", ())] == 3
    assert got_b[("tianwang_ingest_messages_total", ())] == 1
    assert ("tianwang_ingest_rejected_total", (("reason", "schema"),)) not in got_b
    assert got_a[("tianwang_ingest_lag_seconds_count", ())] == 2
    assert got_b[("tianwang_ingest_lag_seconds_count", ())] == 0
    assert "tianwang_ingest_messages_total 3.0" in a.text()


def test_close_stops_the_endpoint() -> None:
    metrics = IngestMetrics()
    server = metrics.serve()
    httpx.get(server.url, timeout=5).raise_for_status()
    server.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url, timeout=2)

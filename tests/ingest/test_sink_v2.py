"""InfluxV2Sink (influxdb-client, /api/v2/write) against a real VictoriaMetrics.

VictoriaMetrics keeps each field as the series ``sample_<field>`` with the tags as labels; it
stores numbers only, so a string flag field reads back as 0 (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import pytest

from ingest import InfluxV2Sink, SinkError
from tests.ingest.helpers import NODES, QUANTITIES, lines, readings
from tianwang.services import VictoriaMetrics, free_port


def sink(url: str) -> InfluxV2Sink:
    return InfluxV2Sink(url, token="unused", org="tianwang", bucket="tianwang", timeout_s=5)


async def _write(url: str, batches: list[list[str]]) -> int:
    async with sink(url) as s:
        for batch in batches:
            await s.write(batch)
        return s.points_written


def exported(vm: VictoriaMetrics) -> dict[tuple[str, str, int], float]:
    """(metric name, node, ts) -> value for every ``sample_*`` sample; a duplicate fails."""
    vm.flush()
    response = httpx.get(
        f"{vm.url}/api/v1/export", params={"match[]": '{__name__=~"sample_.*"}'}, timeout=30
    )
    response.raise_for_status()
    out: dict[tuple[str, str, int], float] = {}
    for text in response.text.splitlines():
        series = json.loads(text)
        metric = series["metric"]
        assert metric["county"] == "yiyuan"
        for ts, value in zip(series["timestamps"], series["values"], strict=True):
            key = (metric["__name__"], metric["node"], ts)
            assert key not in out, key
            out[key] = value
    return out


def expected(node_samples: dict[str, int]) -> dict[tuple[str, str, int], float]:
    out = {}
    for node, count in node_samples.items():
        for r in readings(node, 0, count):
            if not math.isnan(r.value):
                out[(f"sample_{r.quantity}", node, r.ts_ms)] = r.value
            out[(f"sample_{r.quantity}_seq", node, r.ts_ms)] = float(r.seq)
            out[(f"sample_{r.quantity}_flag", node, r.ts_ms)] = 0.0
    return out


def test_samples_read_back_equal_and_rewrites_do_not_double(
    victoria_metrics: VictoriaMetrics,
) -> None:
    batches = [lines(node, 0, 30) for node in NODES]
    assert asyncio.run(_write(victoria_metrics.url, batches)) == 90
    want = expected(dict.fromkeys(NODES, 30))
    assert exported(victoria_metrics) == want
    # The same points again (a replay): one sample per series and ms is kept.
    asyncio.run(_write(victoria_metrics.url, [*batches, lines(NODES[0], 20, 15)]))
    assert exported(victoria_metrics) == expected({NODES[0]: 35, NODES[1]: 30, NODES[2]: 30})


def test_query_api_counts_samples_per_node(victoria_metrics: VictoriaMetrics) -> None:
    asyncio.run(_write(victoria_metrics.url, [lines(node, 0, 10) for node in NODES]))
    asyncio.run(_write(victoria_metrics.url, [lines(NODES[1], 0, 10)]))
    victoria_metrics.flush()
    t_end_s = (readings(NODES[0], 9, 1)[0].ts_ms // 1000) + 1
    response = httpx.get(
        f"{victoria_metrics.url}/api/v1/query",
        params={"query": "count_over_time(sample_NO2_seq[1h])", "time": t_end_s},
        timeout=30,
    )
    result = response.json()["data"]["result"]
    assert {r["metric"]["node"]: r["value"][1] for r in result} == dict.fromkeys(NODES, "10")
    assert len(QUANTITIES) == 6


def test_unreachable_raises_and_malformed_lines_are_skipped(
    victoria_metrics: VictoriaMetrics,
) -> None:
    async def run() -> None:
        async with sink(f"http://127.0.0.1:{free_port()}") as down:
            with pytest.raises(SinkError):
                await down.write(lines(NODES[0], 0, 1))
        # Unlike InfluxDB (400), VictoriaMetrics answers 204 and skips a malformed line.
        async with sink(victoria_metrics.url) as up:
            await up.write(["sample,node=x PM2.5=oops,= 1795766400000", *lines(NODES[0], 0, 1)])

    asyncio.run(run())
    assert exported(victoria_metrics) == expected({NODES[0]: 1})

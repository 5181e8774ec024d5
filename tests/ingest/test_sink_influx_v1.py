"""InfluxV1Sink against a real InfluxDB 1.x: samples written come back as written, once."""

from __future__ import annotations

import asyncio

import pytest

from ingest import InfluxV1Sink, SinkError, SinkRejected
from tests.ingest.helpers import (
    NODES,
    expected_fields,
    influxql,
    lines,
    readings,
    seq_counts,
    stored_samples,
)
from tianwang.services import InfluxDB, free_port


async def _write(url: str, batches: list[list[str]]) -> int:
    async with InfluxV1Sink(url) as sink:
        for batch in batches:
            await sink.write(batch)
        return sink.points_written


def test_samples_read_back_equal_and_rewrites_do_not_double(influxdb: InfluxDB) -> None:
    batches = [lines(node, 0, 40) for node in NODES]
    assert asyncio.run(_write(influxdb.url, batches)) == 120
    expected = {}
    for node in NODES:
        expected |= expected_fields(readings(node, 0, 40))
    assert stored_samples(influxdb.url) == expected
    assert seq_counts(influxdb.url) == dict.fromkeys(NODES, 40)
    # Written again (a replay after a crash), and overlapping: nothing counted twice.
    asyncio.run(_write(influxdb.url, [*batches, lines(NODES[0], 20, 30)]))
    assert seq_counts(influxdb.url) == {NODES[0]: 50, NODES[1]: 40, NODES[2]: 40}
    assert stored_samples(influxdb.url) == expected | expected_fields(readings(NODES[0], 0, 50))


def test_missing_value_counts_in_seq_not_in_value(influxdb: InfluxDB) -> None:
    asyncio.run(_write(influxdb.url, [lines(NODES[0], 0, 14)]))  # samples 0 and 7: PM10 NaN
    assert seq_counts(influxdb.url, "PM10") == {NODES[0]: 14}
    (series,) = influxql(influxdb.url, 'SELECT count("PM10") FROM "sample"')
    assert series["values"][0][1] == 12


def test_unreachable_database_raises() -> None:
    async def run() -> None:
        sink = InfluxV1Sink(f"http://127.0.0.1:{free_port()}", timeout_s=2)
        with pytest.raises(SinkError):
            await sink.write(lines(NODES[0], 0, 1))
        await sink.__aexit__(None, None, None)

    asyncio.run(run())


def test_malformed_batch_is_rejected_not_retried(influxdb: InfluxDB) -> None:
    async def run() -> None:
        async with InfluxV1Sink(influxdb.url) as sink:
            await sink.write(lines(NODES[0], 0, 1))
            with pytest.raises(SinkRejected):
                await sink.write(["sample,node=x PM2.5=oops 1795766400000"])

    asyncio.run(run())

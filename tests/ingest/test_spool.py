"""SpoolingSink with a real InfluxDB: an outage mid-stream loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ingest import InfluxV1Sink, SinkError, SinkRejected, SpoolingSink
from tests.ingest.helpers import NODES, expected_fields, lines, readings, seq_counts, stored_samples
from tianwang.services import InfluxDB, free_port

BATCH = 25  # samples per node and batch
FAST = {"retry_min_s": 0.05, "retry_max_s": 0.2}


def on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.lp"))


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


async def _outage(influx: InfluxDB, spool: Path) -> SpoolingSink:
    inner = InfluxV1Sink(influx.url, timeout_s=2)
    async with SpoolingSink(
        inner, spool, max_bytes=10 << 20, segment_bytes=16 << 10, **FAST
    ) as sink:
        for b in range(30):  # 30 batches of 3 nodes x 25 samples, the database down for 10
            if b == 10:
                await asyncio.to_thread(influx.stop)
            if b == 20:
                assert sink.spool_bytes == on_disk(spool) > 0
                assert sink.spooled_lines == 10 * 3 * BATCH
                assert sink.write_errors >= 1
                await asyncio.to_thread(influx.start)
            for node in NODES:
                await sink.write(lines(node, b * BATCH, BATCH))
            assert sink.spool_bytes <= sink.max_bytes
        assert await sink.drain(timeout_s=60)
        assert sink.replayed_lines == sink.spooled_lines >= 10 * 3 * BATCH
        assert sink.spool_bytes == on_disk(spool) == 0
    return sink


def test_outage_mid_stream_loses_and_doubles_nothing(influxdb: InfluxDB, tmp_path: Path) -> None:
    sink = asyncio.run(_outage(influxdb, tmp_path / "spool"))
    total = 30 * BATCH
    assert sink.points_written == sink.replayed_lines + (total * 3 - sink.spooled_lines)
    assert seq_counts(influxdb.url) == dict.fromkeys(NODES, total)
    assert seq_counts(influxdb.url, "CO") == dict.fromkeys(NODES, total)
    expected = {}
    for node in NODES:
        expected |= expected_fields(readings(node, 0, total))
    assert stored_samples(influxdb.url) == expected


async def _fill(spool: Path, max_bytes: int) -> SpoolingSink:
    async with SpoolingSink(InfluxV1Sink(dead_url()), spool, max_bytes, **FAST) as sink:
        for b in range(200):
            try:
                await sink.write(lines(NODES[0], b * 10, 10))
            except SinkError as exc:
                assert "spool full" in str(exc)
                break
            assert sink.spool_bytes == on_disk(spool) <= max_bytes
        else:
            pytest.fail("the spool never filled")
        with pytest.raises(SinkError, match="spool full"):
            await sink.write(lines(NODES[0], b * 10, 10))  # still full: refused again, counted
        assert sink.spool_full == 2
        assert sink.spooled_lines == b * 10
    return sink


def test_a_full_spool_refuses_and_stays_bounded(tmp_path: Path) -> None:
    sink = asyncio.run(_fill(tmp_path / "spool", max_bytes=40_000))
    assert 30_000 < sink.spool_bytes <= 40_000
    assert on_disk(tmp_path / "spool") == sink.spool_bytes  # left for the next start


async def _crash_then_restart(influx: InfluxDB, spool: Path) -> tuple[int, int, int]:
    async with SpoolingSink(
        InfluxV1Sink(dead_url()), spool, 1 << 20, segment_bytes=4096, **FAST
    ) as first:
        for b in range(8):
            for node in NODES:
                await first.write(lines(node, b * 10, 10))
        spooled = first.spooled_lines
    assert len(list(spool.glob("*.lp"))) > 2
    # A crash in the middle of appending a batch: a torn last line, never acknowledged.
    last = sorted(spool.glob("*.lp"))[-1]
    with last.open("ab") as f:
        f.write(lines(NODES[0], 500, 1)[0][:40].encode())
    async with SpoolingSink(InfluxV1Sink(influx.url), spool, 1 << 20, **FAST) as second:
        assert second.spool_bytes == on_disk(spool) > 0
        assert await second.drain(timeout_s=60)
        replayed = second.replayed_lines
    return spooled, replayed, on_disk(spool)


def test_a_spool_left_on_disk_is_replayed_on_start(influxdb: InfluxDB, tmp_path: Path) -> None:
    spooled, replayed, left = asyncio.run(_crash_then_restart(influxdb, tmp_path / "spool"))
    assert spooled == replayed == 8 * 10 * 3
    assert left == 0
    assert seq_counts(influxdb.url) == dict.fromkeys(NODES, 80)  # the torn line not written


async def _rejected(influx: InfluxDB, spool: Path) -> SpoolingSink:
    bad = ["sample,node=x PM2.5=oops 1795766400000"]
    async with SpoolingSink(
        InfluxV1Sink(dead_url()), spool, 1 << 20, segment_bytes=1024, **FAST
    ) as first:
        await first.write(lines(NODES[0], 0, 5))
        await first.write(bad)
        await first.write(lines(NODES[0], 5, 5))
    async with SpoolingSink(InfluxV1Sink(influx.url), spool, 1 << 20, **FAST) as second:
        assert await second.drain(timeout_s=60)
        with pytest.raises(SinkRejected):  # refused at once: not spooled, where it would stick
            await second.write(bad)
        assert second.spool_bytes == 0
    return second


def test_a_refused_segment_is_set_aside_and_the_rest_replayed(
    influxdb: InfluxDB, tmp_path: Path
) -> None:
    sink = asyncio.run(_rejected(influxdb, tmp_path / "spool"))
    assert sink.rejected_lines >= 1
    assert list((tmp_path / "spool" / "rejected").glob("*.lp"))
    assert seq_counts(influxdb.url) == {NODES[0]: 10}


async def _down(spool: Path) -> int:
    sink = SpoolingSink(InfluxV1Sink(dead_url()), spool, 1 << 20, retry_min_s=0.1, retry_max_s=0.4)
    async with sink:
        errors_at_start = sink.write_errors  # the CREATE DATABASE on entry
        for b in range(50):  # a stream of batches during the outage, over about 1 s
            await sink.write(lines(NODES[0], b, 1))
            await asyncio.sleep(0.02)
        errors = sink.write_errors - errors_at_start
    assert sink.spooled_lines == 50
    return errors


def test_while_down_only_the_replayer_probes_with_backoff(tmp_path: Path) -> None:
    errors = asyncio.run(_down(tmp_path / "spool"))
    # One failed direct write, then replay attempts 0.05-0.1, 0.1-0.2, 0.2-0.4 s apart...:
    # a handful, not one per batch.
    assert 2 <= errors <= 12

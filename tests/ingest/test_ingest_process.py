"""`tianwang ingest` as a process: SIGKILL mid-stream and a restart lose nothing and double
nothing (persistent session, acknowledgement after the write); two partition workers split a
county without loss or double counting. Real Mosquitto and InfluxDB."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from detect import Detector
from ingest import (
    InfluxV1Sink,
    IngestConfig,
    IngestService,
    partition_filters,
    stored_readings,
    worker_config,
)
from tianwang.codec import Reading, encode_data
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.registry import Registry
from tianwang.services import InfluxDB, Mosquitto

ROOT = Path(__file__).resolve().parents[2]
GRID = ROOT / "examples" / "county.yaml"
QUANTITIES = ("PM2.5", "PM10", "SO2", "NO2", "CO", "O3")


def sample(node: str, i: int, t0_ms: int) -> bytes:
    """Sample ``i`` of an air node: six readings, seqs 6i..6i+5, one a second apart."""
    ts = t0_ms + i * 1000
    return encode_data(node, [Reading(node, 6 * i + k, ts, q, 20.0 + k + i % 7, "ug/m3" if
                                      q != "CO" else "mg/m3", "N")
                              for k, q in enumerate(QUANTITIES)])  # fmt: skip


async def publish(broker: Mosquitto, county: Registry, nodes: list[str], samples: range,
                  t0_ms: int, pace_s: float = 0.0) -> int:  # fmt: skip
    """Publish ``samples`` of every node at QoS 1; returns the readings published."""
    async with MqttLink(BrokerAddress.parse(broker.url), f"pub-{samples.start}") as link:
        for i in samples:
            for node in nodes:
                topic = county.nodes[node].place.topic("data")
                await link.publish(topic, sample(node, i, t0_ms), qos=1)
            if pace_s:
                await asyncio.sleep(pace_s)
    return len(samples) * len(nodes) * len(QUANTITIES)


def start_ingest(broker: Mosquitto, influx: InfluxDB, var: Path) -> subprocess.Popen[bytes]:
    log = (var / "ingest.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tianwang.cli", "ingest", "--grid", str(GRID), "--broker",
         broker.url, "--influx", influx.url, "--var", str(var), "--checkpoint-s", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


async def wait_stored(sink: InfluxV1Sink, expected: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        count = len(await stored_readings(sink))
        if count >= expected:
            return count
        await asyncio.sleep(0.25)
    return count


def test_sigkill_and_restart_lose_nothing_and_double_nothing(
    tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, county: Registry
) -> None:
    nodes = [n for n in county.nodes if n.startswith("yy-00")][:8]
    t0_ms = int(time.time() * 1000) - 3_600_000  # an hour ago: inside the time window

    async def scenario() -> tuple[int, list[tuple[str, int]]]:
        async with InfluxV1Sink(influxdb.url) as sink:
            proc = start_ingest(mosquitto, influxdb, tmp_path)
            try:
                # the session exists once ingest has subscribed: repeat a first sample (its
                # copies are duplicates) until it is stored
                published = 0
                for _ in range(60):
                    published = await publish(mosquitto, county, nodes[:1], range(0, 1), t0_ms)
                    if await wait_stored(sink, published, 1.0) == published:
                        break
                assert await wait_stored(sink, published, 1.0) == published, "ingest not up"
                stream = asyncio.create_task(
                    publish(mosquitto, county, nodes, range(1, 301), t0_ms, pace_s=0.01)
                )
                await asyncio.sleep(1.0)
                proc.send_signal(signal.SIGKILL)  # mid-stream, batches unacknowledged
                proc.wait(timeout=10)
                await asyncio.sleep(1.0)  # the stream goes on into the broker's session
                proc = start_ingest(mosquitto, influxdb, tmp_path)
                published += await stream
                count = await wait_stored(sink, published, 90)
                assert count == published
                stored = [(r.node, r.seq) for r in await stored_readings(sink)]
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        return published, stored

    published, stored = asyncio.run(scenario())
    assert len(stored) == published  # nothing lost ...
    assert len(set(stored)) == len(stored)  # ... nothing doubled
    assert list((tmp_path / "ingest-0").glob("detector-*.npz"))  # checkpointed


def test_two_partition_workers_split_a_county_without_loss_or_double_counting(
    mosquitto: Mosquitto, influxdb: InfluxDB, county: Registry
) -> None:
    nodes = [n for n, node in county.nodes.items() if set(QUANTITIES) <= set(node.quantities)]
    t0_ms = int(time.time() * 1000) - 3_600_000
    base = IngestConfig(BrokerAddress.parse(mosquitto.url), flush_interval_s=0.05)
    filters = [partition_filters(county, 2, i) for i in range(2)]
    assert filters[0] and filters[1]  # each worker has townships
    assert not set(filters[0]) & set(filters[1])

    async def scenario() -> tuple[int, list[IngestService], list[tuple[str, int]]]:
        async def ignore(events: list[object]) -> None:
            return None

        async with InfluxV1Sink(influxdb.url) as sink:
            workers = [IngestService(worker_config(base, f, i), county, Detector(), sink, ignore)
                       for i, f in enumerate(filters)]  # fmt: skip
            async with workers[0], workers[1]:
                published = await publish(mosquitto, county, nodes, range(20), t0_ms)
                deadline = time.monotonic() + 60
                while sum(w.counts["stored"] for w in workers) < published:
                    assert time.monotonic() < deadline, [w.counts for w in workers]
                    await asyncio.sleep(0.05)
            stored = [(r.node, r.seq) for r in await stored_readings(sink)]
        return published, workers, stored

    published, workers, stored = asyncio.run(scenario())
    assert sum(w.counts["stored"] for w in workers) == published  # counted once in all
    assert len(stored) == len(set(stored)) == published
    seen = [set(w.readings_by_node) for w in workers]
    assert seen[0] and seen[1] and not seen[0] & seen[1]  # a node stays with one worker
    for w, nodes_of_worker in zip(workers, seen, strict=True):
        townships = {county.nodes[n].place.township for n in nodes_of_worker}
        assert all(any(f"/{t}/" in f for f in w.config.topic_filters) for t in townships)
    # each worker times its own nodes for liveness, and every node has one worker timing it
    timed = [set(w.deadman.last_seen) for w in workers]
    assert not timed[0] & timed[1] and timed[0] | timed[1] == set(county.nodes)
    assert seen[0] <= timed[0] and seen[1] <= timed[1]

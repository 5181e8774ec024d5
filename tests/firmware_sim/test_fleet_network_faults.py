"""Network faults applied by the fleet on real Mosquitto, ingest and InfluxDB: nodes cut off,
a node powered off, a broker restart, duplicated and reordered delivery, a skewed clock.
Whatever the network does, every reading a node took is stored exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from detect import Detector
from firmware_sim import FleetRun, load_scenario, run_fleet
from ingest import InfluxV1Sink, IngestConfig, IngestService, StoredReading, stored_readings
from tianwang.mqtt import BrokerAddress
from tianwang.registry import Registry
from tianwang.services import InfluxDB, Mosquitto

NODES = ["yy-0001", "yy-0002", "yy-0003", "yy-0004", "yy-0005", "yy-0006"]
SPEED = 240.0  # 40 simulated minutes in 10 s
SCENARIO = {
    "name": "network-faults",
    "start": "2026-11-27T08:00:00+08:00",
    "duration_h": 40 / 60,
    "seed": 3,
    "network_faults": [
        {"id": "cut", "kind": "node_offline", "nodes": ["yy-0001"], "start_min": 5,
         "duration_min": 10},
        {"id": "power", "kind": "node_offline", "nodes": ["yy-0002"], "power_off": True,
         "start_min": 5, "duration_min": 10},
        {"id": "restart", "kind": "broker_restart", "start_min": 22, "duration_min": 2},
        {"id": "dup", "kind": "duplicate_delivery", "nodes": ["yy-0003"], "start_min": 0,
         "duration_min": 40},
        {"id": "reorder", "kind": "out_of_order", "nodes": ["yy-0004"], "window": 4,
         "start_min": 0, "duration_min": 30},
        {"id": "skew", "kind": "clock_skew", "nodes": ["yy-0005"], "offset_s": 30,
         "start_min": 10, "duration_min": 10},
    ],
}  # fmt: skip


async def _ignore(events: list[object]) -> None:
    return None


async def run(county: Registry, tmp_path: Path, broker: Mosquitto, influx: InfluxDB
              ) -> tuple[FleetRun, IngestService, dict[str, list[list[object]]]]:  # fmt: skip
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    scenario = load_scenario(path, county)
    address = BrokerAddress.parse(broker.url)
    async with InfluxV1Sink(influx.url) as sink:
        config = IngestConfig(address, flush_interval_s=0.05)
        async with IngestService(config, county, Detector(), sink, _ignore) as ingest:
            fleet = await run_fleet(county, scenario, address, speed=SPEED, nodes=NODES,
                                    broker_control=broker)  # fmt: skip
            total = sum(fleet.readings_published.values())
            assert await ingest.wait_for_readings(total, timeout_s=30)
        rows: dict[str, list[StoredReading]] = {}
        for r in await stored_readings(sink):
            rows.setdefault(r.node, []).append(r)
    return fleet, ingest, rows


def test_every_reading_is_stored_once_whatever_the_network_does(
    county: Registry, tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
) -> None:
    fleet, ingest, rows = asyncio.run(run(county, tmp_path, mosquitto, influxdb))
    for node in NODES:
        seqs = sorted(r.seq for r in rows[node])
        assert seqs == list(range(fleet.readings_published[node])), node
    # 40 samples of 6 quantities; the powered-off node took none for 10 minutes.
    assert fleet.readings_published["yy-0002"] == 30 * 6
    assert all(fleet.readings_published[n] == 40 * 6 for n in NODES if n != "yy-0002")
    assert ingest.counts["duplicate"] >= 6  # yy-0003's repeats, dropped by (node, seq)
    # The skewed node stamped 10 samples 30 s late of the minute.
    second = [r.ts_ms // 1000 % 60 for r in rows["yy-0005"]]
    assert set(second) == {0, 30}
    assert second.count(30) == 10 * 6

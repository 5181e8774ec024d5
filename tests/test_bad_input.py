"""Bad input on the data topic is logged with its reason, counted, and does not stop ingest."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from pathlib import Path

import pytest

from detect import Detector
from ingest import InfluxV1Sink, IngestConfig, IngestService, stored_readings
from tianwang.codec import Reading, encode_data
from tianwang.mqtt import BrokerAddress
from tianwang.registry import Registry
from tianwang.services import InfluxDB, Mosquitto

NODE = "yy-0001"
TOPIC = "tw/v1/yiyuan/nanma/dongli/yy-0001/data"
T0_MS = 1795766700000

BAD = [
    ("not_json", TOPIC, b"\x00\xffnot json at all"),
    ("schema", TOPIC, b'{"v": 1, "node": "yy-0001", "readings": [{"seq": "one"}]}'),
    ("schema", TOPIC, b'{"v": 1, "node": "yy-0001", "readings": [{"seq": 1, "ts": 5,'
     b' "quantity": "NO2", "value": "high", "unit": "ug/m3", "flag": "N"}]}'),
    ("unknown_node", TOPIC.replace("yy-0001", "zz-9999"),
     encode_data("zz-9999", [Reading("zz-9999", 1, T0_MS, "NO2", 40.0, "ug/m3", "N")])),
    ("topic_mismatch", TOPIC.replace("yy-0001", "yy-0002"),
     encode_data(NODE, [Reading(NODE, 5, T0_MS, "NO2", 40.0, "ug/m3", "N")])),
]  # fmt: skip


def _reading(seq: int) -> bytes:
    return encode_data(NODE, [Reading(NODE, seq, T0_MS + seq * 60_000, "NO2", 41.0 + seq,
                                      "ug/m3", "N")])  # fmt: skip


def _mosquitto_pub(port: int, topic: str, payload: bytes) -> None:
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-s"],
        input=payload, check=True, timeout=10,
    )  # fmt: skip


async def _run(
    registry: Registry, broker: Mosquitto, influx: InfluxDB
) -> tuple[IngestService, list[list[object]]]:
    events: list[object] = []

    async def on_events(batch: list[object]) -> None:
        events.extend(batch)

    async with InfluxV1Sink(influx.url) as sink:
        # fixed sample times: no time window, so the test does not age
        config = IngestConfig(BrokerAddress.parse(broker.url), flush_interval_s=0.05,
                              max_future_s=None, max_age_s=None)  # fmt: skip
        async with IngestService(config, registry, Detector(), sink, on_events) as ingest:
            await asyncio.to_thread(_mosquitto_pub, broker.port, TOPIC, _reading(1))
            for _, topic, payload in BAD:
                await asyncio.to_thread(_mosquitto_pub, broker.port, topic, payload)
            await asyncio.to_thread(_mosquitto_pub, broker.port, TOPIC, _reading(2))
            assert await ingest.wait_for_readings(2, timeout_s=20)
        stored = await stored_readings(sink, "yy-0001")
    return ingest, sorted((r.value, r.seq) for r in stored)


def test_bad_messages_are_counted_and_readings_around_them_arrive(
    tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, county: Registry,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="ingest"):
        ingest, rows = asyncio.run(_run(county, mosquitto, influxdb))
    assert rows == [(42.0, 1), (43.0, 2)]
    expected: dict[str, int] = {}
    for reason, _, _ in BAD:
        expected[reason] = expected.get(reason, 0) + 1
    assert dict(ingest.rejections) == expected
    assert [r.reason for r in ingest.quarantine.recent] == [reason for reason, _, _ in BAD]
    assert ingest.quarantine.recent[0].payload == BAD[0][2]  # the raw payload is kept
    for reason in expected:
        assert any(reason in message for message in caplog.messages), reason

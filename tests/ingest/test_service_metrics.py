"""After a run of good and bad messages through a real broker and InfluxDB, the Prometheus
exposition of IngestService agrees with its counters and with what was published."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from detect import Detector
from ingest import InfluxV1Sink, IngestConfig, IngestService, count_stored
from tianwang.codec import Reading, encode_data
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.registry import Registry
from tianwang.services import InfluxDB, Mosquitto

NOW_S = 1795766400.0
NOW_MS = int(NOW_S * 1000)
NODE = "yy-0001"
TOPIC = "tw/v1/yiyuan/nanma/dongli/yy-0001/data"


def reading(seq: int, quantity: str = "PM2.5", value: float = 30.0, unit: str = "ug/m3",
            ts_ms: int = NOW_MS) -> Reading:  # fmt: skip
    return Reading(NODE, seq, ts_ms - (seq % 60) * 60_000, quantity, value, unit, "N")


def two(seq: int) -> bytes:
    """Two readings (seq, seq + 1000) at one sample time."""
    return encode_data(NODE, [reading(seq), reading(seq + 1000, "NO2", 20.0 + seq)])


MESSAGES: list[tuple[str, bytes]] = [
    *[(TOPIC, two(s)) for s in range(1, 6)],  # 10 readings
    (TOPIC, b"{not json"),
    (TOPIC, b'{"v": 1, "node": "yy-0001", "readings": []}'),  # schema: minItems
    (
        TOPIC.replace("yy-0001", "zz-9999"),
        encode_data("zz-9999", [Reading("zz-9999", 1, NOW_MS, "PM2.5", 1.0, "ug/m3", "N")]),
    ),
    (TOPIC.replace("yy-0001", "yy-0002"), two(50)),  # topic_mismatch
    ("tw/v1/yiyuan/nanma/dongli/yy-0001/bogus", two(60)),  # bad_topic (the filter is +/data)
    (
        TOPIC,
        encode_data(
            NODE,
            [
                reading(70),
                reading(71, "SO2", 3.0, "furlongs"),
                reading(72, "PM10", -5.0),
                reading(73, "O3", 1.0, ts_ms=NOW_MS + 3600_000),
            ],
        ),
    ),  # 1 ok, wrong_unit, implausible, future
    (TOPIC, two(1)),  # a redelivered message: both readings are duplicates
    (TOPIC, encode_data(NODE, [reading(80, "NO2", 40.0, "ppb")])),  # converted, accepted
]
DATA_MESSAGES = len(MESSAGES) - 1  # the bogus kind is not subscribed to
ACCEPTED = 10 + 1 + 1
REJECTED = {"not_json": 1, "schema": 1, "unknown_node": 1, "topic_mismatch": 1,
            "wrong_unit": 1, "implausible": 1, "future": 1}  # fmt: skip


async def _ignore(events: list[object]) -> None:
    return None


async def _run(registry: Registry, broker: Mosquitto, influx: InfluxDB) -> dict[str, Any]:
    address = BrokerAddress.parse(broker.url)
    config = IngestConfig(address, flush_interval_s=0.05, batch_max=4)
    async with InfluxV1Sink(influx.url) as sink:
        async with IngestService(config, registry, Detector(), sink, _ignore,
                                 clock=lambda: NOW_S) as ingest:  # fmt: skip
            async with MqttLink(address, "test-publisher") as link:
                for topic, payload in MESSAGES:
                    await link.publish(topic, payload, qos=1)
            async with asyncio.timeout(20):
                while ingest.counts["messages"] < DATA_MESSAGES:
                    await asyncio.sleep(0.02)
            assert await ingest.wait_for_readings(ACCEPTED + 3, timeout_s=20)
            text = ingest.metrics.text()
        in_tsdb = await count_stored(sink)
    return {"ingest": ingest, "text": text, "in_tsdb": in_tsdb}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_exposition_matches_the_counters_after_good_and_bad_messages(
    mosquitto: Mosquitto, influxdb: InfluxDB, county: Registry
) -> None:
    got = asyncio.run(_run(county, mosquitto, influxdb))
    ingest, m = got["ingest"], samples(got["text"])
    # The counters against what was published...
    assert ingest.counts["messages"] == DATA_MESSAGES
    assert ingest.counts["readings"] == ingest.counts["stored"] == ACCEPTED
    assert dict(ingest.rejections) == REJECTED
    assert ingest.counts["duplicate"] == 2
    assert got["in_tsdb"] == {NODE: ACCEPTED}
    # ...and the exposition against the counters.
    assert m[("tianwang_ingest_messages_total", ())] == ingest.counts["messages"]
    assert m[("tianwang_ingest_readings_total", ())] == ingest.counts["readings"]
    assert m[("tianwang_ingest_stored_total", ())] == ingest.counts["stored"]
    rejected = {
        dict(labels)["reason"]: value
        for (name, labels), value in m.items()
        if name == "tianwang_ingest_rejected_total"
    }
    assert rejected == dict(ingest.rejections)
    duplicates = {
        dict(labels)["kind"]: value
        for (name, labels), value in m.items()
        if name == "tianwang_ingest_duplicates_total"
    }
    assert duplicates == {"duplicate": 2}
    # one lag per stored reading; the samples are 0-60 min old by the clock
    assert m[("tianwang_ingest_lag_seconds_count", ())] == ingest.counts["stored"]
    assert m[("tianwang_ingest_lag_seconds_bucket", (("le", "3600.0"),))] == ACCEPTED
    assert m[("tianwang_ingest_sink_errors_total", ())] == 0
    assert m[("tianwang_ingest_pending", ())] == 0
    assert m[("tianwang_ingest_flush_seconds_count", ())] >= 1

"""What IngestService writes about its nodes and itself, through a real broker into a real
InfluxDB: ``node_state`` (grid-file position, offline, silence, retained status),
``node_health`` (the nodes' health reports) and ``ingest`` / ``ingest_rejected`` (its own
counters), at start, every report interval and at exit."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from detect import Detector
from ingest import (
    INGEST_MEASUREMENT,
    INGEST_REJECTED_MEASUREMENT,
    NODE_HEALTH_MEASUREMENT,
    NODE_STATE_MEASUREMENT,
    InfluxV1Sink,
    IngestConfig,
    IngestService,
)
from tests.ingest.helpers import influxql
from tests.ingest.test_service_liveness import GONE, KEEP, NAN, three_nodes, wait_until
from tianwang.codec import Reading, Status, encode_data, encode_status, format_ts
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.services import InfluxDB, Mosquitto

T0_S = 1795766400.0
OUTBOX = 17


def health(node: str, ts_ms: int, outbox_depth: int) -> bytes:
    """A health-v1 report, as edge/_health.py publishes it."""
    return orjson.dumps({
        "v": 1, "node": node, "ts": format_ts(ts_ms), "uptime_s": 12.5,
        "outbox_depth": outbox_depth, "dropped": 2, "readings_published": 40, "reconnects": 1,
        "driver_errors": 0, "clock_offset_s": None, "clock_synced": None, "cpu_temp_c": 48.5,
        "sampling_s": 1, "cfg_id": None,
    })  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = T0_S

    def __call__(self) -> float:
        return self.now


async def _run(broker: Mosquitto, influx: InfluxDB) -> dict[str, Any]:
    registry = three_nodes()
    clock = Clock()
    address = BrokerAddress.parse(broker.url)
    config = IngestConfig(address, client_id="ingest-test", flush_interval_s=0.05,
                          offline_after_periods=1, offline_min_s=5.0, deadman_interval_s=0.05,
                          report_interval_s=0.1, max_future_s=None, max_age_s=None)  # fmt: skip
    topic = {n: registry.nodes[n].place.topic for n in (KEEP, GONE, NAN)}
    ts_ms = round(T0_S * 1000)

    async def nothing(events: list[object]) -> None:
        return None

    async with InfluxV1Sink(influx.url) as sink:
        service = IngestService(config, registry, Detector(), sink, nothing, clock=clock)
        async with service as ingest, MqttLink(address, "test-nodes") as link:
            for seq, node in enumerate((KEEP, NAN)):
                payload = encode_data(node, [Reading(node, seq, ts_ms, "PM2.5", 30.0,
                                                     "ug/m3", "N")])  # fmt: skip
                await link.publish(topic[node]("data"), payload, qos=1)
            await link.publish(topic[KEEP]("health"), health(KEEP, ts_ms, OUTBOX), qos=0)
            await link.publish(topic[KEEP]("data"), b"{not json", qos=1)
            offline = encode_status(Status(GONE, "offline", None))
            await link.publish(topic[GONE]("status"), offline, qos=1)
            await wait_until(lambda: ingest.counts["health"] == 1
                             and ingest.counts["status"] == 1
                             and ingest.counts["messages"] == 3)  # fmt: skip
            assert await ingest.wait_for_readings(2, timeout_s=20)
            clock.now = T0_S + 10.0  # GONE was never heard: silent 10 s > 5 s
            await wait_until(lambda: GONE in ingest.deadman.offline)
            # KEEP and NAN reported at T0; now they are silent too, 10 s > 5 s.
        counts = dict(ingest.counts)
    return {"counts": counts, "registry": registry}


def last_per_node(url: str, measurement: str, fields: str) -> dict[str, dict[str, Any]]:
    out = {}
    query = f'SELECT {fields} FROM "{measurement}" GROUP BY "node"'
    for series in influxql(url, query):
        out[series["tags"]["node"]] = dict(zip(series["columns"], series["values"][0],
                                               strict=True))  # fmt: skip
    return out


def test_node_state_health_and_ingest_counters_reach_influxdb(
    mosquitto: Mosquitto, influxdb: InfluxDB
) -> None:
    got = asyncio.run(_run(mosquitto, influxdb))
    registry = got["registry"]
    url = influxdb.url
    state = last_per_node(
        url,
        NODE_STATE_MEASUREMENT,
        'last("lat") AS "lat", last("lon") AS '
        '"lon", last("offline") AS "offline", last("silent_s") AS "silent_s"',
    )
    assert set(state) == {KEEP, GONE, NAN}
    for node_id, row in state.items():
        node = registry.nodes[node_id]
        assert (row["lat"], row["lon"]) == (node.lat, node.lon)
        assert row["offline"] == 1 and row["silent_s"] == 10.0  # the report at exit
    # At start nobody was offline yet: the first report says so.
    first = influxql(url, f'SELECT first("offline") FROM "{NODE_STATE_MEASUREMENT}" '
                          'GROUP BY "node"')  # fmt: skip
    assert {s["tags"]["node"]: s["values"][0][1] for s in first} == dict.fromkeys(state, 0)
    said = influxql(url, f'SELECT last("said") FROM "{NODE_STATE_MEASUREMENT}" GROUP BY "node"')
    assert {s["tags"]["node"]: s["values"][0][1] for s in said} == {GONE: "offline"}

    (report,) = influxql(url, f'SELECT * FROM "{NODE_HEALTH_MEASUREMENT}"')
    row = dict(zip(report["columns"], report["values"][0], strict=True))
    assert row["time"] == round(T0_S * 1000) and row["node"] == KEEP
    assert (row["outbox_depth"], row["dropped"], row["cpu_temp_c"]) == (OUTBOX, 2, 48.5)
    assert "clock_offset_s" not in row  # the node could not read it: no field

    (worker,) = influxql(url, f'SELECT last("readings") AS "readings", last("stored") AS '
                              f'"stored", last("rejected") AS "rejected", last("health") AS '
                              f'"health", last("nodes_offline") AS "offline" FROM '
                              f'"{INGEST_MEASUREMENT}" GROUP BY "worker"')  # fmt: skip
    assert worker["tags"] == {"worker": "ingest-test"}
    _, readings, stored, rejected, healths, offline = worker["values"][0]
    assert (readings, stored, rejected, healths, offline) == (2, 2, 1, 1, 3)
    assert got["counts"]["readings"] == readings
    reasons = influxql(url, f'SELECT last("count") FROM "{INGEST_REJECTED_MEASUREMENT}" '
                            'GROUP BY "reason"')  # fmt: skip
    assert {s["tags"]["reason"]: s["values"][0][1] for s in reasons} == {"not_json": 1}
    lags = influxql(url, f'SELECT count("lag_mean_s") FROM "{INGEST_MEASUREMENT}"')
    assert lags and lags[0]["values"][0][1] >= 1  # a report after the readings' flush

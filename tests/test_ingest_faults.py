"""Ingest keeps every reading through a TSDB outage and a broker restart (real services)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

import ingest._service as service
from detect import Detector
from ingest import InfluxV1Sink, IngestConfig, IngestService, stored_readings
from tianwang.codec import Reading, encode_data
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.registry import Registry
from tianwang.services import InfluxDB, Mosquitto

NODE = "yy-0005"
TOPIC = "tw/v1/yiyuan/nanma/xili/yy-0005/data"
T0_MS = 1795766400000


async def publish(broker: Mosquitto, seqs: range) -> None:
    async with MqttLink(BrokerAddress.parse(broker.url), "test-publisher") as link:
        for seq in seqs:
            reading = Reading(NODE, seq, T0_MS + seq * 60_000, "SO2", 10.0 + seq, "ug/m3", "N")
            await link.publish(TOPIC, encode_data(NODE, [reading]), qos=1)


async def wait_until(condition: object, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def stored_seqs(sink: InfluxV1Sink) -> list[int]:
    return sorted(r.seq for r in await stored_readings(sink, NODE))


def ingest_config(broker: Mosquitto) -> IngestConfig:
    # fixed sample times: no time window, so the test does not age
    return IngestConfig(BrokerAddress.parse(broker.url), batch_max=5, flush_interval_s=0.05,
                        max_future_s=None, max_age_s=None)  # fmt: skip


async def _tsdb_outage(registry: Registry, broker: Mosquitto, influx: InfluxDB) -> list[int]:
    async with InfluxV1Sink(influx.url) as sink:
        config = ingest_config(broker)
        async with IngestService(config, registry, Detector(), sink, _ignore) as ingest:
            await publish(broker, range(0, 10))
            await wait_until(lambda: ingest.counts["stored"] == 10)
            await asyncio.to_thread(influx.stop)
            await publish(broker, range(10, 30))
            # Intake pauses once a full batch cannot be written: no more than that is taken.
            await wait_until(lambda: ingest.counts["readings"] >= 15)
            assert ingest.counts["stored"] == 10
            await asyncio.to_thread(influx.start)
            await wait_until(lambda: ingest.counts["stored"] == 30)
        return await stored_seqs(sink)


async def _ignore(events: list[object]) -> None:
    return None


async def _backpressure(registry: Registry, broker: Mosquitto, influx: InfluxDB) -> list[int]:
    async with InfluxV1Sink(influx.url) as sink:
        config = replace(ingest_config(broker), receive_maximum=10)
        async with IngestService(config, registry, Detector(), sink, _ignore) as ingest:
            await publish(broker, range(0, 5))
            await wait_until(lambda: ingest.counts["stored"] == 5)
            await asyncio.to_thread(influx.stop)
            await publish(broker, range(5, 205))  # the broker takes them all
            await asyncio.sleep(2.0)
            # The unwritable batch holds its messages' acknowledgements: the broker sends no
            # more than the receive maximum, and keeps the rest.
            assert ingest.counts["messages"] <= 5 + 10
            assert len(ingest._pending or []) <= 10
            await asyncio.to_thread(influx.start)
            await wait_until(lambda: ingest.counts["stored"] == 205, timeout_s=60)
        return await stored_seqs(sink)


def test_a_stalled_tsdb_slows_intake_to_the_receive_maximum_and_loses_nothing(
    mosquitto: Mosquitto, influxdb: InfluxDB, county: Registry
) -> None:
    assert asyncio.run(_backpressure(county, mosquitto, influxdb)) == list(range(205))


def test_tsdb_outage_loses_and_doubles_nothing(
    mosquitto: Mosquitto, influxdb: InfluxDB, county: Registry
) -> None:
    assert asyncio.run(_tsdb_outage(county, mosquitto, influxdb)) == list(range(30))


async def _broker_restart(registry: Registry, broker: Mosquitto, influx: InfluxDB) -> list[int]:
    async with InfluxV1Sink(influx.url) as sink:
        config = ingest_config(broker)
        async with IngestService(config, registry, Detector(), sink, _ignore) as ingest:
            await publish(broker, range(0, 10))
            await wait_until(lambda: ingest.counts["stored"] == 10)
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)
            # Published before ingest is back: the broker holds them in ingest's session.
            await publish(broker, range(10, 20))
            await wait_until(lambda: ingest.counts["stored"] == 20)
        return await stored_seqs(sink)


def test_broker_restart_keeps_the_session_and_loses_nothing(
    mosquitto: Mosquitto, influxdb: InfluxDB, county: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ingest comes back only after the publisher is done, so the readings published in
    # between can reach it only through its persistent session on the restarted broker.
    monkeypatch.setattr(service, "RETRY_MIN_S", 3.0)
    monkeypatch.setattr(service, "RETRY_MAX_S", 3.0)
    assert asyncio.run(_broker_restart(county, mosquitto, influxdb)) == list(range(20))

"""The edge agent on a real broker: numbering, status with last will, broker outages."""

from __future__ import annotations

import asyncio

import edge._agent as agent_module
from detect import Detector
from edge import AgentConfig, EdgeAgent, Settings
from ingest import InfluxV1Sink, IngestConfig, IngestService, stored_readings
from tests.helpers import ConstantDriver
from tianwang.clock import AcceleratedClock
from tianwang.codec import Status, decode_status
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.registry import Registry
from tianwang.services import InfluxDB, Mosquitto

T0 = 1795766400.0  # a whole hour, epoch seconds


def make_agent(county: Registry, broker: Mosquitto, speed: float) -> EdgeAgent:
    node = county.nodes["yy-0001"]
    config = AgentConfig(node.place, BrokerAddress.parse(broker.url), Settings(sampling_s=60.0))
    return EdgeAgent(config, [ConstantDriver()], AcceleratedClock(T0, speed), track_seqs=True)


async def retained_status(broker: Mosquitto, topic: str) -> Status:
    async with MqttLink(BrokerAddress.parse(broker.url), "test-status") as link:
        await link.subscribe(topic)
        async with asyncio.timeout(10):
            async for _, payload in link.messages():
                return decode_status(payload)
    raise AssertionError("no status")


def test_agent_numbers_readings_and_leaves_an_offline_status(
    mosquitto: Mosquitto, county: Registry
) -> None:
    agent = make_agent(county, mosquitto, speed=1e6)
    stats = asyncio.run(agent.run(T0, T0 + 30 * 60))
    assert stats.samples == 30
    assert stats.published_seqs == list(range(60))  # two readings per sample, no gap
    status = asyncio.run(retained_status(mosquitto, agent.config.place.topic("status")))
    assert (status.node, status.state) == ("yy-0001", "offline")
    assert status.ts_ms is not None and status.ts_ms >= T0 * 1000


def test_last_will_is_a_valid_status() -> None:
    payload = agent_module._status("yy-0001", "offline", None)
    assert decode_status(payload) == Status("yy-0001", "offline", None)


async def _outage(county: Registry, broker: Mosquitto, influx: InfluxDB) -> tuple[int, list[int]]:
    agent = make_agent(county, broker, speed=1800.0)  # one simulated hour in two seconds
    async with InfluxV1Sink(influx.url) as sink:
        config = IngestConfig(BrokerAddress.parse(broker.url), flush_interval_s=0.05)
        async with IngestService(config, county, Detector(), sink, _ignore) as ingest:
            run = asyncio.create_task(agent.run(T0, T0 + 3600))
            async with asyncio.timeout(20):
                while agent.stats.readings_published < 20:
                    await asyncio.sleep(0.01)
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(0.5)  # the outage: samples keep going into the outbox
            await asyncio.to_thread(broker.start)
            stats = await run
            assert await ingest.wait_for_readings(len(stats.published_seqs), timeout_s=30)
        seqs = sorted(r.seq for r in await stored_readings(sink, "yy-0001"))
    return stats.reconnects, seqs


async def _ignore(events: list[object]) -> None:
    return None


def test_broker_outage_loses_no_reading(
    mosquitto: Mosquitto, influxdb: InfluxDB, county: Registry
) -> None:
    reconnects, seqs = asyncio.run(_outage(county, mosquitto, influxdb))
    assert reconnects >= 1
    assert seqs == list(range(120))  # 60 samples x 2 readings, each stored once

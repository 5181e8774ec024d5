"""The agent on a real broker: sampling into the outbox while the broker is down, the backlog
leaving in bounded, rate-limited batches when it is back; failing drivers and bad units."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any, Self

from edge import AgentConfig, AgentStats, BacklogConfig, Driver, EdgeAgent, SensorValue, Settings
from tests.helpers import TIMEOUT_S, ConstantDriver, Recorder, recording
from tianwang.aio import cancel_and_wait
from tianwang.clock import AcceleratedClock
from tianwang.codec import Reading
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.registry import Registry
from tianwang.services import Mosquitto

T0 = 1795766400.0  # a whole hour, epoch seconds
log = logging.getLogger(__name__)


class FailingDriver:
    """A sensor bus that raises instead of answering."""

    async def read(self, sample_time: float) -> list[SensorValue]:
        raise OSError("no answer on /dev/ttyUSB1")


class WrongUnitDriver:
    """SO2 in a water unit: cannot be converted to ug/m3."""

    async def read(self, sample_time: float) -> list[SensorValue]:
        return [SensorValue("SO2", 12.0, "mg/L", "N")]


class UnknownQuantityDriver:
    async def read(self, sample_time: float) -> list[SensorValue]:
        return [SensorValue("radon", 30.0, "Bq/m3", "N")]


def make_agent(
    county: Registry,
    broker: Mosquitto,
    drivers: Sequence[Driver],
    *,
    speed: float,
    link_factory: type[MqttLink] = MqttLink,
    **overrides: Any,
) -> EdgeAgent:
    place = county.nodes["yy-0001"].place
    config = AgentConfig(
        place, BrokerAddress.parse(broker.url), Settings(sampling_s=60.0), **overrides
    )
    clock = AcceleratedClock(T0, speed)
    return EdgeAgent(config, drivers, clock, track_seqs=True, link_factory=link_factory)


# --- backlog after an outage -----------------------------------------------------------------

SAMPLES = 50  # x 2 readings
BATCH = 7
RATE = 20.0  # messages per second


class Gate:
    """Holds the agent's connection attempts while the test's subscriber gets ready, so the
    subscriber sees the first message of the backlog (connects are not refused meanwhile,
    they wait)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    def link_class(self) -> type[MqttLink]:
        gate = self.open

        class GatedLink(MqttLink):
            async def __aenter__(self) -> Self:
                await gate.wait()
                return await super().__aenter__()

        return GatedLink


async def _backlog(county: Registry, broker: Mosquitto) -> tuple[EdgeAgent, AgentStats, Recorder]:
    gate = Gate()
    await asyncio.to_thread(broker.stop)
    agent = make_agent(
        county,
        broker,
        [ConstantDriver()],
        speed=6000.0,  # a sample every 10 ms
        link_factory=gate.link_class(),
        backlog=BacklogConfig(batch_readings=BATCH, max_messages_per_s=RATE),
    )
    run = asyncio.create_task(agent.run(T0, T0 + SAMPLES * 60))
    depths = []
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while agent.stats.samples < SAMPLES:
                depths.append(len(agent.outbox))
                await asyncio.sleep(0.005)
        # offline: everything sampled is in the outbox, nothing went, nothing was dropped
        assert len(agent.outbox) == 2 * SAMPLES
        assert agent.outbox.dropped == 0
        assert agent.stats.readings_published == 0
        assert agent.stats.reconnects >= 1  # it did try, and was refused
        assert depths == sorted(depths) and len(set(depths)) > 5  # grew while sampling
        assert not run.done()

        gate.open.clear()
        await asyncio.to_thread(broker.start)
        async with recording(broker, agent.config.place.topic("data")) as rec:
            gate.open.set()
            async with asyncio.timeout(TIMEOUT_S):
                stats = await asyncio.shield(run)
            await rec.wait_until(lambda: len(rec.readings()) >= 2 * SAMPLES, "the backlog")
    finally:
        await cancel_and_wait(run)
    return agent, stats, rec


def test_backlog_leaves_in_bounded_rate_limited_batches_after_an_outage(
    mosquitto: Mosquitto, county: Registry
) -> None:
    agent, stats, rec = asyncio.run(_backlog(county, mosquitto))
    total = 2 * SAMPLES
    sizes = [len(batch) for batch in rec.batches()]
    full, rest = divmod(total, BATCH)
    assert sizes == [BATCH] * full + ([rest] if rest else [])  # never above the batch size
    seqs = [r.seq for r in rec.readings()]
    assert seqs == list(range(total))  # each exactly once, in order
    assert stats.published_seqs == list(range(total))
    assert stats.readings_published == total and stats.messages_published == len(sizes)
    assert len(agent.outbox) == 0 and agent.outbox.dropped == 0
    # n messages take at least (n - 1) / RATE. Timed from the second arrival: the first
    # publish on a fresh connection reaches the broker ~40 ms late (it follows the status
    # publish closely; TCP holds it), which would shorten the span seen here.
    arrivals = [t for t, _, _ in rec.messages][1:]
    n = len(arrivals)
    assert n >= 10
    span = arrivals[-1] - arrivals[0]
    assert span >= (n - 1) / RATE * 0.95, (span, (n - 1) / RATE)
    # the backlog kept its sample times: one sample per simulated minute
    stamps = sorted({r.ts_ms for r in rec.readings()})
    assert stamps == [T0 * 1000 + 60_000 * i for i in range(SAMPLES)]


# --- failing drivers and bad units -----------------------------------------------------------


async def _run_all(
    county: Registry, broker: Mosquitto, drivers: Sequence[Driver], samples: int
) -> tuple[AgentStats, list[Reading]]:
    agent = make_agent(county, broker, drivers, speed=1e5)
    async with recording(broker, agent.config.place.topic("data")) as rec:
        run = asyncio.create_task(agent.run(T0, T0 + samples * 60))
        try:
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    stats = await asyncio.shield(run)
            except Exception as exc:  # short report; the agent's own traceback is in the log
                log.exception("agent run")
                raise AssertionError(f"the agent stopped: {exc!r}") from None
            await rec.wait_until(
                lambda: len(rec.readings()) >= stats.readings_published, "every reading"
            )
        finally:
            await cancel_and_wait(run)
    return stats, rec.readings()


def by_quantity(readings: list[Reading]) -> dict[str, list[Reading]]:
    found: dict[str, list[Reading]] = {}
    for r in readings:
        found.setdefault(r.quantity, []).append(r)
    return found


def test_a_failing_driver_is_counted_and_the_others_still_arrive(
    mosquitto: Mosquitto, county: Registry
) -> None:
    drivers = [FailingDriver(), ConstantDriver(), WrongUnitDriver()]
    stats, readings = asyncio.run(_run_all(county, mosquitto, drivers, samples=5))
    assert stats.samples == 5
    assert stats.driver_errors == 5
    assert stats.unit_errors == 5
    assert [r.seq for r in readings] == list(range(15))
    found = by_quantity(readings)
    assert sorted(found) == ["CO", "NO2", "SO2"]
    assert [r.value for r in found["NO2"]] == [40.0] * 5
    assert [r.value for r in found["CO"]] == [0.5] * 5
    assert {r.flag for r in found["NO2"] + found["CO"]} == {"N"}
    for r in found["SO2"]:  # unconvertible: no value, fault flag, canonical unit
        assert math.isnan(r.value)
        assert (r.flag, r.unit) == ("D", "ug/m3")
    assert [r.ts_ms for r in found["SO2"]] == [T0 * 1000 + 60_000 * i for i in range(5)]


def test_a_driver_reporting_an_unknown_quantity_does_not_stop_the_agent(
    mosquitto: Mosquitto, county: Registry
) -> None:
    """A driver is outside the agent's control; its bad value must cost that value only."""
    drivers = [UnknownQuantityDriver(), ConstantDriver()]
    stats, readings = asyncio.run(_run_all(county, mosquitto, drivers, samples=5))
    assert stats.samples == 5
    assert stats.unit_errors + stats.driver_errors >= 5
    found = by_quantity(readings)
    assert [r.value for r in found["NO2"]] == [40.0] * 5
    assert [r.value for r in found["CO"]] == [0.5] * 5
    assert "radon" not in found  # ingest would refuse it anyway

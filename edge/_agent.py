"""The edge agent: sample on a clock, number, keep in the outbox, publish with QoS 1."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

from edge._driver import Driver
from edge._outbox import MemoryOutbox
from tianwang.clock import Clock
from tianwang.codec import Reading, Status, encode_data, encode_status
from tianwang.mqtt import BrokerAddress, LastWill, LinkError, MqttLink
from tianwang.topics import NodeTopic

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class AgentConfig:
    place: NodeTopic
    broker: BrokerAddress
    sampling_s: float = 60.0

    @property
    def node(self) -> str:
        return self.place.node


@dataclass(slots=True)
class AgentStats:
    samples: int = 0
    readings_published: int = 0
    messages_published: int = 0
    reconnects: int = 0
    published_seqs: list[int] = field(default_factory=list)


def _status(node: str, state: str, now: float | None) -> bytes:
    return encode_status(Status(node, state, None if now is None else round(now * 1000)))


class EdgeAgent:
    """One node. ``run(until)`` samples every ``sampling_s`` of clock time until ``until``,
    then delivers the outbox and marks the node offline."""

    def __init__(
        self, config: AgentConfig, driver: Driver, clock: Clock, outbox: MemoryOutbox | None = None
    ) -> None:
        self.config = config
        self.driver = driver
        self.clock = clock
        self.outbox = outbox or MemoryOutbox()
        self.stats = AgentStats()
        self._data_topic = config.place.topic("data")
        self._status_topic = config.place.topic("status")
        self._next_tick = 0.0
        self._backoff_s = RECONNECT_MIN_S

    async def sample(self, sample_time: float) -> None:
        """Read the driver once and store the readings, numbered, in the outbox."""
        ts_ms = round(sample_time * 1000)
        readings = [
            Reading(
                self.config.node, self.outbox.next_seq(), ts_ms, v.quantity, v.value, v.unit, v.flag
            )
            for v in await self.driver.read(sample_time)
        ]
        self.stats.samples += 1
        if readings:
            self.outbox.put(readings)

    async def _deliver(self, link: MqttLink) -> None:
        while (readings := self.outbox.peek()) is not None:
            await link.publish(self._data_topic, encode_data(self.config.node, readings), qos=1)
            self.outbox.ack()
            self.stats.messages_published += 1
            self.stats.readings_published += len(readings)
            self.stats.published_seqs.extend(r.seq for r in readings)

    async def _session(self, until: float) -> None:
        will = LastWill(self._status_topic, _status(self.config.node, "offline", None))
        async with MqttLink(self.config.broker, f"tw-edge-{self.config.node}", will=will) as link:
            self._backoff_s = RECONNECT_MIN_S
            await link.publish(
                self._status_topic,
                _status(self.config.node, "online", self.clock.now()),
                retain=True,
            )
            while self._next_tick < until:
                await self.clock.sleep_until(self._next_tick)
                await self._sample_due()
                await self._deliver(link)
            await self._deliver(link)
            await link.publish(
                self._status_topic,
                _status(self.config.node, "offline", self.clock.now()),
                retain=True,
            )

    async def _sample_due(self) -> None:
        await self.sample(self._next_tick)
        self._next_tick += self.config.sampling_s

    async def run(self, start: float, until: float) -> AgentStats:
        """Sample at ``start``, ``start + sampling_s``, ... while ``< until``; reconnect with
        jittered exponential backoff when the broker is away (samples keep accumulating)."""
        self._next_tick = start
        while True:
            try:
                await self._session(until)
                return self.stats
            except LinkError as exc:
                self.stats.reconnects += 1
                delay = self._backoff_s * random.uniform(0.5, 1.0)
                log.warning("node %s: broker link lost (%s); retry in %.1f s",
                            self.config.node, exc, delay)  # fmt: skip
                await self._sample_offline(until, delay)
                self._backoff_s = min(self._backoff_s * 2, RECONNECT_MAX_S)

    async def _sample_offline(self, until: float, wait_s: float) -> None:
        """Keep sampling into the outbox for ``wait_s`` real seconds while the broker is away."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (left := deadline - loop.time()) > 0:
            if self._next_tick < until and self.clock.now() >= self._next_tick:
                await self._sample_due()
                continue
            await asyncio.sleep(min(left, 0.05))

"""Applies a scenario's network faults around real edge agents (see ``firmware_sim._network``).

Everything here wraps the agent from outside: a link that refuses or cuts the connection,
repeats or reorders data messages; an agent whose stamped sample times run ahead; a driver
that is powered off; the broker stopped and started. The agent's own code is untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol, Self

from edge import Driver, EdgeAgent, SensorValue
from firmware_sim._network import DuplicateDelivery, NetworkFault, NodeOffline, OutOfOrder
from firmware_sim._scenario import Scenario
from tianwang.clock import Clock
from tianwang.codec import Reading
from tianwang.mqtt import LinkError, MqttLink

log = logging.getLogger(__name__)


class BrokerControl(Protocol):
    """What the fleet needs to restart the broker (``tianwang.services.Mosquitto`` has it)."""

    def stop(self) -> None: ...

    def start(self) -> object: ...


class NodeNetwork:
    """The network faults of one node, asked by clock time."""

    def __init__(self, scenario: Scenario, node: str, start: float, clock: Clock) -> None:
        self.node = node
        self.start = start
        self.clock = clock
        self.faults: tuple[NetworkFault, ...] = scenario.network_faults_for(node)
        self.offline = [f.window_s(start) for f in self.faults if isinstance(f, NodeOffline)]
        self.power_off = [f.window_s(start) for f in self.faults
                          if isinstance(f, NodeOffline) and f.power_off]  # fmt: skip
        self.data_messages = 0
        # Messages a reordering network holds; they outlive a connection, never get lost.
        self.held: list[tuple[str, bytes]] = []

    def _active(self, kind: type[Any]) -> Any:
        elapsed = self.clock.now() - self.start
        return next((f for f in self.faults if isinstance(f, kind) and f.active(elapsed)), None)

    def is_offline(self) -> bool:
        now = self.clock.now()
        return any(begin <= now < end for begin, end in self.offline)

    def is_powered_off(self, moment: float) -> bool:
        return any(begin <= moment < end for begin, end in self.power_off)

    def next_cut(self) -> float | None:
        now = self.clock.now()
        return min((begin for begin, _ in self.offline if begin > now), default=None)

    def duplicate(self) -> bool:
        fault: DuplicateDelivery | None = self._active(DuplicateDelivery)
        return fault is not None and self.data_messages % fault.every == 0

    def reorder_group(self) -> int:
        fault: OutOfOrder | None = self._active(OutOfOrder)
        return fault.window if fault is not None else 0


class FaultyLink(MqttLink):
    """An MqttLink as a faulty network delivers it."""

    def __init__(self, network: NodeNetwork, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.network = network
        self._cutter: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        if self.network.is_offline():
            raise LinkError(f"simulated: node {self.network.node} has no route to the broker")
        await super().__aenter__()
        self._cutter = asyncio.create_task(self._cut_when_offline())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._cutter is not None:
            self._cutter.cancel()
        with contextlib.suppress(LinkError):
            await self._release()
        await super().__aexit__(*exc_info)

    async def _cut_when_offline(self) -> None:
        moment = self.network.next_cut()
        if moment is not None:
            await self.network.clock.sleep_until(moment)
            self.sever()

    async def _release(self) -> None:
        """Publish what the network holds, newest first; what fails stays held."""
        while self.network.held:
            topic, payload = self.network.held[-1]
            await super().publish(topic, payload)
            self.network.held.pop()

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1,
                      retain: bool = False) -> None:  # fmt: skip
        if not topic.endswith("/data"):
            await super().publish(topic, payload, qos=qos, retain=retain)
            return
        self.network.data_messages += 1
        group = self.network.reorder_group()
        if group > 1:
            self.network.held.append((topic, payload))
            if len(self.network.held) >= group:
                await self._release()  # newest first
            return
        await self._release()
        await super().publish(topic, payload, qos=qos, retain=retain)
        if self.network.duplicate():
            await super().publish(topic, payload, qos=qos, retain=retain)


class PoweredDriver:
    """A driver that gives nothing while the node is powered off."""

    def __init__(self, inner: Driver, network: NodeNetwork) -> None:
        self.inner = inner
        self.network = network

    async def read(self, sample_time: float) -> list[SensorValue]:
        if self.network.is_powered_off(sample_time):
            return []
        return await self.inner.read(sample_time)


class SkewedAgent(EdgeAgent):
    """An agent whose clock runs ahead (or behind) during clock-skew windows: the physics
    happen at the true time, the stamp carries the skew."""

    def __init__(self, *args: Any, scenario: Scenario, start: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._offset: Callable[[float], float] = lambda moment: scenario.clock_offset_s(
            self.config.node, moment - start
        )

    def store(self, sample_time: float, values: list[SensorValue]) -> list[Reading]:
        return super().store(sample_time + self._offset(sample_time), values)


async def restart_broker(broker: BrokerControl, clock: Clock,
                         downtimes: list[tuple[float, float]]) -> None:  # fmt: skip
    """Stop the broker at each downtime's start and start it again at its end."""
    for begin, end in downtimes:
        await clock.sleep_until(begin)
        log.warning("simulated broker restart: stopping the broker")
        await asyncio.to_thread(broker.stop)
        await clock.sleep_until(end)
        await asyncio.to_thread(broker.start)
        log.warning("simulated broker restart: broker back")

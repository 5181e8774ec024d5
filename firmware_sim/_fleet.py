"""The fleet runner: one real edge agent per registered node, simulated drivers, one clock.

All agents run in one process on one event loop, each with its own MQTT connection, outbox
(in memory: a simulated node has nothing to survive) and driver. With ``stagger`` each node
samples at its own phase within the sampling period, as unsynchronised real nodes do, so a
large fleet does not hit the broker all in the same millisecond.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from edge import AgentConfig, EdgeAgent, Outbox, Settings
from firmware_sim._scenario import Scenario
from firmware_sim._signals import SimulatedDriver
from tianwang.clock import AcceleratedClock, Clock
from tianwang.mqtt import BrokerAddress
from tianwang.registry import Node, Registry


@dataclass(frozen=True, slots=True)
class FleetRun:
    start: float  # simulated epoch seconds of the first sample
    end: float  # simulated epoch seconds; no sample at or after it
    readings_published: dict[str, int]  # node -> readings acknowledged by the broker
    wall_s: float


class Fleet:
    """Agents for ``nodes`` of a registry, driven through a scenario on one clock."""

    def __init__(self, registry: Registry, scenario: Scenario, broker: BrokerAddress, *,
                 clock: Clock, start: float, end: float, nodes: Sequence[str] | None = None,
                 stagger: bool = False, health_s: float = 600.0) -> None:  # fmt: skip
        self.start = start
        self.end = end
        self.clock = clock
        self.stagger = stagger
        chosen = [registry.nodes[n] for n in (nodes or sorted(registry.nodes))]
        self.agents = [self._agent(n, scenario, broker, health_s) for n in chosen]

    def _agent(self, node: Node, scenario: Scenario, broker: BrokerAddress,
               health_s: float) -> EdgeAgent:  # fmt: skip
        config = AgentConfig(node.place, broker, Settings(sampling_s=node.sampling_s),
                             health_s=health_s)  # fmt: skip
        driver = SimulatedDriver(node, scenario, self.start)
        return EdgeAgent(config, [driver], self.clock, outbox=Outbox(":memory:", node.id))

    def _first_sample(self, agent: EdgeAgent) -> float:
        if not self.stagger:
            return self.start
        period = agent.settings.sampling_s
        return self.start + (zlib.crc32(agent.config.node.encode()) % 1000) / 1000 * period

    def readings_published(self) -> int:
        return sum(a.stats.readings_published for a in self.agents)

    async def run(self) -> FleetRun:
        began = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for agent in self.agents:
                group.create_task(agent.run(self._first_sample(agent), self.end))
        return FleetRun(
            start=self.start,
            end=self.end,
            readings_published={a.config.node: a.stats.readings_published for a in self.agents},
            wall_s=time.monotonic() - began,
        )


async def run_fleet(registry: Registry, scenario: Scenario, broker: BrokerAddress, *,
                    speed: float, now: float | None = None,
                    nodes: list[str] | None = None) -> FleetRun:  # fmt: skip
    """Run every node (or ``nodes``) through ``scenario`` at ``speed`` times real time."""
    start = scenario.start_time(time.time() if now is None else now)
    end = start + scenario.duration_h * 3600
    fleet = Fleet(registry, scenario, broker, clock=AcceleratedClock(start, speed), start=start,
                  end=end, nodes=nodes)  # fmt: skip
    return await fleet.run()

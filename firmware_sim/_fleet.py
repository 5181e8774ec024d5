"""The fleet runner: one real edge agent per registered node, simulated drivers, one clock.

All agents run in one process on one event loop, each with its own MQTT connection, outbox
(in memory: a simulated node has nothing to survive) and driver. With ``stagger`` each node
samples at its own phase within the sampling period, as unsynchronised real nodes do, so a
large fleet does not hit the broker all in the same millisecond.
"""

from __future__ import annotations

import asyncio
import functools
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from edge import AgentConfig, Driver, EdgeAgent, Outbox, Settings
from firmware_sim._netsim import (
    BrokerControl,
    FaultyLink,
    NodeNetwork,
    PoweredDriver,
    SkewedAgent,
    restart_broker,
)
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
                 stagger: bool = False, health_s: float = 600.0,
                 broker_control: BrokerControl | None = None) -> None:  # fmt: skip
        self.start = start
        self.end = end
        self.clock = clock
        self.stagger = stagger
        self.scenario = scenario
        self.broker_control = broker_control
        if scenario.broker_downtimes() and broker_control is None:
            raise ValueError("the scenario restarts the broker: pass broker_control")
        chosen = [registry.nodes[n] for n in (nodes or sorted(registry.nodes))]
        self.agents = [self._agent(n, scenario, broker, health_s) for n in chosen]

    def _agent(self, node: Node, scenario: Scenario, broker: BrokerAddress,
               health_s: float) -> EdgeAgent:  # fmt: skip
        """A real agent; where the scenario has network faults for the node, wrapped in them."""
        config = AgentConfig(node.place, broker, Settings(sampling_s=node.sampling_s),
                             health_s=health_s)  # fmt: skip
        driver: Driver = SimulatedDriver(node, scenario, self.start)
        outbox = Outbox(":memory:", node.id)
        if not scenario.network_faults_for(node.id):
            return EdgeAgent(config, [driver], self.clock, outbox=outbox)
        network = NodeNetwork(scenario, node.id, self.start, self.clock)
        return SkewedAgent(config, [PoweredDriver(driver, network)], self.clock, outbox=outbox,
                           link_factory=functools.partial(FaultyLink, network),
                           scenario=scenario, start=self.start)  # fmt: skip

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
            if self.broker_control is not None:
                downtimes = self.scenario.broker_downtimes(self.start)
                group.create_task(restart_broker(self.broker_control, self.clock, downtimes))
            for agent in self.agents:
                group.create_task(agent.run(self._first_sample(agent), self.end))
        return FleetRun(
            start=self.start,
            end=self.end,
            readings_published={a.config.node: a.stats.readings_published for a in self.agents},
            wall_s=time.monotonic() - began,
        )


async def run_fleet(registry: Registry, scenario: Scenario, broker: BrokerAddress, *,
                    speed: float, now: float | None = None, nodes: list[str] | None = None,
                    broker_control: BrokerControl | None = None) -> FleetRun:  # fmt: skip
    """Run every node (or ``nodes``) through ``scenario`` at ``speed`` times real time."""
    start = scenario.start_time(time.time() if now is None else now)
    end = start + scenario.duration_h * 3600
    fleet = Fleet(registry, scenario, broker, clock=AcceleratedClock(start, speed), start=start,
                  end=end, nodes=nodes, broker_control=broker_control)  # fmt: skip
    return await fleet.run()

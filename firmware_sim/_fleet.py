"""The fleet runner: one real edge agent per registered node, simulated drivers, one clock."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from edge import AgentConfig, EdgeAgent, Outbox, Settings
from firmware_sim._scenario import Scenario
from firmware_sim._signals import SimulatedDriver
from tianwang.clock import AcceleratedClock
from tianwang.mqtt import BrokerAddress
from tianwang.registry import Registry


@dataclass(frozen=True, slots=True)
class FleetRun:
    start: float  # simulated epoch seconds of the first sample
    end: float  # simulated epoch seconds; no sample at or after it
    readings_published: dict[str, int]  # node -> readings acknowledged by the broker
    wall_s: float


async def run_fleet(
    registry: Registry,
    scenario: Scenario,
    broker: BrokerAddress,
    *,
    speed: float,
    now: float | None = None,
    nodes: list[str] | None = None,
) -> FleetRun:
    """Run every node (or ``nodes``) through ``scenario`` at ``speed`` times real time."""
    start = scenario.start_time(time.time() if now is None else now)
    end = start + scenario.duration_h * 3600
    clock = AcceleratedClock(start, speed)
    chosen = [registry.nodes[n] for n in (nodes or sorted(registry.nodes))]
    agents = [
        EdgeAgent(AgentConfig(n.place, broker, Settings(sampling_s=n.sampling_s)),
                  [SimulatedDriver(n, scenario, start)], clock,
                  outbox=Outbox(":memory:", n.id))
        for n in chosen
    ]  # fmt: skip
    began = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for agent in agents:
            group.create_task(agent.run(start, end))
    return FleetRun(
        start=start,
        end=end,
        readings_published={a.config.node: a.stats.readings_published for a in agents},
        wall_s=time.monotonic() - began,
    )

"""``tianwang edge run``: one node's agent from its configuration file, with real drivers.

A composition root: it builds the drivers the configuration names (simulated from
firmware_sim, Modbus and the HJ 212 bridge from edge) and runs the agent until SIGTERM or
SIGINT, then lets it deliver what it can and exits; the outbox keeps the rest.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from edge import (
    AgentConfig,
    AgentConfigError,
    Driver,
    EdgeAgent,
    Hj212Bridge,
    PushSource,
    SensorConfig,
    SensorValue,
    load_agent_config,
)
from firmware_sim import SimulatedDriver, load_scenario
from tianwang.aio import cancel_and_wait
from tianwang.clock import WallClock
from tianwang.registry import load_registry

log = logging.getLogger(__name__)
STOP_GRACE_S = 10.0


class _OnlyConfigured:
    """Keeps the values of the quantities the configuration lists for this driver."""

    def __init__(self, driver: Driver, quantities: set[str]) -> None:
        self.driver = driver
        self.quantities = quantities

    async def read(self, sample_time: float) -> list[SensorValue]:
        return [v for v in await self.driver.read(sample_time) if v.quantity in self.quantities]


def _simulated(config: AgentConfig, spec: dict[str, Any], sensors: list[SensorConfig],
               base: Path) -> Driver:  # fmt: skip
    for key in ("grid", "scenario"):
        if not spec.get(key):
            raise AgentConfigError(f"drivers.<simulated>.{key}: missing")
    registry = load_registry(base / spec["grid"])
    node = registry.nodes.get(config.node)
    if node is None:
        raise AgentConfigError(f"node {config.node!r} is not in {spec['grid']}")
    scenario = load_scenario(base / spec["scenario"], registry)
    start = float(spec.get("start", 0.0))
    return _OnlyConfigured(SimulatedDriver(node, scenario, start), {s.quantity for s in sensors})


async def build_sources(config: AgentConfig, base: Path, stack: AsyncExitStack
                        ) -> tuple[list[Driver], list[PushSource]]:  # fmt: skip
    """The drivers and pushed sources the configuration names, entered into ``stack``."""
    drivers: list[Driver] = []
    pushed: list[PushSource] = []
    for name, spec in config.drivers.items():
        sensors = [s for s in config.sensors if s.driver == name]
        kind = spec["kind"]
        if kind == "simulated":
            drivers.append(_simulated(config, spec, sensors, base))
        elif kind == "hj212":
            bridge = Hj212Bridge(str(spec.get("host", "127.0.0.1")), int(spec.get("port", 0)),
                                 allowed_mn=spec.get("allowed_mn"), password=spec.get("password"))
            pushed.append(await stack.enter_async_context(bridge))
        else:
            raise AgentConfigError(f"drivers.{name}.kind: unknown driver kind {kind!r}")
    return drivers, pushed


async def run_node(config_path: Path) -> int:
    config = load_agent_config(config_path)
    async with AsyncExitStack() as stack:
        drivers, pushed = await build_sources(config, config_path.parent, stack)
        agent = EdgeAgent(config, drivers, WallClock(), push_sources=pushed)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.stop)
        log.info("node %s: %d readings waiting in the outbox", config.node, len(agent.outbox))
        task = asyncio.create_task(agent.run())
        stopping = asyncio.create_task(agent.wait_stopped())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        # Stopping: give the sender a moment to deliver, then leave the rest in the outbox.
        await asyncio.wait({task}, timeout=STOP_GRACE_S)
        await cancel_and_wait(task, stopping)
        agent.outbox.close()
    return 0

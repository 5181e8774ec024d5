"""``tianwang edge run``: one node's agent from its configuration file, with real drivers.

A composition root: it builds the drivers the configuration names (simulated from
firmware_sim, Modbus and the HJ 212 bridge from edge) and runs the agent until SIGTERM or
SIGINT, then lets it deliver what it can and exits; the outbox keeps the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from edge import (
    AgentConfig,
    AgentConfigError,
    Driver,
    EdgeAgent,
    Hj212Bridge,
    ModbusChannel,
    ModbusConfig,
    ModbusConfigError,
    ModbusDriver,
    PushSource,
    Sample,
    SensorConfig,
    SensorValue,
    load_agent_config,
    load_codes,
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


class _ConfiguredPush:
    """A pushed source keeping only the quantities the configuration lists for it."""

    def __init__(self, source: PushSource, quantities: set[str]) -> None:
        self.source = source
        self.quantities = quantities

    async def samples(self) -> AsyncIterator[Sample]:
        async for sample in self.source.samples():
            values = [v for v in sample.values if v.quantity in self.quantities]
            if values:
                yield Sample(sample.sample_time, values)


@contextlib.asynccontextmanager
async def _hj212(name: str, spec: dict[str, Any], sensors: list[SensorConfig]
                 ) -> AsyncIterator[PushSource]:  # fmt: skip
    """The bridge, with each sensor's channel (factor code) reporting in the sensor's unit."""
    try:
        codes = load_codes().with_units({str(s.channel): s.unit for s in sensors})
    except ValueError as exc:
        raise AgentConfigError(f"drivers.{name}: {exc}") from exc
    bridge = Hj212Bridge(str(spec.get("host", "127.0.0.1")), int(spec.get("port", 0)),
                         codes=codes, allowed_mn=spec.get("allowed_mn"),
                         password=spec.get("password"))  # fmt: skip
    async with bridge:
        yield _ConfiguredPush(bridge, {s.quantity for s in sensors})


def _modbus(config: AgentConfig, name: str, spec: dict[str, Any]) -> ModbusDriver:
    try:
        modbus = ModbusConfig.from_dict(spec, f"drivers.{name}")
        channels = [
            ModbusChannel.from_dict(s.channel, f"sensors[{i}].channel", quantity=s.quantity,
                                    unit=s.unit, transport=modbus.transport)
            for i, s in enumerate(config.sensors) if s.driver == name
        ]  # fmt: skip
    except ModbusConfigError as exc:
        raise AgentConfigError(str(exc)) from exc
    return ModbusDriver(modbus, channels)


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
        elif kind == "modbus":
            drivers.append(await stack.enter_async_context(_modbus(config, name, spec)))
        elif kind == "hj212":
            pushed.append(await stack.enter_async_context(_hj212(name, spec, sensors)))
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

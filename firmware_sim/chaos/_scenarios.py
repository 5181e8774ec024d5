"""The chaos scenarios, one function each: real Mosquitto, InfluxDB, ``tianwang ingest`` and
edge agents; a fault in the middle of the stream; then the counts (``_rig``).

Every scenario but the 1,000-node one runs 20 nodes of ``examples/county.yaml`` (the 悦庄镇
township and four of 鲁村镇) through a pollution episode at two villages (8 nodes: NO2 +420 and
SO2 +1200 ug/m3 for 70 minutes, like ``examples/scenarios/demo.yaml``), so each run must
end with 16 node incidents (NO2 and SO2 hourly means over the GB 3095 1-hour limits at those
8 nodes), one per (node, quantity, rule), whatever the fault did.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from firmware_sim import Fleet, load_scenario
from firmware_sim.chaos._rig import (
    ROOT,
    ChaosResult,
    IngestProcess,
    accepted,
    compare_incidents,
    expected_incidents,
    make_fleet,
    tally,
    wait_ingest_up,
    wait_stored,
)
from ingest import InfluxV1Sink
from tianwang.registry import Registry, load_registry
from tianwang.services import InfluxDB, Mosquitto

COUNTY = ROOT / "examples" / "county.yaml"
FLEET_NODES = [f"yy-{n:04d}" for n in range(33, 53)]
PROBE_NODE = "yy-w01"  # outside every fleet: ingest's readiness probe (_rig.wait_ingest_up)
EPISODE = {
    "id": "yuezhuang-release", "villages": ["yuezhuang/yuezhuang", "yuezhuang/shijiao"],
    "start_min": 5, "duration_min": 70, "ramp_min": 5, "add": {"NO2": 420, "SO2": 1200},
}  # fmt: skip
BASE_SCENARIO: dict[str, Any] = {
    "name": "chaos",
    "start": "auto",  # ends at the last whole hour: sample times stay in ingest's window
    "duration_h": 2,  # whole hours (start auto); hour 0, the episode's, closes in hour 1
    "seed": 20260308,
    "episodes": [EPISODE],
}

# Mosquitto saves its state only at a clean stop (or every 30 min) by default: SIGKILLed, it
# comes back without ingest's session, and nodes that reconnect before ingest re-subscribes
# publish to nobody (2,052 of 14,400 readings lost in a test run). Saving every second keeps
# the session but still loses what nodes published (and were acknowledged) since the last
# save: a CI run lost readings that way. Saved on every change (a queued message is one),
# a crash of the process loses nothing (docs/operations.md, "Ingest and the rest on a server").
CRASH_SAFE_BROKER = "autosave_interval 1\nautosave_on_changes true"

Action = Callable[["Stage"], Awaitable[None]]


@dataclass(slots=True)
class Stage:
    """What a scenario's fault acts on while the fleet runs."""

    broker: Mosquitto
    influx: InfluxDB
    ingest: IngestProcess
    fleet: Fleet
    extra: dict[str, Any]

    async def until_simulated(self, fraction: float) -> None:
        """Sleep until ``fraction`` of the run's simulated time has passed."""
        moment = self.fleet.start + fraction * (self.fleet.end - self.fleet.start)
        await self.fleet.clock.sleep_until(moment)


class KillingBroker:
    """The fleet's broker control, with SIGKILL instead of a clean stop."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker

    def stop(self) -> None:
        self.broker.kill()

    def start(self) -> object:
        return self.broker.start()


def _scenario_file(folder: Path, **changes: Any) -> Path:
    raw = copy.deepcopy(BASE_SCENARIO) | changes
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


async def run_pipeline(name: str, folder: Path, *, speed: float, action: Action | None = None,
                       scenario: dict[str, Any] | None = None, grid: Path = COUNTY,
                       nodes: Sequence[str] = FLEET_NODES, kill_broker: bool = False,
                       ingest_args: Sequence[str] = (), probe: str = PROBE_NODE
                       ) -> ChaosResult:  # fmt: skip
    """Services, ingest, the fleet with ``action`` beside it; drain, stop, count."""
    began = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    registry: Registry = load_registry(grid)
    plan = load_scenario(_scenario_file(folder, **(scenario or {})), registry)
    broker_conf = CRASH_SAFE_BROKER if kill_broker else ""
    with (Mosquitto(folder / "mosquitto", broker_conf) as broker,
          InfluxDB(folder / "influxdb") as influx):  # fmt: skip
        ingest = IngestProcess(grid, broker, influx, folder / "var", ingest_args).start()
        try:
            async with InfluxV1Sink(influx.url) as sink:
                await wait_ingest_up(sink, ingest, broker, registry, probe)
                control = KillingBroker(broker) if kill_broker else broker
                fleet = make_fleet(registry, plan, broker, speed, nodes, control)
                stage = Stage(broker, influx, ingest, fleet, {})
                tasks = [fleet.run()] + ([action(stage)] if action else [])
                await asyncio.gather(*tasks)
                published = accepted(fleet)
                rows = await wait_stored(sink, sum(published.values()))
            counts = ingest.stop()
        finally:
            if ingest.proc is not None and ingest.proc.poll() is None:
                ingest.kill()
        found = ingest.store().all()
    counted = tally(published, rows)
    result = ChaosResult(
        name, sum(published.values()), counted.stored,
        int(counts["detector_readings"]) - 1,  # less the readiness probe's reading
        counted.lost, counted.duplicated,
    )  # fmt: skip
    compare_incidents(found, expected_incidents(plan, fleet, registry), result)
    result.extra.update(stage.extra)
    result.extra["unexpected_stored"] = counted.unexpected
    result.extra["ingest_starts"] = ingest.starts
    result.extra["agent_reconnects"] = sum(a.stats.reconnects for a in fleet.agents)
    for key in ("detector_replayed", "spooled_lines", "spool_replayed_lines"):
        result.extra[key] = int(counts.get(key, 0))  # this run's (the last start's) figures
    result.wall_s = round(time.monotonic() - began, 1)
    return result


# --- the scenarios --------------------------------------------------------------------------


async def broker_killed(folder: Path) -> ChaosResult:
    """Mosquitto SIGKILLed mid-stream and started again on the same port and data folder
    after ~3 s (it saves its state every second: ``CRASH_SAFE_BROKER``); every agent and
    ingest reconnect."""
    fault = {"id": "broker-kill", "kind": "broker_restart", "start_min": 40, "duration_min": 30}
    return await run_pipeline("broker_killed", folder, speed=600,
                              scenario={"network_faults": [fault]}, kill_broker=True)  # fmt: skip


async def ingest_killed(folder: Path) -> ChaosResult:
    """``tianwang ingest`` SIGKILLed mid-stream with batches unacknowledged, started again
    2 s later on the same folder (checkpoint, journal, incident store, broker session)."""

    async def kill_and_restart(stage: Stage) -> None:
        await stage.until_simulated(0.45)
        stage.ingest.kill()
        await asyncio.sleep(2.0)
        stage.ingest.start()

    return await run_pipeline("ingest_killed", folder, speed=480, action=kill_and_restart)


async def influx_stopped(folder: Path, outage_s: float = 30.0) -> ChaosResult:
    """InfluxDB stopped for ``outage_s`` of wall time (about 1 h 15 min simulated at the
    speed used) while the stream goes on: ingest spools to disk and replays."""

    async def outage(stage: Stage) -> None:
        await stage.until_simulated(0.1)
        began = time.monotonic()
        await asyncio.to_thread(stage.influx.stop)
        await asyncio.sleep(outage_s)
        await asyncio.to_thread(stage.influx.start)
        stage.extra["outage_wall_s"] = round(time.monotonic() - began, 1)
        stage.extra["outage_simulated_min"] = round(stage.extra["outage_wall_s"] * SLOW / 60)

    return await run_pipeline("influx_stopped", folder, speed=SLOW, action=outage)


SLOW = 150.0  # 90 simulated minutes in 36 s: long enough for a 30 s outage inside the run


async def node_cut_off(folder: Path) -> ChaosResult:
    """One node of the episode (yy-0033) has no route to the broker for an hour of simulated
    time, keeps sampling into its outbox and delivers the backlog when it reconnects."""
    fault = {"id": "cut", "kind": "node_offline", "nodes": ["yy-0033"], "start_min": 10,
             "duration_min": 60}  # fmt: skip
    result = await run_pipeline("node_cut_off", folder, speed=600,
                                scenario={"network_faults": [fault]})  # fmt: skip
    result.extra["offline_simulated_min"] = 60
    return result


__all__ = ["broker_killed", "influx_stopped", "ingest_killed", "node_cut_off", "run_pipeline"]

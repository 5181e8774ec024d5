"""``tianwang demo``: one simulated county end to end, on private Mosquitto and InfluxDB.

This is a composition root: it may import every subsystem; no subsystem imports it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from detect import Detector, DetectorConfig
from firmware_sim import FleetRun, load_scenario, run_fleet
from grid import IncidentRouter, IncidentStore, RoutedIncident
from ingest import HourlyAqi, InfluxV1Sink, IngestConfig, IngestService, count_stored
from tianwang.mqtt import BrokerAddress
from tianwang.registry import load_registry
from tianwang.services import InfluxDB, Mosquitto

DRAIN_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class DemoResult:
    fleet: FleetRun
    stored_by_node: dict[str, int]
    routed: list[RoutedIncident]
    ingest_counts: dict[str, int]
    rejections: dict[str, int]
    ground_truth: list[dict[str, Any]]

    @property
    def readings_published(self) -> int:
        return sum(self.fleet.readings_published.values())

    @property
    def readings_rejected(self) -> int:
        return self.ingest_counts.get("rejected_readings", 0)

    @property
    def readings_stored(self) -> int:
        return sum(self.stored_by_node.values())

    def summary(self) -> dict[str, Any]:
        return {
            "demo": "done",
            "readings_published": self.readings_published,
            "readings_stored": self.readings_stored,
            "incidents": len(self.routed),
        }


_STATISTIC = {"1h_mean": "hourly mean", "24h_mean": "daily mean", "8h_max": "max 8-h mean"}


def format_incident(r: RoutedIncident) -> str:
    i = r.incident
    where = f"incident #{i.id}: node {i.node} at {r.place} ({r.lat:.4f}, {r.lon:.4f}): "
    to = f" -> officer {r.officer.name} ({r.officer.id})"
    if i.rule == "node_offline":
        return f"{where}node silent for {i.value:.0f} s (limit {i.limit_value:g} s){to}"
    if i.limit_value is None:  # an anomaly rule: the sensor needs a visit
        return f"{where}{i.quantity} sensor {i.rule} at {i.value:.1f} {i.unit}{to}"
    beyond = "<" if i.value < i.limit_value else ">"  # floors (DO, pH) are crossed downwards
    return (
        f"{where}{i.quantity} {_STATISTIC.get(i.rule, i.rule)} {i.value:.1f} {i.unit} {beyond} "
        f"limit {i.limit_value:g} ({i.edition}){to}"
    )


async def run_pipeline(
    grid_path: Path,
    scenario_path: Path,
    var: Path,
    broker: str,
    influx_url: str,
    *,
    speed: float,
    echo: Callable[[str], None] = print,
    broker_control: Mosquitto | None = None,
    ingest_settings: Mapping[str, Any] | None = None,
) -> DemoResult:
    """Fleet -> broker -> ingest -> detector -> grid, and every reading into InfluxDB.
    ``ingest_settings`` replace IngestConfig fields (tests shrink the report interval)."""
    registry = load_registry(grid_path)
    scenario = load_scenario(scenario_path, registry)
    store = IncidentStore(f"sqlite:///{var / 'incidents.sqlite'}")
    routed: list[RoutedIncident] = []

    def notify(r: RoutedIncident) -> None:
        routed.append(r)
        echo(format_incident(r))

    router = IncidentRouter(registry, store, notify)
    address = BrokerAddress.parse(broker)
    detector = Detector(DetectorConfig(timezone=registry.timezone), registry.permits)
    async with InfluxV1Sink(influx_url) as sink:
        async with IngestService(
            # Simulated time is not the wall clock (a scenario may start on a fixed date, and
            # runs at `speed`): ingest's time window would reject it as stale or future.
            replace(
                IngestConfig(address, max_future_s=None, max_age_s=None),
                **(ingest_settings or {}),
            ),
            registry,
            detector,
            sink,
            router.handle_async,
        ) as ingest:
            fleet = await run_fleet(registry, scenario, address, speed=speed,
                                    broker_control=broker_control)  # fmt: skip
            total = sum(fleet.readings_published.values())
            if not await ingest.wait_for_readings(total, DRAIN_TIMEOUT_S):
                echo(
                    f"warning: ingest settled {ingest.counts['readings']} accepted and "
                    f"{ingest.counts['rejected_readings']} rejected of {total} readings"
                )
            await ingest.close_hours(int(fleet.end))
        await HourlyAqi(sink, sink, registry).hours(fleet.start, fleet.end)  # the aqi panels
        stored = await count_stored(sink)
    return DemoResult(
        fleet,
        stored,
        routed,
        dict(ingest.counts),
        dict(ingest.rejections),
        scenario.ground_truth(fleet.start),
    )


async def demo(grid_path: Path, scenario_path: Path, var: Path, speed: float) -> DemoResult:
    run_dir = var / "demo"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    began = time.monotonic()
    with Mosquitto(run_dir) as broker, InfluxDB(run_dir) as influx:
        print(f"mosquitto on {broker.url}, influxdb on {influx.url}, data under {run_dir}")
        result = await run_pipeline(
            grid_path,
            scenario_path,
            run_dir,
            broker.url,
            influx.url,
            speed=speed,
            broker_control=broker,
        )
    with (run_dir / "ground_truth.jsonl").open("w") as labels:
        labels.writelines(
            json.dumps(label, ensure_ascii=False) + "\n" for label in result.ground_truth
        )
    fleet = result.fleet
    print(
        f"{len(fleet.readings_published)} nodes, {(fleet.end - fleet.start) / 3600:g} simulated "
        f"hours in {fleet.wall_s:.1f} s; total {time.monotonic() - began:.1f} s; "
        f"rejected: {result.rejections or 'none'}"
    )
    return result

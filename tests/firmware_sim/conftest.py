"""Fixtures and helpers for the simulator's tests: grids, scenarios from text, a read helper."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge import SensorValue
from firmware_sim import Scenario, SimulatedDriver, load_scenario
from tests.conftest import EXAMPLES
from tianwang.registry import Registry, parse_registry

HERE = Path(__file__).resolve().parent
BEIJING = HERE.parents[1] / "examples" / "data" / "beijing"
AOTI = BEIJING / "PRSA_Data_Aotizhongxin_201303.csv"
DONGSI = BEIJING / "PRSA_Data_Dongsi_201409.csv"
AIR = ["PM2.5", "PM10", "SO2", "NO2", "CO", "O3"]
WATER = ["COD", "NH3-N", "DO", "pH"]


def county_with_extra_nodes() -> Registry:
    """examples/county.yaml plus the water and noise nodes county_day.yaml needs."""
    raw = yaml.safe_load((EXAMPLES / "county.yaml").read_text("utf-8"))
    have = {n["id"] for t in raw["townships"] for v in t["villages"] for n in v.get("nodes", [])}
    for extra in yaml.safe_load((HERE / "data" / "extra_nodes.yaml").read_text("utf-8")):
        if extra["node"]["id"] in have:
            continue
        township = next(t for t in raw["townships"] if t["id"] == extra["township"])
        village = next(v for v in township["villages"] if v["id"] == extra["village"])
        village.setdefault("nodes", []).append(extra["node"])
    return parse_registry(raw)


def line_grid() -> Registry:
    """A small grid: air nodes due east of (36.0, 118.0) at 0, 1, 2, 4 and 8 km, one due
    north at 2 km, one water node and one noise node."""
    km_lon = 1.0 / (111.195 * 0.809017)  # degrees of longitude per km at 36° N
    nodes = [
        {"id": f"e{d}", "lat": 36.0, "lon": 118.0 + d * km_lon, "quantities": AIR}
        for d in (0, 1, 2, 4, 8)
    ]
    nodes.append({"id": "n2", "lat": 36.0 + 2 / 111.195, "lon": 118.0, "quantities": AIR})
    water = [{"id": "w1", "lat": 36.01, "lon": 118.01, "quantities": WATER}]
    noise = [{"id": "s1", "lat": 36.02, "lon": 118.02, "quantities": ["LAeq"],
              "sampling_s": 30}]  # fmt: skip
    officer = {"id": "o1", "name": "officer"}
    return parse_registry({
        "county": {"id": "test", "timezone": "Asia/Shanghai"},
        "townships": [
            {"id": "east", "villages": [{"id": "line", "officer": officer, "nodes": nodes}]},
            {"id": "river", "villages": [{"id": "bank", "officer": officer, "nodes": water},
                                         {"id": "town", "officer": officer, "nodes": noise}]},
        ],
    })  # fmt: skip


@pytest.fixture(scope="session")
def grid() -> Registry:
    return line_grid()


@pytest.fixture(scope="session")
def county_plus() -> Registry:
    return county_with_extra_nodes()


BASE: dict[str, Any] = {"name": "t", "start": "2026-06-01T00:00:00+08:00", "duration_h": 24,
                        "seed": 7}  # fmt: skip


def scenario(registry: Registry, tmp: Path, **sections: Any) -> Scenario:
    """A scenario from ``BASE`` plus ``sections``, written to ``tmp`` and loaded."""
    raw = copy.deepcopy(BASE)
    raw.update(sections)
    path = tmp / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    return load_scenario(path, registry)


def quiet(*quantities: str) -> dict[str, dict[str, float]]:
    """Baseline overrides that make ``quantities`` deterministic constants (mean only)."""
    flat = {"mean": 10.0, "diurnal": 0, "noise": 0, "weather_sd": 0, "night_offset": 0}
    return {q: dict(flat) for q in quantities}


def read(driver: SimulatedDriver, t: float) -> list[SensorValue]:
    """``driver.read(t)`` without an event loop (it never awaits)."""
    coro = driver.read(t)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("read() awaited")


def series(driver: SimulatedDriver, times: list[float], quantity: str) -> list[float]:
    out = []
    for t in times:
        values = {v.quantity: v.value for v in read(driver, t)}
        out.append(values[quantity])
    return out

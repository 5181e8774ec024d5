"""Per-read cost of ``SimulatedDriver``: how many microseconds one node's sample costs.

    python benchmarks/bench_sim_read.py [--nodes 2000] [--reads 60]

Builds a county of air nodes (6 quantities, 60 s sampling) and drives every node's
``read()`` through ``--reads`` consecutive samples at staggered phases, as the fleet does:
once with the packaged default signal model only, once with a plume over every node, a drift
on one village and one village replaying the Dongsi station; ``--rounds`` times each. Prints
one JSON line each: the median, min and max over rounds of the mean microseconds per read
(coroutine included), and per value.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from firmware_sim._scenario import load_scenario
from firmware_sim._signals import SimulatedDriver
from tianwang.registry import Registry, parse_registry

QUANTITIES = ["PM2.5", "PM10", "SO2", "NO2", "CO", "O3"]
STATION = Path(__file__).resolve().parents[1] / "examples" / "data" / "beijing"


def county(nodes: int, per_village: int = 10) -> Registry:
    villages = []
    for v in range(nodes // per_village):
        members = [
            {"id": f"n{v * per_village + k:05d}", "quantities": QUANTITIES,
             "lat": 36.0 + v * 0.002, "lon": 118.0 + k * 0.002}
            for k in range(per_village)
        ]  # fmt: skip
        villages.append({"id": f"v{v:04d}", "officer": {"id": f"o{v}", "name": f"o {v}"},
                         "nodes": members})  # fmt: skip
    township = {"id": "t0", "villages": villages}
    return parse_registry({"county": {"id": "bench"}, "townships": [township]})


def scenario_text(features: bool) -> dict[str, object]:
    raw: dict[str, object] = {"name": "readbench", "start": "2026-06-01T00:00:00+08:00",
                              "duration_h": 24, "seed": 1}  # fmt: skip
    if features:
        raw["episodes"] = [{"id": "plume", "source": {"lat": 36.0, "lon": 118.0},
                            "spread": {"speed_m_s": 2}, "decay_km": 5, "start_min": 0,
                            "duration_min": 600, "ramp_min": 10, "add": {"NO2": 100}}]  # fmt: skip
        raw["sensor_faults"] = [{"id": "drift", "kind": "drift", "villages": ["t0/v0000"],
                                 "start_min": 0, "duration_min": 600, "rate_per_h": 1}]  # fmt: skip
        raw["replay"] = {"station_csv": str(STATION / "PRSA_Data_Dongsi_201409.csv"),
                         "from": "2014-09-02T00:00:00+08:00", "villages": ["t0/v0001"]}  # fmt: skip
    return raw


def measure(nodes: int, reads: int, features: bool) -> float:
    """Mean microseconds per ``read()``."""
    registry = county(nodes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.yaml"
        path.write_text(yaml.safe_dump(scenario_text(features)))
        scenario = load_scenario(path, registry)
    start = scenario.start_time(0.0)
    drivers = [SimulatedDriver(n, scenario, start) for n in registry.nodes.values()]
    phases = [60.0 * i / len(drivers) for i in range(len(drivers))]  # staggered, as the fleet
    for d, phase in zip(drivers, phases, strict=True):  # warm-up: first read, shared state
        _drive(d, start + phase)
    began = time.perf_counter()
    for k in range(1, reads + 1):
        for d, phase in zip(drivers, phases, strict=True):
            _drive(d, start + 60.0 * k + phase)
    return (time.perf_counter() - began) / (reads * len(drivers)) * 1e6


def _drive(driver: SimulatedDriver, t: float) -> None:
    """Run ``read`` to completion without an event loop (it never awaits)."""
    coro = driver.read(t)
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("read() awaited")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for features in (False, True):
        costs = sorted(measure(args.nodes, args.reads, features) for _ in range(args.rounds))
        median = statistics.median(costs)
        print(json.dumps({
            "bench": "simulated_driver_read", "nodes": args.nodes, "reads_per_node": args.reads,
            "quantities_per_node": len(QUANTITIES), "features": features, "rounds": args.rounds,
            "us_per_read": round(median, 2), "us_per_read_min": round(costs[0], 2),
            "us_per_read_max": round(costs[-1], 2),
            "us_per_value": round(median / len(QUANTITIES), 2),
        }))  # fmt: skip


if __name__ == "__main__":
    main()

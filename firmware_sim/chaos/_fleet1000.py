"""1,000 nodes reconnecting at once: a synthetic county of 1,000 NO2 nodes (100 villages of
10); the broker restarts (clean stop, persistence kept) in the middle of the run and every
agent (and ingest) reconnects together and delivers its backlog."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from firmware_sim.chaos._rig import ChaosResult
from firmware_sim.chaos._scenarios import run_pipeline

NODES = 1000
PER_VILLAGE = 10
SPEED = 60.0  # 20 simulated minutes in 20 s: 1,000 messages/s from one Python process


def synthetic_county(nodes: int = NODES) -> dict[str, Any]:
    """``nodes`` NO2 nodes (one reading a sample: many nodes, few readings), and one water
    node for ingest's readiness probe."""
    villages = [
        {"id": f"v{v:03d}", "officer": {"id": f"o-{v:03d}", "name": f"officer {v}"},
         "nodes": [{"id": f"n{v * PER_VILLAGE + k:04d}", "lat": 36.0 + v * 0.01,
                    "lon": 118.0 + k * 0.01, "quantities": ["NO2"]}
                   for k in range(PER_VILLAGE)]}
        for v in range(nodes // PER_VILLAGE)
    ]  # fmt: skip
    villages[-1]["nodes"].append({"id": "probe", "lat": 36.5, "lon": 118.5, "quantities": ["COD"]})
    return {"county": {"id": "chaos", "name": "chaos"},
            "townships": [{"id": "t0", "villages": villages}]}  # fmt: skip


def _hours_ago(hours: int) -> str:
    return datetime.fromtimestamp((int(time.time()) // 3600 - hours) * 3600, UTC).isoformat()


async def fleet_reconnect(folder: Path) -> ChaosResult:
    folder.mkdir(parents=True, exist_ok=True)
    grid = folder / "grid.yaml"
    grid.write_text(yaml.safe_dump(synthetic_county()))
    # Few readings each: 20 samples a node, the broker down from minute 8 to 12. No episode
    # (an hourly exceedance needs 45 minutes of samples): no incident may appear.
    scenario = {"duration_h": 20 / 60, "start": _hours_ago(2), "episodes": [],
                "network_faults": [{"id": "restart", "kind": "broker_restart", "start_min": 8,
                                    "duration_min": 4}]}  # fmt: skip
    nodes = [f"n{i:04d}" for i in range(NODES)]
    result = await run_pipeline("fleet_reconnect", folder, speed=SPEED, scenario=scenario,
                                grid=grid, nodes=nodes, probe="probe")  # fmt: skip
    result.extra["nodes"] = NODES
    return result

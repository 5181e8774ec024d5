"""Skeleton pipeline throughput: 64 edge agents -> Mosquitto -> ingest -> detector -> InfluxDB.

The demo county and scenario with the clock run as fast as the agents can publish, in one
process (fleet and ingest share one event loop, as in ``tianwang demo``). Prints one JSON
line with the median of RUNS runs; each run gets a fresh broker and database.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from tianwang.demo import run_pipeline
from tianwang.services import InfluxDB, Mosquitto

ROOT = Path(__file__).resolve().parent.parent
RUNS = 3
SPEED = 1e7  # simulated seconds per real second: the clock never makes an agent wait


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp:
        root = Path(tmp)
        with Mosquitto(root / "mosquitto") as broker, InfluxDB(root / "influxdb") as influx:
            began = time.monotonic()
            result = asyncio.run(
                run_pipeline(
                    ROOT / "examples" / "county.yaml",
                    ROOT / "examples" / "scenarios" / "demo.yaml",
                    root,
                    broker.url,
                    influx.url,
                    speed=SPEED,
                    echo=lambda line: None,
                )
            )
            wall = time.monotonic() - began
    if result.readings_stored != result.readings_published:
        raise SystemExit(f"lost readings: {result.summary()}")
    return {
        "readings": result.readings_published,
        "wall_s": wall,
        "readings_per_s": result.readings_published / wall,
        "incidents": len(result.routed),
    }


def main() -> None:
    runs = [one_run() for _ in range(RUNS)]
    print(
        json.dumps(
            {
                "bench": "skeleton_pipeline",
                "nodes": 64,
                "readings": int(runs[0]["readings"]),
                "runs": RUNS,
                "readings_per_s": round(statistics.median(r["readings_per_s"] for r in runs)),
                "wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 2),
                "incidents": int(runs[0]["incidents"]),
            }
        )
    )


if __name__ == "__main__":
    main()

"""A synthetic county for the benchmarks that need many nodes (bench_fleet, bench_pipeline)."""

from __future__ import annotations

from typing import Any

QUANTITIES = ("PM2.5", "PM10", "SO2", "NO2", "CO", "O3")


def synthetic_grid(nodes: int, sampling_s: float, per_village: int = 10,
                   villages_per_township: int = 50) -> dict[str, Any]:  # fmt: skip
    """A grid file (as a dict) of ``nodes`` air nodes with the 6 air quantities: townships
    of ``villages_per_township`` villages of ``per_village`` nodes."""
    townships: list[dict[str, Any]] = []
    n = 0
    while n < nodes:
        t = len(townships)
        villages = []
        for v in range(villages_per_township):
            if n >= nodes:
                break
            count = min(per_village, nodes - n)
            villages.append({
                "id": f"v{v:03d}", "officer": {"id": f"o-{t}-{v}", "name": f"officer {t}-{v}"},
                "nodes": [{"id": f"n{n + k:05d}", "lat": 36.0 + t * 0.05, "lon": 118.0 + v * 0.01,
                           "sampling_s": sampling_s, "quantities": list(QUANTITIES)}
                          for k in range(count)],
            })  # fmt: skip
            n += count
        townships.append({"id": f"t{t:02d}", "villages": villages})
    return {
        "county": {"id": "bench", "name": "bench", "timezone": "Asia/Shanghai"},
        "townships": townships,
    }

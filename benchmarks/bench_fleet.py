"""Fleet runner at scale: N virtual nodes, 6 quantities each, 60 s sampling, in real time.

One process runs every node as a real edge agent (own MQTT connection, outbox, driver)
against a private Mosquitto. Nodes sample at staggered phases. After a warm-up (every node
connected and sampling), readings acknowledged by the broker are counted over a window and
compared with what the fleet should produce in that window. ``achieved`` counts readings the
broker acknowledged in the window (a backlog left from the warm-up raises it above 1);
``sampled`` counts readings the agents took; ``outbox_backlog_at_end`` what is still unsent.

    python benchmarks/bench_fleet.py [--nodes 10000] [--window-s 120] [--warmup-s 75]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

from _county import QUANTITIES, synthetic_grid

from firmware_sim import Fleet, load_scenario
from tianwang.clock import WallClock
from tianwang.mqtt import BrokerAddress
from tianwang.registry import Registry, parse_registry
from tianwang.services import Mosquitto

HERE = Path(__file__).resolve().parent
SAMPLING_S = 60.0


def synthetic_county(nodes: int) -> Registry:
    """A county of ``nodes`` air nodes (benchmarks/_county.py), sampling every SAMPLING_S."""
    return parse_registry(synthetic_grid(nodes, SAMPLING_S))


def stored(fleet: Fleet) -> int:
    """Readings the agents have taken (stored in their outboxes), published or not."""
    return sum(a.stats.readings_stored for a in fleet.agents)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(broker: Mosquitto, nodes: int, warmup_s: float, window_s: float) -> dict:
    registry = synthetic_county(nodes)
    scenario = load_scenario(HERE / "data" / "fleet_scenario.yaml", registry)
    start = time.time() + 2.0
    end = start + warmup_s + window_s + SAMPLING_S
    fleet = Fleet(registry, scenario, BrokerAddress.parse(broker.url), clock=WallClock(),
                  start=start, end=end, stagger=True, health_s=3600)  # fmt: skip
    run = asyncio.create_task(fleet.run())
    await asyncio.sleep(start + warmup_s - time.time())
    published0, stored0 = fleet.readings_published(), stored(fleet)
    backlog0 = sum(len(a.outbox) for a in fleet.agents)
    cpu0, t0 = cpu_s(), time.monotonic()
    await asyncio.sleep(window_s)
    published1, stored1 = fleet.readings_published(), stored(fleet)
    cpu1, t1 = cpu_s(), time.monotonic()
    backlog = sum(len(a.outbox) for a in fleet.agents)
    for agent in fleet.agents:
        agent.stop()
    await run
    elapsed = t1 - t0
    intended = nodes * len(QUANTITIES) / SAMPLING_S
    achieved = (published1 - published0) / elapsed
    return {
        "bench": "fleet",
        "nodes": nodes,
        "window_s": round(elapsed, 1),
        "intended_readings_per_s": round(intended, 1),
        "achieved_readings_per_s": round(achieved, 1),
        "achieved_ratio": round(achieved / intended, 4),
        "sampled_readings_per_s": round((stored1 - stored0) / elapsed, 1),
        "outbox_backlog_at_start": backlog0,
        "outbox_backlog_at_end": backlog,
        "fleet_cpu_pct_one_core": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "fleet_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "reconnects": sum(a.stats.reconnects for a in fleet.agents),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--warmup-s", type=float, default=75.0)
    parser.add_argument("--window-s", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tw-fleet-") as tmp, Mosquitto(Path(tmp)) as broker:
        result = asyncio.run(measure(broker, args.nodes, args.warmup_s, args.window_s))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

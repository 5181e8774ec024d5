"""Edge agent footprint: one agent process at 1 Hz with 6 sensors against a local broker.

Starts ``tianwang edge run`` with a simulated 6-quantity driver and a file outbox (SQLite,
WAL, synchronous=FULL), lets it warm up, then reads its CPU time and resident memory from
/proc over a window. Prints one JSON line.

    python benchmarks/bench_edge_agent.py [--window-s 60] [--warmup-s 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tianwang.services import Mosquitto

ROOT = Path(__file__).resolve().parent.parent
QUANTITIES = [("PM2.5", "ug/m3"), ("PM10", "ug/m3"), ("SO2", "ug/m3"), ("NO2", "ug/m3"),
              ("CO", "mg/m3"), ("O3", "ug/m3")]  # fmt: skip
TICKS = os.sysconf("SC_CLK_TCK")


def write_config(folder: Path, broker_url: str) -> Path:
    config = {
        "node": "yy-0001",
        "place": {"county": "yiyuan", "township": "nanma", "village": "dongli"},
        "broker": {"url": broker_url},
        "sampling_s": 1.0,
        "health_s": 60,
        "drivers": {"sim": {"kind": "simulated", "grid": str(ROOT / "examples" / "county.yaml"),
                            "scenario": str(ROOT / "examples" / "scenarios" / "demo.yaml")}},
        "sensors": [{"driver": "sim", "quantity": q, "unit": u} for q, u in QUANTITIES],
        "outbox": {"path": str(folder / "outbox.sqlite")},
    }  # fmt: skip
    path = folder / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--window-s", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tw-edge-") as tmp, Mosquitto(Path(tmp)) as broker:
        config = write_config(Path(tmp), broker.url)
        agent = subprocess.Popen(
            [sys.executable, "-m", "tianwang.cli", "edge", "run", "--config", str(config)],
            stdin=subprocess.DEVNULL,
        )
        try:
            time.sleep(args.warmup_s)
            cpu0, t0 = cpu_s(agent.pid), time.monotonic()
            time.sleep(args.window_s)
            cpu1, t1 = cpu_s(agent.pid), time.monotonic()
            rss = rss_mb(agent.pid)
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
    print(json.dumps({
        "bench": "edge_agent",
        "sampling_hz": 1,
        "sensors": len(QUANTITIES),
        "window_s": round(t1 - t0, 1),
        "rss_mb": round(rss, 1),
        "cpu_pct_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()

"""The ingest under test, in its own process, for benchmarks/bench_pipeline.py.

Builds ``IngestService`` as ``tianwang.demo.run_pipeline`` does (registry, ``Detector``,
``InfluxV1Sink``, ``IngestConfig``), prints ``ready`` on stdout once subscribed, and runs until
SIGTERM or SIGINT; then it leaves the service (final flush) and exits.

While it runs it writes, in ``--out`` (a folder):

- ``status.json`` every ``STATUS_EVERY_S`` and at exit (atomically replaced): the service's
  ``counts`` and ``rejections``, events, flushes, and ``final: true`` at exit;
- ``lags.bin``: int64 pairs (sample ts in ms, detection time in ms), one per point the
  detector saw. The sample time is the timestamp of each line the sink wrote (ms, the
  last field of a line-protocol line), so this works for the per-reading ``reading`` points
  and the per-sample ``sample`` points alike; "detection" is the wall clock when
  ``detector.update`` is called with that batch (right after the write succeeded).

The instrumentation is in ``instrument``: if the new ingest changes where it writes or
updates, adapt that function only.

    python benchmarks/_ingest_runner.py --broker mqtt://127.0.0.1:P --influx http://127.0.0.1:Q \\
        --grid grid.yaml --out DIR
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from detect import Detector, DetectorConfig, ExceedanceEvent, ReadingBatch
from ingest import InfluxV1Sink, IngestConfig, IngestService
from tianwang.mqtt import BrokerAddress
from tianwang.registry import load_registry

STATUS_EVERY_S = 0.25


class Probe:
    """Pairs each successful sink write with the detector update that follows it."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._written_ts: list[np.ndarray] = []
        self._lags = (out / "lags.bin").open("ab")
        self.events: Counter[str] = Counter()
        self.flushes = 0
        self.points_seen = 0

    def written(self, lines: list[str]) -> None:
        # Line protocol ends with " <timestamp>"; precision ms (13 digits in this century).
        ts = np.array([line[line.rfind(" ") + 1 :] for line in lines]).astype(np.int64)
        self._written_ts.append(ts)

    def detected(self) -> None:
        now_ms = int(time.time() * 1000)
        if not self._written_ts:
            return
        ts = np.concatenate(self._written_ts) if len(self._written_ts) > 1 else self._written_ts[0]
        self._written_ts.clear()
        pairs = np.empty((ts.size, 2), np.int64)
        pairs[:, 0] = ts
        pairs[:, 1] = now_ms
        pairs.tofile(self._lags)
        self.flushes += 1
        self.points_seen += ts.size

    def flush(self) -> None:
        self._lags.flush()

    def close(self) -> None:
        self._lags.close()


def instrument(service: IngestService, probe: Probe) -> None:
    """Wrap the sink's write and the detector's update of this service (instance attributes,
    so nothing else is touched)."""
    sink, detector = service.sink, service.detector
    write, update = sink.write, detector.update

    async def probed_write(lines: list[str]) -> None:
        await write(lines)
        probe.written(lines)

    def probed_update(batch: ReadingBatch) -> list[ExceedanceEvent]:
        probe.detected()
        return update(batch)

    sink.write = probed_write  # type: ignore[method-assign]
    detector.update = probed_update  # type: ignore[method-assign]


def warm_detector(timezone: str) -> None:
    """Compile (or load from cache) the Numba kernels on a throwaway detector, so the first
    real batch does not stall for seconds."""
    detector = Detector(DetectorConfig(timezone=timezone), {})
    sid = detector.series_id("warm", "PM2.5", "air:2")
    now = int(time.time())
    batch = ReadingBatch(
        np.full(4, sid, np.int64),
        np.arange(now - 4, now, dtype=np.int64),
        np.full(4, 10.0),
        np.ones(4, np.bool_),
    )
    detector.update(batch)
    detector.close_until(now + 7200)


def write_status(out: Path, service: IngestService, probe: Probe, final: bool) -> None:
    status: dict[str, Any] = {
        "t": time.time(),
        "counts": dict(service.counts),
        "rejections": dict(service.rejections),
        "events": dict(probe.events),
        "flushes": probe.flushes,
        "points_seen": probe.points_seen,
        "final": final,
    }
    tmp = out / "status.json.tmp"
    tmp.write_text(json.dumps(status))
    os.replace(tmp, out / "status.json")


async def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    registry = load_registry(args.grid)
    warm_detector(registry.timezone)
    detector = Detector(DetectorConfig(timezone=registry.timezone), registry.permits)
    probe = Probe(out)

    async def on_events(events: list[ExceedanceEvent]) -> None:
        probe.events.update(f"{e.rule}:{e.kind}" for e in events)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    config = IngestConfig(BrokerAddress.parse(args.broker), client_id=args.client_id)
    async with InfluxV1Sink(args.influx) as sink:
        service = IngestService(config, registry, detector, sink, on_events)
        instrument(service, probe)
        async with service:
            print("ready", flush=True)
            while not stop.is_set():
                write_status(out, service, probe, final=False)
                probe.flush()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), STATUS_EVERY_S)
        probe.close()
        write_status(out, service, probe, final=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--influx", required=True)
    parser.add_argument("--grid", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--client-id", default="bench-ingest")
    args = parser.parse_args()
    asyncio.run(run(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

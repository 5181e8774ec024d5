"""Detector kernel throughput: hourly means over columnar batches, 100k series.

Prints the median of RUNS timings of ``HourlyMeans.update`` over the same 10M samples
(fresh state each run; the kernel is compiled, or loaded from cache, before timing).
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np

from detect import HourlyMeans, ReadingBatch

RUNS = 5
SERIES = 100_000
SAMPLES = 10_000_000
BATCH = 50_000


def make_batches() -> list[ReadingBatch]:
    rng = np.random.default_rng(1)
    per_series = SAMPLES // SERIES
    t0 = 1_795_766_400
    ts = np.repeat(t0 + 60 * np.arange(per_series, dtype=np.int64), SERIES)
    series = np.tile(np.arange(SERIES, dtype=np.int64), per_series)
    values = rng.gamma(4.0, 10.0, SAMPLES)
    valid = rng.random(SAMPLES) > 0.01
    return [
        ReadingBatch(series[i : i + BATCH], ts[i : i + BATCH], values[i : i + BATCH],
                     valid[i : i + BATCH])
        for i in range(0, SAMPLES, BATCH)
    ]  # fmt: skip


def one_run(batches: list[ReadingBatch]) -> float:
    state = HourlyMeans(capacity=SERIES)
    for _ in range(SERIES):
        state.add_series()
    began = time.perf_counter()
    for batch in batches:
        state.update(batch)
    return time.perf_counter() - began


def main() -> None:
    batches = make_batches()
    one_run(batches[:1])  # compile or load from cache
    times = [one_run(batches) for _ in range(RUNS)]
    print(
        json.dumps(
            {
                "bench": "detect_hourly",
                "series": SERIES,
                "samples": SAMPLES,
                "runs": RUNS,
                "samples_per_s": round(SAMPLES / statistics.median(times)),
            }
        )
    )


if __name__ == "__main__":
    main()

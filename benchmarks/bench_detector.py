"""Detector throughput against the cheapest possible streaming update, in the same run.

10 M samples over 100 k series (100 one-minute samples each, so hours close and are judged),
fed in batches of 50 k to a warm ``Detector``; the floor is a minimal ``@njit`` loop that
only updates an EWMA mean and variance per series over the same arrays. Cold start: a fresh
interpreter imports ``detect`` and runs one batch with the JIT cache warm. Medians of RUNS.
``anomaly_samples_per_s``: ``AnomalyDetector.update`` alone (its kernel, default rules) over
the same batches, the part of the detector's time the anomaly scoring takes.
``samples_per_s_without_drift``: the detector with every rule but drift (no series has a
township). ``samples_per_s_drift_scoring``: the detector with the drift rule scoring from
its second tick (``warmup_s`` = one step): the 100 minutes of the batch are within the
default 3-hour warm-up, in which a tick updates the statistics but scores no member, so the
headline figure is that of a young deployment; this one is that of a steady one.
``detector_cpu_s``: the detector's median CPU time of the process (``time.process_time``)
over the same runs, which other work on a shared machine inflates less than the wall time
the other figures use. ``--profile``: a cProfile of one detector run to stderr, instead of
the figures. ``--series N``: N series of 100 samples each instead (the state of 100 k series
does not fit in the cache; that of 5 k does). ``--stages``: instead of the figures, one line
``detector_stages`` with the wall time of each stage of ``Detector.update`` inside the
detector, ns a sample, from the fastest of RUNS runs (a stage alone runs faster than among
the others, whose state competes with its own for the cache).
"""

from __future__ import annotations

import collections
import cProfile
import dataclasses
import json
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
from numba import njit

from detect import AnomalyDetector, Detector, DriftConfig, ReadingBatch

RUNS = 3
SERIES = 100_000
SAMPLES = 10_000_000
BATCH = 50_000
T0 = 1_795_766_400  # a whole hour
QUANTITIES = ("NO2", "SO2", "O3", "CO", "PM2.5", "PM10")
# What a default Detector runs: the regulatory rules, then the anomaly rules on every sample,
# the drift rule included (the nodes are grouped in townships of 20, as ingest groups them).
RULES = ["1h_mean", "24h_mean", "8h_max", "24h_mean_projected",
         "spike", "level_shift", "stuck", "implausible", "rate", "missing", "drift"]  # fmt: skip
NODES_PER_TOWNSHIP = 20
CPU_S: list[float] = []  # CPU time of each time_detector call


@njit(cache=True, nogil=True)
def ewma_floor(series, values, mean, var, alpha):
    for i in range(series.shape[0]):
        s = series[i]
        delta = values[i] - mean[s]
        mean[s] += alpha * delta
        var[s] = (1.0 - alpha) * (var[s] + alpha * delta * delta)


def columns() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    per_series = SAMPLES // SERIES
    ts = np.repeat(T0 + 60 * np.arange(per_series, dtype=np.int64), SERIES)
    # Within each minute the series arrive in random order, as messages from many nodes do.
    series = np.concatenate([rng.permutation(SERIES) for _ in range(per_series)])
    # Typical levels per quantity (the detector registers series in QUANTITIES order).
    level = np.array([35.0, 12.0, 60.0, 0.8, 45.0, 80.0])[series % len(QUANTITIES)]
    values = level * rng.gamma(4.0, 0.25, SAMPLES)
    values[rng.random(SAMPLES) < 0.001] *= 40.0  # rare spikes; some hours exceed
    valid = rng.random(SAMPLES) > 0.01
    return series, ts, values, valid


def time_detector(cols: tuple[np.ndarray, ...], drift: bool = True, scoring: bool = False,
                  detector: Detector | None = None) -> float:  # fmt: skip
    """The detector's time over the columns; ``drift``: its series have townships (the drift
    rule runs), else none (every other rule runs); ``scoring``: the drift rule scores from
    its second tick; ``detector``: a new default one to use."""
    series, ts, values, valid = cols
    config = DriftConfig.default()
    if scoring:
        config = dataclasses.replace(config, warmup_s=config.step_s)
    detector = detector or Detector(drift=config)
    for sid in range(SERIES):
        node = sid // len(QUANTITIES)
        township = f"t{node // NODES_PER_TOWNSHIP}" if drift else None
        detector.series_id(f"n{node:05d}", QUANTITIES[sid % 6], "air:2", township)
    began, cpu = time.perf_counter(), time.process_time()
    for i in range(0, SAMPLES, BATCH):
        j = i + BATCH
        detector.update(ReadingBatch(series[i:j], ts[i:j], values[i:j], valid[i:j]))
    detector.close_until(int(ts[-1]) + 3600)
    CPU_S.append(time.process_time() - cpu)
    return time.perf_counter() - began


def time_anomaly(cols: tuple[np.ndarray, ...]) -> float:
    series, ts, values, valid = cols
    detector = AnomalyDetector(capacity=SERIES)
    for sid in range(SERIES):
        detector.add_series(QUANTITIES[sid % 6])
    began = time.perf_counter()
    for i in range(0, SAMPLES, BATCH):
        j = i + BATCH
        detector.update(ReadingBatch(series[i:j], ts[i:j], values[i:j], valid[i:j]))
    return time.perf_counter() - began


def time_floor(cols: tuple[np.ndarray, ...]) -> float:
    series, _, values, _ = cols
    mean = np.zeros(SERIES)
    var = np.zeros(SERIES)
    began = time.perf_counter()
    for i in range(0, SAMPLES, BATCH):
        ewma_floor(series[i : i + BATCH], values[i : i + BATCH], mean, var, 0.05)
    return time.perf_counter() - began


def time_stages(cols: tuple[np.ndarray, ...]) -> dict[str, float]:
    """ns a sample of each stage of ``Detector.update`` in the fastest of RUNS runs."""
    best: dict[str, float] = {}
    for _ in range(RUNS):
        spent: collections.Counter[str] = collections.Counter()
        detector = Detector(drift=DriftConfig.default())
        stages = {"anomaly": (detector._anomaly, "update"), "drift": (detector._drift, "update"),
                  "episodes": (detector._anomaly_episodes, "update"),
                  "episode_events": (detector._anomaly_episodes, "_events"),
                  "hourly": (detector._hourly, "update"), "hours_judged": (detector, "_judge"),
                  "early_warning": (detector, "_warn"), "days": (detector, "_days")}  # fmt: skip
        for name, (owner, method) in stages.items():
            setattr(owner, method, _timed(getattr(owner, method), name, spent))
        spent["total"] = time_detector(cols, detector=detector)
        # the events are built inside the episodes stage: the rest is what no stage took
        spent["rest"] = spent["total"] - sum(v for k, v in spent.items()
                                             if k not in ("total", "episode_events"))  # fmt: skip
        if not best or spent["total"] < best["total"]:
            best = dict(spent)
    return {name: round(s * 1e9 / SAMPLES, 1) for name, s in best.items()}


def _timed(method: Callable[..., object], name: str,
           spent: collections.Counter[str]) -> Callable[..., object]:  # fmt: skip
    """``method``, adding its wall time to ``spent[name]``."""

    def timed(*args: object, **kwargs: object) -> object:
        began = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - began

    return timed


COLD = """
import time
began = time.perf_counter()
import numpy as np
from detect import AnomalyDetector, Detector, ReadingBatch
d = Detector()
sid = d.series_id("n", "NO2")
d.update(ReadingBatch(np.zeros(120, np.int64), 1795766400 + 60 * np.arange(120),
                      np.full(120, 40.0), np.ones(120, bool)))
print(time.perf_counter() - began)
"""


def main() -> None:
    global SERIES, SAMPLES
    if "--series" in sys.argv:  # fewer series, 100 samples each: how state size sets the pace
        SERIES = int(sys.argv[sys.argv.index("--series") + 1])
        SAMPLES = 100 * SERIES
    cols = columns()
    ewma_floor(cols[0][:10], cols[2][:10], np.zeros(SERIES), np.zeros(SERIES), 0.05)  # compile
    time_detector(tuple(c[: 2 * BATCH] for c in cols))  # compile or load the kernels
    time_anomaly(tuple(c[: 2 * BATCH] for c in cols))
    if "--stages" in sys.argv:
        print(json.dumps({"bench": "detector_stages", "series": SERIES, "samples": SAMPLES,
                          "runs": RUNS, "ns_per_sample": time_stages(cols)}))  # fmt: skip
        return
    if "--profile" in sys.argv:
        profile = cProfile.Profile()
        profile.runcall(time_detector, cols)
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(15)
        return
    detector_s, floor_s, anomaly_s, no_drift_s, scoring_s, cpu_s = [], [], [], [], [], []
    for _ in range(RUNS):  # interleaved, so all see the same machine
        detector_s.append(time_detector(cols))
        cpu_s.append(CPU_S[-1])
        no_drift_s.append(time_detector(cols, drift=False))
        scoring_s.append(time_detector(cols, scoring=True))
        floor_s.append(time_floor(cols))
        anomaly_s.append(time_anomaly(cols))
    cold = [float(subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True,
                                 check=True).stdout) for _ in range(RUNS)]  # fmt: skip
    rate = SAMPLES / statistics.median(detector_s)
    floor = SAMPLES / statistics.median(floor_s)
    print(json.dumps({
        "bench": "detector", "series": SERIES, "samples": SAMPLES, "runs": RUNS,
        "rules": RULES,
        "samples_per_s": round(rate), "floor_samples_per_s": round(floor),
        "ratio": round(rate / floor, 3), "cold_start_s": round(statistics.median(cold), 3),
        "anomaly_samples_per_s": round(SAMPLES / statistics.median(anomaly_s)),
        "samples_per_s_without_drift": round(SAMPLES / statistics.median(no_drift_s)),
        "samples_per_s_drift_scoring": round(SAMPLES / statistics.median(scoring_s)),
        "detector_cpu_s": round(statistics.median(cpu_s), 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()

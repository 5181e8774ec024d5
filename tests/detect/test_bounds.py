"""The kernels index their arrays unchecked, by unsigned indices and into scratch sized by
their wrappers. Run with numba's bounds checking on, a detector over a stream that takes
every stage (anomaly rules, drift ticks of every group at once and a drifting sensor's
alarm, episodes, hourly and daily means) must finish without an IndexError and give the
events it gives unchecked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

STREAM = """
import numpy as np
from detect import Detector, ReadingBatch

rng = np.random.default_rng(3)
detector = Detector()
quantities = ("NO2", "SO2", "O3", "CO", "PM2.5", "PM10")
level = np.array([35.0, 12.0, 60.0, 0.8, 45.0, 80.0])
sids = [detector.series_id(f"n{node}", q, "air:2", f"t{node // 8}")
        for node in range(24) for q in quantities]
rows = []
for minute in range(26 * 60):
    # on the minute half the time (every group due at one timestamp), else up to 40 s late
    late = rng.integers(0, 40, len(sids)) * (minute % 10 < 5)
    t = 1795766400 + 60 * minute + late
    x = level[np.arange(len(sids)) % 6] * rng.gamma(4.0, 0.25, len(sids))
    x[5 * 6] += minute / 10.0  # the NO2 sensor of node 5 drifts
    x[rng.random(len(sids)) < 0.002] *= 40.0  # spikes
    x[rng.random(len(sids)) < 0.002] = np.nan
    x[rng.random(len(sids)) < 0.001] = -5.0  # below the range
    keep = rng.random(len(sids)) < 0.97  # gaps
    rows += [(s, int(ts), float(v)) for s, ts, v, k in zip(sids, t, x, keep) if k]
events = []
for lo in range(0, len(rows), 997):
    part = rows[lo : lo + 997]
    rng.shuffle(part)  # out of time order within a batch
    s, t, x = (np.array(c) for c in zip(*part))
    valid = rng.random(len(part)) > 0.01
    events += detector.update(ReadingBatch(s.astype(np.int64), t.astype(np.int64), x, valid))
events += detector.close_until(int(rows[-1][1]) + 86400)
for e in events:
    print(e.kind, e.node, e.quantity, e.rule, e.hour_start_s, repr(e.value))
print(len(events), int(detector._drift.state("on").sum()), detector.stats)
"""


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "-c", STREAM], env=environ, capture_output=True,
                          text=True, timeout=900, check=False)  # fmt: skip


def test_kernels_stay_in_bounds(tmp_path: Path) -> None:
    checked = _run(tmp_path / "checked", NUMBA_BOUNDSCHECK="1")
    assert checked.returncode == 0, checked.stderr[-3000:]
    unchecked = _run(tmp_path / "unchecked")
    assert unchecked.returncode == 0, unchecked.stderr[-3000:]
    lines = checked.stdout.splitlines()
    n_events, drifting = (int(v) for v in lines[-1].split()[:2])
    assert n_events > 50 and drifting >= 1  # the drift rule's alarm path ran too
    rules = {line.split()[3] for line in lines[:-1]}
    assert rules >= {"spike", "rate", "implausible", "missing", "1h_mean", "24h_mean_projected"}
    assert checked.stdout == unchecked.stdout

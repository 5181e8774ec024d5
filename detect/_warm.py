"""Load (or compile) every kernel of the detector before a service takes traffic.

Numba compiles a kernel on its first call, or loads it from its cache (``cache=True``):
seconds on a fresh install, about a second from the cache. A service that met that cost on
its first batch would stall its message loop meanwhile (an MQTT keepalive missed, a broker
restart unnoticed), so ingest pays it at start, before it subscribes.
"""

from __future__ import annotations

import numpy as np

from detect._batch import ReadingBatch
from detect._detector import Detector

_T0 = 1_795_766_400  # a whole hour (UTC)


def warm_up() -> None:
    """Run a throwaway detector through every stage: hours, days and 8-hour means that
    close, anomaly episodes that open and close, and drift ticks in a group of four nodes."""
    detector = Detector()
    sids = [detector.series_id(f"warm-{i}", "NO2", "air:2", "warm") for i in range(4)]
    minutes = 26 * 60  # a natural day and more: every statistic closes
    series = np.tile(np.asarray(sids, np.int64), minutes)
    ts = _T0 + 60 * np.repeat(np.arange(minutes, dtype=np.int64), len(sids))
    value = np.full(series.shape[0], 40.0)
    value[::97] = 900.0  # spikes: anomaly episodes open and close
    valid = np.ones(series.shape[0], np.bool_)
    for lo in range(0, series.shape[0], 4096):
        hi = lo + 4096
        detector.update(ReadingBatch(series[lo:hi], ts[lo:hi], value[lo:hi], valid[lo:hi]))
    detector.close_until(int(ts[-1]) + 86400)

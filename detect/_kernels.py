"""Numba kernels: pure functions over columnar batches and per-series state arrays.

No objects cross into njit: the Python layer (``_hourly.py``) owns the arrays and passes
them in. Hourly mean per GB 3095-2026 §3 (arithmetic mean over the hour) with the Table 4
validity rule (>= 45 minutes of sampling in the hour), counted as distinct minutes that
hold at least one valid sample, kept as a 60-bit mask per series.

State per series s: ``hour_start[s]`` open hour (or NO_HOUR), ``last_closed[s]`` the last
hour emitted (a closed hour is never reopened), ``acc_sum``/``acc_n`` sum and count of valid
values, ``minute_mask`` minutes with data. Outputs: series, hour start, mean, minutes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

JIT = {"cache": True, "nogil": True}
HOUR_S = 3600
NO_HOUR = -1

# fmt: off


@njit(**JIT)
def popcount(mask: np.int64) -> int:
    count = 0
    while mask:
        mask &= mask - 1
        count += 1
    return count


@njit(**JIT)
def _emit(s, hour_start, last_closed, acc_sum, acc_n, minute_mask,
          out_series, out_hour, out_mean, out_minutes, k):
    out_series[k] = s
    out_hour[k] = hour_start[s]
    out_minutes[k] = popcount(minute_mask[s])
    out_mean[k] = acc_sum[s] / acc_n[s] if acc_n[s] > 0 else np.nan
    last_closed[s] = hour_start[s]
    hour_start[s] = NO_HOUR
    acc_sum[s] = 0.0
    acc_n[s] = 0
    minute_mask[s] = 0


@njit(**JIT)
def accumulate_hours(series, ts_s, values, valid,
                     hour_start, last_closed, acc_sum, acc_n, minute_mask,
                     out_series, out_hour, out_mean, out_minutes):
    """Add a batch to the open hour of each series; emit every hour that a later sample closes.

    Samples older than a series' open hour, or in an hour already emitted, are late: skipped
    and counted. Output arrays must hold ``len(series)`` rows; returns (rows written, late).
    """
    k = 0
    late = 0
    for i in range(series.shape[0]):
        s = series[i]
        hour = ts_s[i] - ts_s[i] % HOUR_S
        if hour <= last_closed[s] or (hour_start[s] != NO_HOUR and hour < hour_start[s]):
            late += 1
            continue
        if hour_start[s] != NO_HOUR and hour > hour_start[s]:
            _emit(s, hour_start, last_closed, acc_sum, acc_n, minute_mask,
                  out_series, out_hour, out_mean, out_minutes, k)
            k += 1
        hour_start[s] = hour
        if valid[i] and np.isfinite(values[i]):
            acc_sum[s] += values[i]
            acc_n[s] += 1
            minute_mask[s] |= np.int64(1) << ((ts_s[i] - hour) // 60)
    return k, late


@njit(**JIT)
def close_hours(cutoff_s, n_series,
                hour_start, last_closed, acc_sum, acc_n, minute_mask,
                out_series, out_hour, out_mean, out_minutes):
    """Emit every open hour that ends at or before ``cutoff_s``; returns rows written."""
    k = 0
    for s in range(n_series):
        if hour_start[s] != NO_HOUR and hour_start[s] + HOUR_S <= cutoff_s:
            _emit(s, hour_start, last_closed, acc_sum, acc_n, minute_mask,
                  out_series, out_hour, out_mean, out_minutes, k)
            k += 1
    return k


@njit(**JIT)
def exceeds(means, minutes, limits, min_minutes):
    """1 where a valid hourly mean is above its limit, 0 where within, -1 where not judged
    (fewer than ``min_minutes`` of data, or no limit for the series)."""
    out = np.empty(means.shape[0], np.int8)
    for i in range(means.shape[0]):
        if minutes[i] < min_minutes or not np.isfinite(means[i]) or not np.isfinite(limits[i]):
            out[i] = -1
        else:
            out[i] = 1 if means[i] > limits[i] else 0
    return out

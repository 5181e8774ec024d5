"""Numba kernels for the daily statistics of GB 3095-2026 over closed hourly means.

Pure functions over arrays; the Python layer (``_regulatory.py``) owns the state: one
structured array with a record per series (``detect/_state.py``).

- Daily (24-h) mean, GB 3095-2026 §3: arithmetic mean of the hourly means of a natural day;
  Table 4: valid only with >= 20 valid hourly means in that day.
- 8-h moving mean, GB 3095-2026 §3: mean of the 8 consecutive hourly means ending at the
  current hour; Table 4: valid only with >= 6 valid hourly means in the 8 hours.
- Daily maximum 8-h mean, GB 3095-2026 §3: the largest valid 8-h moving mean of a natural
  day, over windows ending at local hours 8..24 (T8..T24, CNEMC convention).

An hour is identified by its start (epoch s UTC) and belongs to the natural day that holds
its start in local time: ``day = floor((hour + offset) / 86400)``. Windows ending at T8..T24
are exactly the windows whose last hour starts at local 07:00..23:00 of the day.

Hours must arrive in increasing order per series (HourlyMeans guarantees it); an hour at or
before the series' last hour, or in a day already closed, is late: skipped and counted.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from detect._kernels import AHEAD, JIT, prefetch_item  # one set of JIT flags for every kernel

HOUR_S = 3600
DAY_S = 86400
NO_TIME = np.iinfo(np.int64).min
WINDOW = 8
FIRST_WINDOW_END = 7  # index (local hour start) of the last hour of window T8

# fmt: off


@njit(**JIT)
def local_day_start(hour_s, offset_s):
    """Local midnight (as epoch s UTC) of the natural day holding the hour that starts at
    ``hour_s``; floor division keeps negative epochs right."""
    return ((hour_s + offset_s) // DAY_S) * DAY_S - offset_s


@njit(**JIT)
def _emit_day(s, r, min_hours, out_series, out_day, out_mean, out_hours, k):
    out_series[k] = s
    out_day[k] = r.day_start
    out_hours[k] = r.acc_n
    out_mean[k] = r.acc_sum / r.acc_n if r.acc_n >= min_hours else np.nan


@njit(**JIT)
def daily_means(series, hour_s, mean, minutes, offset_s, min_minutes, min_hours, state,
                out_series, out_day, out_mean, out_hours):
    """Fold closed hours into each series' open natural day; emit a day when a later day's
    hour arrives. ``state`` holds one record per series (``day_start``, ``last_hour``,
    ``acc_sum``, ``acc_n``). The emitted mean is NaN unless the day holds >= ``min_hours``
    valid hours (minutes >= ``min_minutes`` and a finite mean). Outputs hold
    ``len(series)`` rows; returns (rows written, late)."""
    k = 0
    late = 0
    n = series.shape[0]
    for i in range(n):
        if i + AHEAD < n:
            prefetch_item(state, series[i + AHEAD])
        s = series[i]
        r = state[s]
        h = hour_s[i]
        if r.last_hour != NO_TIME and h <= r.last_hour:
            late += 1
            continue
        day = local_day_start(h, offset_s)
        if r.day_start != NO_TIME and day != r.day_start:
            _emit_day(s, r, min_hours, out_series, out_day, out_mean, out_hours, k)
            k += 1
            r.acc_sum = 0.0
            r.acc_n = 0
        r.day_start = day
        r.last_hour = h
        if minutes[i] >= min_minutes and np.isfinite(mean[i]):
            r.acc_sum += mean[i]
            r.acc_n += 1
    return k, late


@njit(**JIT)
def close_days(cutoff_s, n_series, min_hours, state, out_series, out_day, out_mean, out_hours):
    """Emit every open day that ends at or before ``cutoff_s``; returns rows written."""
    k = 0
    for s in range(n_series):
        r = state[s]
        if r.day_start != NO_TIME and r.day_start + DAY_S <= cutoff_s:
            _emit_day(s, r, min_hours, out_series, out_day, out_mean, out_hours, k)
            k += 1
            r.last_hour = r.day_start + DAY_S - HOUR_S  # the closed day takes no more hours
            r.day_start = NO_TIME
            r.acc_sum = 0.0
            r.acc_n = 0
    return k


@njit(inline="always", **JIT)
def _window_mean(r, h):
    """Mean and count of the valid hourly means in the 8 hours ending with the hour at ``h``.
    The ring holds hour h at slot (h // 3600) % 8; a slot whose stamp is not the expected
    hour is a gap (missing hour)."""
    ring_hour = r.ring_hour
    ring_val = r.ring_val
    last = h // HOUR_S  # one division; slot of hour j back is (last - j) mod 8
    total = 0.0
    n = 0
    for j in range(WINDOW):
        slot = (last - j) & (WINDOW - 1)  # == (last - j) % WINDOW, WINDOW a power of 2
        if ring_hour[slot] == h - j * HOUR_S and np.isfinite(ring_val[slot]):
            total += ring_val[slot]
            n += 1
    return (total / n if n > 0 else np.nan), n


@njit(**JIT)
def _emit_max(s, r, out_series, out_day, out_max, out_windows, out_hours, k):
    out_series[k] = s
    out_day[k] = r.day_start
    out_max[k] = r.best if r.n_windows > 0 else np.nan
    out_windows[k] = r.n_windows
    out_hours[k] = r.n_hours
    r.best = -np.inf
    r.n_windows = 0
    r.n_hours = 0


@njit(**JIT)
def eight_hour_means(series, hour_s, mean, minutes, offset_s, min_minutes, min_window_hours,
                     state, mov_mean, mov_n,
                     out_series, out_day, out_max, out_windows, out_hours):
    """8-h moving mean ending at every closed hour (written to ``mov_mean`` / ``mov_n``,
    one per input row, NaN when fewer than ``min_window_hours`` valid hours or late), and
    the daily maximum over windows T8..T24 of each natural day, emitted when a later day's
    hour arrives. ``state`` holds one record per series: the ring (``ring_hour``,
    ``ring_val``, 8 slots each), ``day_start``, ``last_hour``, ``best``, ``n_windows``,
    ``n_hours``. Returns (day rows written, late)."""
    k = 0
    late = 0
    n = series.shape[0]
    for i in range(n):
        if i + AHEAD < n:
            prefetch_item(state, series[i + AHEAD])
        s = series[i]
        r = state[s]
        h = hour_s[i]
        mov_mean[i] = np.nan
        mov_n[i] = 0
        if r.last_hour != NO_TIME and h <= r.last_hour:
            late += 1
            continue
        day = local_day_start(h, offset_s)
        if r.day_start != NO_TIME and day != r.day_start:
            _emit_max(s, r, out_series, out_day, out_max, out_windows, out_hours, k)
            k += 1
        r.day_start = day
        r.last_hour = h
        slot = (h // HOUR_S) % WINDOW
        r.ring_hour[slot] = h
        ok = minutes[i] >= min_minutes and np.isfinite(mean[i])
        r.ring_val[slot] = mean[i] if ok else np.nan
        if ok:
            r.n_hours += 1
        m, n = _window_mean(r, h)
        mov_n[i] = n
        if n >= min_window_hours:
            mov_mean[i] = m
            if (h - day) // HOUR_S >= FIRST_WINDOW_END:
                r.n_windows += 1
                if m > r.best:
                    r.best = m
    return k, late


@njit(**JIT)
def close_eight_hour_days(cutoff_s, n_series, state,
                          out_series, out_day, out_max, out_windows, out_hours):
    """Emit every open day that ends at or before ``cutoff_s``; returns rows written.
    The ring is kept: a window may still reach back into a closed day."""
    k = 0
    for s in range(n_series):
        r = state[s]
        if r.day_start != NO_TIME and r.day_start + DAY_S <= cutoff_s:
            _emit_max(s, r, out_series, out_day, out_max, out_windows, out_hours, k)
            k += 1
            r.last_hour = r.day_start + DAY_S - HOUR_S  # the closed day takes no more hours
            r.day_start = NO_TIME
    return k

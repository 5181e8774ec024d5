"""Numba kernels for the daily statistics of GB 3095-2026 over closed hourly means.

Pure functions over arrays; the Python layer (``_regulatory.py``) owns the state arrays.

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

from detect._kernels import JIT  # one set of JIT flags for every kernel

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
def _emit_day(s, day_start, acc_sum, acc_n, min_hours,
              out_series, out_day, out_mean, out_hours, k):
    out_series[k] = s
    out_day[k] = day_start[s]
    out_hours[k] = acc_n[s]
    out_mean[k] = acc_sum[s] / acc_n[s] if acc_n[s] >= min_hours else np.nan


@njit(**JIT)
def daily_means(series, hour_s, mean, minutes, offset_s, min_minutes, min_hours,
                day_start, last_hour, acc_sum, acc_n,
                out_series, out_day, out_mean, out_hours):
    """Fold closed hours into each series' open natural day; emit a day when a later day's
    hour arrives. The emitted mean is NaN unless the day holds >= ``min_hours`` valid hours
    (minutes >= ``min_minutes`` and a finite mean). Outputs hold ``len(series)`` rows;
    returns (rows written, late)."""
    k = 0
    late = 0
    for i in range(series.shape[0]):
        s = series[i]
        h = hour_s[i]
        if last_hour[s] != NO_TIME and h <= last_hour[s]:
            late += 1
            continue
        day = local_day_start(h, offset_s)
        if day_start[s] != NO_TIME and day != day_start[s]:
            _emit_day(s, day_start, acc_sum, acc_n, min_hours,
                      out_series, out_day, out_mean, out_hours, k)
            k += 1
            acc_sum[s] = 0.0
            acc_n[s] = 0
        day_start[s] = day
        last_hour[s] = h
        if minutes[i] >= min_minutes and np.isfinite(mean[i]):
            acc_sum[s] += mean[i]
            acc_n[s] += 1
    return k, late


@njit(**JIT)
def close_days(cutoff_s, n_series, min_hours, day_start, last_hour, acc_sum, acc_n,
               out_series, out_day, out_mean, out_hours):
    """Emit every open day that ends at or before ``cutoff_s``; returns rows written."""
    k = 0
    for s in range(n_series):
        if day_start[s] != NO_TIME and day_start[s] + DAY_S <= cutoff_s:
            _emit_day(s, day_start, acc_sum, acc_n, min_hours,
                      out_series, out_day, out_mean, out_hours, k)
            k += 1
            last_hour[s] = day_start[s] + DAY_S - HOUR_S  # the closed day takes no more hours
            day_start[s] = NO_TIME
            acc_sum[s] = 0.0
            acc_n[s] = 0
    return k


@njit(**JIT)
def _window_mean(s, h, ring_hour, ring_val):
    """Mean and count of the valid hourly means in the 8 hours ending with the hour at ``h``.
    The ring holds hour h at slot (h // 3600) % 8; a slot whose stamp is not the expected
    hour is a gap (missing hour)."""
    total = 0.0
    n = 0
    for j in range(WINDOW):
        hj = h - j * HOUR_S
        slot = (hj // HOUR_S) % WINDOW
        if ring_hour[s, slot] == hj and np.isfinite(ring_val[s, slot]):
            total += ring_val[s, slot]
            n += 1
    return (total / n if n > 0 else np.nan), n


@njit(**JIT)
def _emit_max(s, day_start, best, n_windows, n_hours,
              out_series, out_day, out_max, out_windows, out_hours, k):
    out_series[k] = s
    out_day[k] = day_start[s]
    out_max[k] = best[s] if n_windows[s] > 0 else np.nan
    out_windows[k] = n_windows[s]
    out_hours[k] = n_hours[s]
    best[s] = -np.inf
    n_windows[s] = 0
    n_hours[s] = 0


@njit(**JIT)
def eight_hour_means(series, hour_s, mean, minutes, offset_s, min_minutes, min_window_hours,
                     ring_hour, ring_val, day_start, last_hour, best, n_windows, n_hours,
                     mov_mean, mov_n,
                     out_series, out_day, out_max, out_windows, out_hours):
    """8-h moving mean ending at every closed hour (written to ``mov_mean`` / ``mov_n``,
    one per input row, NaN when fewer than ``min_window_hours`` valid hours or late), and
    the daily maximum over windows T8..T24 of each natural day, emitted when a later day's
    hour arrives. Returns (day rows written, late)."""
    k = 0
    late = 0
    for i in range(series.shape[0]):
        s = series[i]
        h = hour_s[i]
        mov_mean[i] = np.nan
        mov_n[i] = 0
        if last_hour[s] != NO_TIME and h <= last_hour[s]:
            late += 1
            continue
        day = local_day_start(h, offset_s)
        if day_start[s] != NO_TIME and day != day_start[s]:
            _emit_max(s, day_start, best, n_windows, n_hours,
                      out_series, out_day, out_max, out_windows, out_hours, k)
            k += 1
        day_start[s] = day
        last_hour[s] = h
        slot = (h // HOUR_S) % WINDOW
        ring_hour[s, slot] = h
        ok = minutes[i] >= min_minutes and np.isfinite(mean[i])
        ring_val[s, slot] = mean[i] if ok else np.nan
        if ok:
            n_hours[s] += 1
        m, n = _window_mean(s, h, ring_hour, ring_val)
        mov_n[i] = n
        if n >= min_window_hours:
            mov_mean[i] = m
            if (h - day) // HOUR_S >= FIRST_WINDOW_END:
                n_windows[s] += 1
                if m > best[s]:
                    best[s] = m
    return k, late


@njit(**JIT)
def close_eight_hour_days(cutoff_s, n_series, day_start, last_hour, best, n_windows, n_hours,
                          out_series, out_day, out_max, out_windows, out_hours):
    """Emit every open day that ends at or before ``cutoff_s``; returns rows written.
    The ring is kept: a window may still reach back into a closed day."""
    k = 0
    for s in range(n_series):
        if day_start[s] != NO_TIME and day_start[s] + DAY_S <= cutoff_s:
            _emit_max(s, day_start, best, n_windows, n_hours,
                      out_series, out_day, out_max, out_windows, out_hours, k)
            k += 1
            last_hour[s] = day_start[s] + DAY_S - HOUR_S  # the closed day takes no more hours
            day_start[s] = NO_TIME
    return k

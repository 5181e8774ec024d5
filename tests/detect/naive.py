"""Slow, obvious reference implementations of the detector's statistics, in plain Python.

The kernels in detect/_kernels.py are compared with these on random inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

HOUR_S = 3600
MIN_MINUTES = 45  # GB 3095-2026 Table 4: a valid hourly mean needs >= 45 minutes of data


class HourMean(NamedTuple):
    series: int
    hour_start_s: int
    mean: float  # NaN when the hour holds no valid finite sample
    minutes: int  # distinct minutes holding at least one valid finite sample

    @property
    def valid(self) -> bool:
        return self.minutes >= MIN_MINUTES


def hour_of(ts_s: int) -> int:
    return ts_s - ts_s % HOUR_S


def drop_late(series: Sequence[int], ts_s: Sequence[int]) -> tuple[list[int], int]:
    """Indices of samples in arrival order that are not late, and how many were late.

    A sample is late when its hour is older than the newest hour already seen for its
    series (that series' open hour), so hours only move forward per series.
    """
    newest: dict[int, int] = {}
    kept: list[int] = []
    late = 0
    for i, (s, t) in enumerate(zip(series, ts_s, strict=True)):
        hour = hour_of(t)
        if s in newest and hour < newest[s]:
            late += 1
            continue
        newest[s] = max(newest.get(s, hour), hour)
        kept.append(i)
    return kept, late


def hourly_means(
    series: Sequence[int],
    ts_s: Sequence[int],
    value: Sequence[float],
    valid: Sequence[bool],
) -> tuple[dict[tuple[int, int], HourMean], int]:
    """Mean and minute coverage of every (series, UTC hour) that received a sample.

    Returns the hours keyed by (series, hour start) and the number of late samples.
    """
    kept, late = drop_late(series, ts_s)
    groups: dict[tuple[int, int], list[int]] = {}
    for i in kept:
        groups.setdefault((series[i], hour_of(ts_s[i])), []).append(i)
    out: dict[tuple[int, int], HourMean] = {}
    for (s, hour), rows in groups.items():
        good = [i for i in rows if valid[i] and math.isfinite(value[i])]
        total = 0.0
        for i in good:  # in arrival order, as a streaming sum adds them
            total += value[i]
        mean = total / len(good) if good else math.nan
        minutes = len({(ts_s[i] - hour) // 60 for i in good})
        out[(s, hour)] = HourMean(s, hour, mean, minutes)
    return out, late

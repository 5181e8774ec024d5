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


# --- daily statistics (GB 3095-2026 §3, Table 4), reference for detect/_regulatory.py ---

DAY_S = 86400
MIN_DAY_HOURS = 20  # Table 4: a valid daily mean needs >= 20 valid hourly means
MIN_WINDOW_HOURS = 6  # Table 4: a valid O3 8-h mean needs >= 6 valid hourly means


def local_day(hour_start_s: int, offset_s: int) -> int:
    """Local midnight (epoch s) of the natural day holding the hour starting at hour_start_s."""
    return (hour_start_s + offset_s) // DAY_S * DAY_S - offset_s


def in_order(hours: Sequence[HourMean]) -> tuple[list[HourMean], int]:
    """The hours kept by the streaming stages: per series strictly increasing hour starts."""
    last: dict[int, int] = {}
    kept: list[HourMean] = []
    late = 0
    for h in hours:
        if h.series in last and h.hour_start_s <= last[h.series]:
            late += 1
            continue
        last[h.series] = h.hour_start_s
        kept.append(h)
    return kept, late


def hour_ok(h: HourMean, min_minutes: int = MIN_MINUTES) -> bool:
    return h.minutes >= min_minutes and math.isfinite(h.mean)


def daily_means(
    hours: Sequence[HourMean], offset_s: int, min_hours: int = MIN_DAY_HOURS
) -> dict[tuple[int, int], tuple[float, int]]:
    """(series, local day start) -> (mean or NaN when invalid, valid hourly means)."""
    kept, _ = in_order(hours)
    groups: dict[tuple[int, int], list[float]] = {}
    for h in kept:
        values = groups.setdefault((h.series, local_day(h.hour_start_s, offset_s)), [])
        if hour_ok(h):
            values.append(h.mean)
    out: dict[tuple[int, int], tuple[float, int]] = {}
    for key, values in groups.items():
        total = 0.0
        for v in values:
            total += v
        out[key] = (total / len(values) if len(values) >= min_hours else math.nan, len(values))
    return out


def moving_8h(
    hours: Sequence[HourMean], min_window_hours: int = MIN_WINDOW_HOURS
) -> dict[tuple[int, int], tuple[float, int]]:
    """(series, hour start) -> (8-h mean ending with that hour or NaN, valid hours in it)."""
    kept, _ = in_order(hours)
    good = {(h.series, h.hour_start_s): h.mean for h in kept if hour_ok(h)}
    out: dict[tuple[int, int], tuple[float, int]] = {}
    for h in kept:
        window = [
            good[(h.series, h.hour_start_s - j * HOUR_S)]
            for j in range(7, -1, -1)
            if (h.series, h.hour_start_s - j * HOUR_S) in good
        ]
        total = 0.0
        for v in window:
            total += v
        mean = total / len(window) if len(window) >= min_window_hours else math.nan
        out[(h.series, h.hour_start_s)] = (mean, len(window))
    return out


def daily_max_8h(
    hours: Sequence[HourMean], offset_s: int, min_window_hours: int = MIN_WINDOW_HOURS
) -> dict[tuple[int, int], tuple[float, int]]:
    """(series, local day) -> (max of valid 8-h means ending at local T8..T24 or NaN, count)."""
    kept, _ = in_order(hours)
    moving = moving_8h(kept, min_window_hours)
    out: dict[tuple[int, int], list[float]] = {}
    for h in kept:
        day = local_day(h.hour_start_s, offset_s)
        windows = out.setdefault((h.series, day), [])
        mean, _n = moving[(h.series, h.hour_start_s)]
        ends_at = (h.hour_start_s - day) // HOUR_S + 1  # local hour label T the window ends at
        if 8 <= ends_at <= 24 and not math.isnan(mean):
            windows.append(mean)
    return {k: (max(v) if v else math.nan, len(v)) for k, v in out.items()}


# --- HJ 633 IAQI, reference for detect/_aqi.py ---

IAQI_LEVELS = (0, 50, 100, 150, 200, 300, 400, 500)


def iaqi(breakpoints: Sequence[float], c: float) -> float:
    """HJ 633-2012 §4.2 for one concentration over one full row of Table 1, rounded up
    (§6.2); NaN for a missing or negative value; 500 above the top of the row."""
    if math.isnan(c) or c < 0:
        return math.nan
    if c >= breakpoints[-1]:
        return float(IAQI_LEVELS[-1])
    for i in range(1, len(breakpoints)):
        lo, hi = breakpoints[i - 1], breakpoints[i]
        if c <= hi:
            i_lo, i_hi = IAQI_LEVELS[i - 1], IAQI_LEVELS[i]
            exact = (i_hi - i_lo) / (hi - lo) * (c - lo) + i_lo
            return float(math.ceil(round(exact, 9)))
    raise AssertionError("unreachable")


# --- anomaly rules (detect/_anomaly_kernels.py), one series at a time ----------------------

SD_PER_MAD = math.sqrt(math.pi / 2.0)


class AnomalyParams(NamedTuple):
    """The settings of the anomaly rules for one series (see detect.AnomalyConfig)."""

    low: float
    high: float
    rate_max_per_s: float
    sd_floor: float
    spike_k: float
    tau_level_s: float
    tau_scale_s: float
    warmup: int
    cusum_k: float
    cusum_h: float
    cusum_clip: float
    relearn: int
    stuck_n: int
    stuck_eps: float


class NaiveAnomaly:
    """The anomaly rules for one series, written out plainly: ``step`` takes one sample and
    returns (flags, score). Bits: 1 spike, 2 level shift, 4 stuck, 8 implausible, 16 rate,
    32 missing, 64 out of order."""

    def __init__(self, p: AnomalyParams) -> None:
        self.p = p
        self.level = 0.0
        self.scale = 0.0
        self.n_seen = 0  # samples learnt since the start
        self.n_level = 0  # samples learnt since the level last restarted
        self.base_t: int | None = None
        self.cpos = 0.0
        self.cneg = 0.0
        self.last_t: int | None = None
        self.prev: tuple[int, float] | None = None  # time and value of the last plausible one
        self.run = 0

    def learn(self, t: int, x: float) -> None:
        self.n_seen += 1
        self.n_level += 1
        if self.n_seen == 1:
            self.level, self.scale, self.base_t = x, 0.0, t
            return
        assert self.base_t is not None
        dt = float(t - self.base_t)
        a_level = max(1.0 - math.exp(-dt / self.p.tau_level_s), 1.0 / self.n_level)
        a_scale = 1.0 - math.exp(-dt / self.p.tau_scale_s)
        if self.n_seen <= self.p.warmup:
            a_scale = max(a_scale, 1.0 / (self.n_seen - 1))
        else:
            a_scale = min(a_scale, 1.0 / self.p.warmup)  # no one sample sets the scale
        r = x - self.level
        self.level += a_level * r
        if x > self.p.low:  # a censored value moves the level only
            self.scale += a_scale * (abs(r) - self.scale)
        self.base_t = t

    def step(self, t: int, x: float, valid: bool) -> tuple[int, float]:
        p = self.p
        if self.last_t is not None and t <= self.last_t:
            return 64, 0.0
        self.last_t = t
        if not valid or not math.isfinite(x):
            return 32, 0.0
        if x < p.low or x > p.high:
            return 8, 1.0
        flags, ratios = 0, [0.0]
        if self.prev is not None:
            step = abs(x - self.prev[1])
            limit = float(t - self.prev[0]) * p.rate_max_per_s
            ratios.append(step / limit)
            flags |= 16 if step > limit else 0  # a rule fires on its numerator
            self.run = self.run + 1 if step <= p.stuck_eps and x > p.low else 1
        else:
            self.run = 1
        self.prev = (t, x)
        ratios.append((self.run - 1) / (p.stuck_n - 1.0))
        flags |= 4 if self.run >= p.stuck_n else 0
        censored = x <= p.low
        if self.n_seen >= p.warmup and self.n_level >= p.relearn:
            # censored: z is an upper bound of the true z; it feeds the CUSUM, not the spike
            z = (x - self.level) / max(SD_PER_MAD * self.scale, p.sd_floor)
            if not censored:
                ratios.append(abs(z) / p.spike_k)
                flags |= 1 if abs(z) > p.spike_k else 0
            zc = min(max(z, -p.cusum_clip), p.cusum_clip)
            self.cpos = max(0.0, self.cpos + zc - p.cusum_k)
            self.cneg = max(0.0, self.cneg - zc - p.cusum_k)
            ratios.append(max(self.cpos, self.cneg) / p.cusum_h)
            if max(self.cpos, self.cneg) > p.cusum_h:
                flags |= 2
                self.cpos = self.cneg = 0.0
                self.n_level, self.level, self.base_t = 1, x, t
        if flags & (1 | 2 | 4 | 16) == 0:
            self.learn(t, x)
        r = max(ratios)
        return flags, r / (1.0 + r)


def anomaly_flags(
    series: Sequence[int],
    ts_s: Sequence[int],
    value: Sequence[float],
    valid: Sequence[bool],
    params: Sequence[AnomalyParams],
) -> tuple[list[int], list[float]]:
    """Flags and scores of every sample, in arrival order; ``params[s]`` for series ``s``."""
    state = [NaiveAnomaly(p) for p in params]
    flags, scores = [], []
    for s, t, x, ok in zip(series, ts_s, value, valid, strict=True):
        f, sc = state[s].step(t, x, ok)
        flags.append(f)
        scores.append(sc)
    return flags, scores

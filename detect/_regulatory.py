"""Daily statistics of GB 3095-2026 from closed hourly means: per-series state arrays.

``DailyMeans`` gives the 24-h mean of each natural day (§3; Table 4: >= 20 valid hourly
means). ``EightHourMeans`` gives the O3 8-h moving means (§3; Table 4: >= 6 valid hourly
means in 8) and the daily maximum 8-h mean over windows T8..T24 of each natural day.

The natural day is local: callers pass the county's UTC offset in seconds. China has kept
one offset (UTC+8, no daylight saving) since 1991, so a fixed offset per county is exact for
Asia/Shanghai over every date a monitoring record covers; a zone with DST would need the
offset per hour instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from detect import _regulatory_kernels as _k
from detect._hourly import ClosedHours
from detect._state import SeriesState

MIN_HOUR_MINUTES = 45  # GB 3095-2026 Table 4: a valid hourly mean needs >= 45 min
MIN_DAY_HOURS = 20  # GB 3095-2026 Table 4: a valid daily mean needs >= 20 hourly means
MIN_WINDOW_HOURS = 6  # GB 3095-2026 Table 4: a valid O3 8-h mean needs >= 6 hourly means


@dataclass(frozen=True, slots=True)
class ClosedDays:
    """Daily means closed by one call, as columns. ``mean`` is NaN when the day is invalid
    (fewer valid hourly means than the Table 4 minimum); ``valid_hours`` counts them."""

    series: np.ndarray  # int64
    day_start_s: np.ndarray  # int64, local midnight as epoch s UTC
    mean: np.ndarray  # float64
    valid_hours: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.series.shape[0])


@dataclass(frozen=True, slots=True)
class ClosedMax8h:
    """Daily maximum 8-h means closed by one call. ``max8h`` is NaN when no window T8..T24
    of the day was valid; ``valid_windows`` counts the valid ones, ``valid_hours`` the valid
    hourly means of the day."""

    series: np.ndarray
    day_start_s: np.ndarray
    max8h: np.ndarray
    valid_windows: np.ndarray
    valid_hours: np.ndarray

    def __len__(self) -> int:
        return int(self.series.shape[0])


@dataclass(frozen=True, slots=True)
class MovingMeans:
    """The 8-h moving mean ending at each input hour, row for row with the input
    (``mean`` NaN when the window holds fewer than 6 valid hours, or the hour was late)."""

    series: np.ndarray
    hour_start_s: np.ndarray
    mean: np.ndarray
    valid_hours: np.ndarray

    def __len__(self) -> int:
        return int(self.series.shape[0])


class _SeriesState(SeriesState):
    def _check(self, closed: ClosedHours) -> None:
        if len(closed) and (
            int(closed.series.min()) < 0 or int(closed.series.max()) >= self.n_series
        ):
            raise ValueError("closed hours name a series this state does not know")


def _day_outputs(n: int) -> tuple[np.ndarray, ...]:
    return (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.float64),
            np.empty(n, np.int64))  # fmt: skip


class DailyMeans(_SeriesState):
    """24-h means per natural day, GB 3095-2026 §3 and Table 4, streaming per series.

    Args:
        capacity: initial number of series the arrays hold (grown by doubling).
        min_hours: valid hourly means a valid day needs (Table 4: 20).
        min_hour_minutes: minutes of data a valid hourly mean needs (Table 4: 45).
    """

    _STATE: ClassVar[dict[str, tuple[type, float, int]]] = {
        "day_start": (np.int64, _k.NO_TIME, 0),
        "last_hour": (np.int64, _k.NO_TIME, 0),
        "acc_sum": (np.float64, 0.0, 0),
        "acc_n": (np.int64, 0, 0),
    }

    def __init__(
        self,
        capacity: int = 1024,
        min_hours: int = MIN_DAY_HOURS,
        min_hour_minutes: int = MIN_HOUR_MINUTES,
    ) -> None:
        self.min_hours = min_hours
        self.min_hour_minutes = min_hour_minutes
        super().__init__(capacity)

    def update(self, closed: ClosedHours, utc_offset_s: int) -> ClosedDays:
        """Fold closed hourly means in; return the days that a later day's hour closed."""
        self._check(closed)
        out = _day_outputs(len(closed))
        k, late = _k.daily_means(
            closed.series, closed.hour_start_s, closed.mean, closed.minutes,
            int(utc_offset_s), self.min_hour_minutes, self.min_hours, self.rows, *out,
        )  # fmt: skip
        self.late += late
        return ClosedDays(*(a[:k] for a in out))

    def close_until(self, cutoff_s: int) -> ClosedDays:
        """Close every open day that ends by ``cutoff_s`` (end of stream, quiet period)."""
        out = _day_outputs(self.n_series)
        k = _k.close_days(int(cutoff_s), self.n_series, self.min_hours, self.rows, *out)
        return ClosedDays(*(a[:k] for a in out))


def _max_outputs(n: int) -> tuple[np.ndarray, ...]:
    return (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.float64),
            np.empty(n, np.int64), np.empty(n, np.int64))  # fmt: skip


class EightHourMeans(_SeriesState):
    """O3 8-h moving means and the daily maximum 8-h mean, GB 3095-2026 §3 and Table 4.

    Keeps a ring of the last 8 hourly means per series. The daily maximum takes the valid
    windows ending at local hours 8..24 (T8..T24, CNEMC), i.e. the windows lying inside the
    natural day.

    Args:
        capacity: initial number of series the arrays hold (grown by doubling).
        min_window_hours: valid hourly means a valid 8-h mean needs (Table 4: 6).
        min_hour_minutes: minutes of data a valid hourly mean needs (Table 4: 45).
    """

    _STATE: ClassVar[dict[str, tuple[type, float, int]]] = {
        "ring_hour": (np.int64, _k.NO_TIME, _k.WINDOW),
        "ring_val": (np.float64, np.nan, _k.WINDOW),
        "day_start": (np.int64, _k.NO_TIME, 0),
        "last_hour": (np.int64, _k.NO_TIME, 0),
        "best": (np.float64, -np.inf, 0),
        "n_windows": (np.int64, 0, 0),
        "n_hours": (np.int64, 0, 0),
    }

    def __init__(
        self,
        capacity: int = 1024,
        min_window_hours: int = MIN_WINDOW_HOURS,
        min_hour_minutes: int = MIN_HOUR_MINUTES,
    ) -> None:
        self.min_window_hours = min_window_hours
        self.min_hour_minutes = min_hour_minutes
        super().__init__(capacity)

    def update(self, closed: ClosedHours, utc_offset_s: int) -> tuple[MovingMeans, ClosedMax8h]:
        """Fold closed hourly means in; return the 8-h moving mean ending at each of them
        and the days that a later day's hour closed."""
        self._check(closed)
        n = len(closed)
        mov_mean = np.empty(n, np.float64)
        mov_n = np.empty(n, np.int64)
        out = _max_outputs(n)
        k, late = _k.eight_hour_means(
            closed.series, closed.hour_start_s, closed.mean, closed.minutes,
            int(utc_offset_s), self.min_hour_minutes, self.min_window_hours,
            self.rows, mov_mean, mov_n, *out,
        )  # fmt: skip
        self.late += late
        moving = MovingMeans(closed.series.copy(), closed.hour_start_s.copy(), mov_mean, mov_n)
        return moving, ClosedMax8h(*(a[:k] for a in out))

    def close_until(self, cutoff_s: int) -> ClosedMax8h:
        """Close every open day that ends by ``cutoff_s``."""
        out = _max_outputs(self.n_series)
        k = _k.close_eight_hour_days(int(cutoff_s), self.n_series, self.rows, *out)
        return ClosedMax8h(*(a[:k] for a in out))

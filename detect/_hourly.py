"""State of the hourly means: per-series arrays, preallocated and grown by doubling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detect import _kernels
from detect._batch import ReadingBatch


@dataclass(frozen=True, slots=True)
class ClosedHours:
    """Hourly means closed by one update, as columns."""

    series: np.ndarray
    hour_start_s: np.ndarray
    mean: np.ndarray
    minutes: np.ndarray

    def __len__(self) -> int:
        return int(self.series.shape[0])


class HourlyMeans:
    """Open-hour accumulators for every series; ``late`` counts samples that came too late."""

    def __init__(self, capacity: int = 1024) -> None:
        self.n_series = 0
        self.late = 0
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        old = getattr(self, "hour_start", None)
        hour_start = np.full(capacity, _kernels.NO_HOUR, np.int64)
        acc_sum = np.zeros(capacity, np.float64)
        acc_n = np.zeros(capacity, np.int64)
        minute_mask = np.zeros(capacity, np.int64)
        if old is not None:
            n = self.n_series
            hour_start[:n] = self.hour_start[:n]
            acc_sum[:n] = self.acc_sum[:n]
            acc_n[:n] = self.acc_n[:n]
            minute_mask[:n] = self.minute_mask[:n]
        self.hour_start, self.acc_sum, self.acc_n, self.minute_mask = (
            hour_start,
            acc_sum,
            acc_n,
            minute_mask,
        )

    def add_series(self) -> int:
        if self.n_series == self.hour_start.shape[0]:
            self._alloc(2 * self.n_series)
        self.n_series += 1
        return self.n_series - 1

    def _state(self) -> tuple[np.ndarray, ...]:
        return self.hour_start, self.acc_sum, self.acc_n, self.minute_mask

    @staticmethod
    def _outputs(n: int) -> tuple[np.ndarray, ...]:
        return (
            np.empty(n, np.int64),
            np.empty(n, np.int64),
            np.empty(n, np.float64),
            np.empty(n, np.int64),
        )

    def update(self, batch: ReadingBatch) -> ClosedHours:
        if len(batch) and int(batch.series.max()) >= self.n_series:
            raise ValueError("batch names a series the detector does not know")
        out = self._outputs(len(batch))
        k, late = _kernels.accumulate_hours(
            batch.series, batch.ts_s, batch.value, batch.valid, *self._state(), *out
        )
        self.late += late
        return ClosedHours(*(a[:k] for a in out))

    def close_until(self, cutoff_s: int) -> ClosedHours:
        out = self._outputs(self.n_series)
        k = _kernels.close_hours(cutoff_s, self.n_series, *self._state(), *out)
        return ClosedHours(*(a[:k] for a in out))

"""State of the hourly means: per-series arrays, preallocated and grown by doubling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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

    # state array -> (dtype, initial value); the order is the kernels' argument order
    _STATE: ClassVar[dict[str, tuple[type, float]]] = {
        "hour_start": (np.int64, _kernels.NO_HOUR),
        "last_closed": (np.int64, _kernels.NO_HOUR),
        "acc_sum": (np.float64, 0.0),
        "acc_n": (np.int64, 0),
        "minute_mask": (np.int64, 0),
    }

    def _alloc(self, capacity: int) -> None:
        n = self.n_series
        for name, (dtype, initial) in self._STATE.items():
            grown = np.full(capacity, initial, dtype)
            if n:
                grown[:n] = getattr(self, name)[:n]
            setattr(self, name, grown)

    def add_series(self) -> int:
        if self.n_series == self.hour_start.shape[0]:
            self._alloc(2 * self.n_series)
        self.n_series += 1
        return self.n_series - 1

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The used part of every state array, plus the late counter (for checkpoints)."""
        arrays = {name: getattr(self, name)[: self.n_series].copy() for name in self._STATE}
        arrays["late"] = np.array([self.late], np.int64)
        return arrays

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        n = int(arrays["hour_start"].shape[0])
        self.n_series = 0
        self._alloc(max(n, 16))
        for name in self._STATE:
            getattr(self, name)[:n] = arrays[name]
        self.n_series = n
        self.late = int(arrays["late"][0])

    def _state(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, name) for name in self._STATE)

    @staticmethod
    def _outputs(n: int) -> tuple[np.ndarray, ...]:
        return (
            np.empty(n, np.int64),
            np.empty(n, np.int64),
            np.empty(n, np.float64),
            np.empty(n, np.int64),
        )

    def update(self, batch: ReadingBatch) -> ClosedHours:
        if len(batch) and (int(batch.series.min()) < 0 or int(batch.series.max()) >= self.n_series):
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

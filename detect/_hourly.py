"""State of the hourly means: one record per series, preallocated and grown by doubling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from detect import _kernels
from detect._batch import ReadingBatch
from detect._state import SeriesState


@dataclass(frozen=True, slots=True)
class ClosedHours:
    """Hourly means closed by one update, as columns."""

    series: np.ndarray
    hour_start_s: np.ndarray
    mean: np.ndarray
    minutes: np.ndarray

    def __len__(self) -> int:
        return int(self.series.shape[0])


class HourlyMeans(SeriesState):
    """Open-hour accumulators for every series; ``late`` counts samples that came too late."""

    # record field -> (dtype, initial value, columns)
    _STATE: ClassVar[dict[str, tuple[type, float, int]]] = {
        "hour_start": (np.int64, _kernels.NO_HOUR, 0),
        "last_closed": (np.int64, _kernels.NO_HOUR, 0),
        "acc_sum": (np.float64, 0.0, 0),
        "acc_n": (np.int64, 0, 0),
        "minute_mask": (np.int64, 0, 0),
    }

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
            _kernels.as_index(batch.series),
            batch.ts_s,
            batch.value,
            batch.valid,
            self.rows,
            *out,
        )
        self.late += late
        return ClosedHours(*(a[:k] for a in out))

    def close_until(self, cutoff_s: int) -> ClosedHours:
        out = self._outputs(self.n_series)
        k = _kernels.close_hours(cutoff_s, self.n_series, self.rows, *out)
        return ClosedHours(*(a[:k] for a in out))

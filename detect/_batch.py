"""The columnar batch every detector consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Readings as columns. ``series`` indexes the detector's series (``Detector.series_id``);
    ``valid`` is False for readings whose quality flag excludes them from statistics."""

    series: np.ndarray  # int64
    ts_s: np.ndarray  # int64, sample time, epoch seconds UTC
    value: np.ndarray  # float64, NaN when the sensor gave no value
    valid: np.ndarray  # bool

    def __post_init__(self) -> None:
        n = self.series.shape[0]
        if not (self.ts_s.shape[0] == self.value.shape[0] == self.valid.shape[0] == n):
            raise ValueError("batch columns differ in length")

    def __len__(self) -> int:
        return int(self.series.shape[0])

    def rows(self, lo: int = 0, hi: int | None = None) -> ReadingBatch:
        """Rows ``lo`` to ``hi`` as a batch of views (no copy)."""
        return ReadingBatch(
            self.series[lo:hi], self.ts_s[lo:hi], self.value[lo:hi], self.valid[lo:hi]
        )

    @classmethod
    def from_lists(
        cls, series: list[int], ts_s: list[int], value: list[float], valid: list[bool]
    ) -> ReadingBatch:
        return cls(
            np.asarray(series, np.int64),
            np.asarray(ts_s, np.int64),
            np.asarray(value, np.float64),
            np.asarray(valid, np.bool_),
        )

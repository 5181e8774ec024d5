"""Per-series state arrays shared by the detector's streaming stages.

A stage lists its arrays in ``_STATE`` (name -> dtype, initial value, columns or 0 for 1-D),
in the order its kernels take them; this base class preallocates them, grows them by
doubling and copies their used part out and back in for checkpoints.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np


class SeriesState:
    """Per-series state arrays, preallocated and grown by doubling."""

    # name -> (dtype, initial value, columns or 0 for a 1-D array)
    _STATE: ClassVar[dict[str, tuple[type, float, int]]] = {}

    def __init__(self, capacity: int = 1024) -> None:
        self.n_series = 0
        self.late = 0
        self._capacity = 0
        self._alloc(max(capacity, 1))

    def _alloc(self, capacity: int) -> None:
        n = self.n_series
        for name, (dtype, initial, cols) in self._STATE.items():
            shape = (capacity, cols) if cols else (capacity,)
            grown = np.full(shape, initial, dtype)
            if n:
                grown[:n] = getattr(self, name)[:n]
            setattr(self, name, grown)
        self._capacity = capacity

    def add_series(self) -> int:
        if self.n_series == self._capacity:
            self._alloc(2 * self._capacity)
        self.n_series += 1
        return self.n_series - 1

    def _state(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, name) for name in self._STATE)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The used part of every state array, plus the late counter (for checkpoints)."""
        arrays = {name: getattr(self, name)[: self.n_series].copy() for name in self._STATE}
        arrays["late"] = np.array([self.late], np.int64)
        return arrays

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        n = int(arrays[next(iter(self._STATE))].shape[0])
        self.n_series = 0
        self._alloc(max(n, 16))
        for name in self._STATE:
            getattr(self, name)[:n] = arrays[name]
        self.n_series = n
        self.late = int(arrays["late"][0])

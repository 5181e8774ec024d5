"""Per-series state shared by the detector's streaming stages, packed one record per series.

A stage lists its fields in ``_STATE`` (name -> dtype, initial value, columns or 0 for a
scalar). They are stored as one structured array, ``rows``, with one record per series: the
kernels are handed ``rows`` and a sample touches one or two cache lines instead of one per
field (series arrive in random order, so separate arrays cost a cache miss per field). Each
field is also an attribute (``stage.acc_n``: a view of that column, writable). This base
class preallocates the records, grows them by doubling and copies their used part out and
back in, one array per field, for checkpoints.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np


def _column(name: str) -> property:
    return property(lambda self: self.rows[name], doc=f"The ``{name}`` field of every series.")


def record_dtype(fields: dict[str, tuple[type, float, int]]) -> np.dtype:
    """One record per series: the fields in order, each ``(columns,)`` wide or a scalar."""
    return np.dtype([(name, dtype, (cols,) if cols else ()) for name, (dtype, _, cols) in
                     fields.items()])  # fmt: skip


def new_records(fields: dict[str, tuple[type, float, int]], capacity: int,
                line: int = 0) -> np.ndarray:  # fmt: skip
    """``capacity`` records, every field at its initial value. ``line``: pad each record
    to a multiple of it and align the array to it (a 64-byte record then spans one cache
    line, not two)."""
    dtype = record_dtype(fields)
    if line:
        itemsize = -(-dtype.itemsize // line) * line
        dtype = np.dtype({"names": list(dtype.names), "itemsize": itemsize,
                          "formats": [dtype.fields[f][0] for f in dtype.names],
                          "offsets": [dtype.fields[f][1] for f in dtype.names]})  # fmt: skip
        raw = np.empty(capacity * itemsize + line, np.uint8)
        skip = -raw.ctypes.data % line
        rows = raw[skip : skip + capacity * itemsize].view(dtype)
    else:
        rows = np.empty(capacity, dtype)
    for name, (_, initial, _) in fields.items():
        rows[name] = initial
    return rows


class SeriesState:
    """Per-series state records, preallocated and grown by doubling."""

    # name -> (dtype, initial value, columns or 0 for a scalar)
    _STATE: ClassVar[dict[str, tuple[type, float, int]]] = {}
    rows: np.ndarray

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls._STATE:  # each field readable as before, as a column view
            setattr(cls, name, _column(name))

    def __init__(self, capacity: int = 1024) -> None:
        self.n_series = 0
        self.late = 0
        self._alloc(max(capacity, 1))

    def _alloc(self, capacity: int) -> None:
        grown = new_records(self._STATE, capacity)
        if self.n_series:
            grown[: self.n_series] = self.rows[: self.n_series]
        self.rows = grown

    def add_series(self) -> int:
        if self.n_series == self.rows.shape[0]:
            self._alloc(2 * self.rows.shape[0])
        self.n_series += 1
        return self.n_series - 1

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The used part of every field as its own array, plus the late counter (for
        checkpoints: the names, dtypes and shapes do not depend on the packing)."""
        arrays = {name: self.rows[name][: self.n_series].copy() for name in self._STATE}
        arrays["late"] = np.array([self.late], np.int64)
        return arrays

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        n = int(arrays[next(iter(self._STATE))].shape[0])
        self.n_series = 0
        self._alloc(max(n, 16))
        for name in self._STATE:
            self.rows[name][:n] = arrays[name]
        self.n_series = n
        self.late = int(arrays["late"][0])

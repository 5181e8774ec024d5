"""Slow drift of a node against its neighbours: the node minus the median of its group.

A drifting sensor looks like weather from its own series alone; against its neighbours
(the other nodes of its township measuring the same quantity) it does not, because most of
the weather is common to a county. Per sample of series ``s`` in group ``g``:

    d = x - median(latest value of every other member of g, no older than fresh_s)
    dev = EWMA of d (time constant tau_fast_s)
    offset, scale = EWMA of d and of |d - offset| (tau_slow_s), learnt only while unflagged
    DRIFT when |dev - offset| / (sqrt(pi/2) * scale) > k, after ``warmup`` scored samples

Samples that another rule flagged (``AnomalyFlags``) are ignored (a spike or a stuck value
would otherwise pass for drift); a sample with fewer than ``min_neighbours`` fresh neighbours
serves as its neighbours' reference but is not scored. Known limits: once flagged, the
offset stops learning, so the flag holds until the node comes back to its neighbours; the
arrays are sized at construction (not grown). State lives in arrays indexed like the
``AnomalyDetector``'s series; groups are given as one integer per series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detect._anomaly_kernels import DRIFT, NO_TIME, drift_batch
from detect._batch import ReadingBatch

__all__ = ["DRIFT", "DriftConfig", "NeighbourDrift"]


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """Args:
    k: threshold on the smoothed deviation from its usual offset, in sd of the raw one.
    tau_fast_s: time constant of the smoothed deviation; tau_slow_s: of its usual offset.
    warmup: scored samples before the rule may fire.
    fresh_s: a neighbour's latest value counts when no older than this.
    min_neighbours: fewer fresh neighbours: not scored.
    """

    k: float = 2.0
    tau_fast_s: float = 1800.0
    tau_slow_s: float = 12 * 3600.0
    warmup: int = 120
    fresh_s: int = 300
    min_neighbours: int = 3


class NeighbourDrift:
    """Drift of each series against the other series of its group.

    ``set_groups(group_of)`` gives the group of every series (``-1``: none, not scored);
    ``update(batch, flags)`` takes the ``AnomalyDetector``'s flags of the same batch.
    """

    def __init__(self, sd_floor: np.ndarray, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        self._floor = np.ascontiguousarray(sd_floor, np.float64)
        n = self._floor.shape[0]
        self.last_x = np.full(n, np.nan)
        self.last_t = np.full(n, NO_TIME, np.int64)
        self.dev = np.zeros(n)
        self.offset = np.zeros(n)
        self.scale = np.zeros(n)
        self.n_dev = np.zeros(n, np.int64)
        self.dev_t = np.full(n, NO_TIME, np.int64)
        self.set_groups(np.zeros(n, np.int64))

    def set_groups(self, group_of: np.ndarray) -> None:
        group_of = np.asarray(group_of, np.int64)
        n_groups = int(group_of.max()) + 2 if group_of.size else 1
        keyed = np.where(group_of < 0, n_groups - 1, group_of)  # ungrouped: their own bin
        self._group_of = keyed
        self._members = np.argsort(keyed, kind="stable").astype(np.int64)
        counts = np.bincount(keyed, minlength=n_groups)
        self._start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._scratch = np.empty(max(1, int(counts.max()) if counts.size else 1))
        self._ungrouped = group_of < 0

    def update(self, batch: ReadingBatch, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per sample: the DRIFT bit (or 0) and the drift score in [0, 1]."""
        n = len(batch)
        out_flags = np.empty(n, np.uint16)
        out_score = np.empty(n)
        c = self.config
        skip = np.asarray(flags, np.uint16) | self._ungrouped[batch.series].astype(np.uint16)
        drift_batch(
            batch.series, batch.ts_s, batch.value, batch.valid, skip,
            self._group_of, self._members, self._start,
            float(c.k), float(c.tau_fast_s), float(c.tau_slow_s), int(c.warmup),
            int(c.fresh_s), int(c.min_neighbours), self._floor,
            self.last_x, self.last_t, self.dev, self.offset, self.scale, self.n_dev,
            self.dev_t, self._scratch, out_flags, out_score,
        )  # fmt: skip
        return out_flags, out_score

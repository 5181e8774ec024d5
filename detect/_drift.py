"""Slow drift of a node against its neighbours: the node minus the median of its group.

A drifting sensor looks like weather from its own series alone; against its neighbours
(the other nodes of its township measuring the same quantity) it does not, because most of
the weather is common to a county. The rule judges each group on a time grid: at every tick
(a multiple of ``step_s``; once the group's samples are ``lag_s`` past it), for each member
``s`` of group ``g`` with a value (its mean over the window ``(tick - step_s, tick]``, or its
previous window's while that is within ``fresh_s`` of the tick):

    d     = x - median(the values of the other members of g at the tick)
    fast  = EWMA of d (time constant tau_fast_s)
    slow  = EWMA of d (tau_slow_s): the node's usual offset from its neighbours, learnt only
            while unflagged and while x is above the quantity's lower bound
    stat  = fast - slow
    sd    = max(pooled sd of stat in g, sd of stat across the other members of g now, sd_floor)
    DRIFT when |stat| > k * sd, from warmup_s after the series' first scored tick; the
            flag holds until |stat| < release * k * sd

Each sample gets its series' verdict at the group's last judged tick. A drift lasts hours: a
verdict every few minutes on window means loses nothing of it, and a sample then costs one
record (its window sum) instead of two sorted sets per group kept up to date.

``stat`` is a band-pass of the neighbour residual: a node's own weather wanders and comes back
(it is bounded), a drift keeps growing, so ``stat`` of a drifting node leaves the spread of its
group's statistics within hours. The scale is what the group's statistics do, not what the
node's own did (a drifting node would teach itself its drift): the pooled sd is an EWMA
(tau_pool_s, weights per member) of ``|stat|`` over the unflagged members, each term clipped to
``pool_clip`` times the current value; the spread across members is ``1.48 * median |stat|``
of the other fresh, unflagged members, smoothed over ``tau_cross_s``. While one scale lags
(the first hours, a change of regime), the other still holds.

Pollution is not drift. A plume or dust moves several quantities of a node together (NO2,
SO2, CO, PM2.5; PM10, PM2.5), a drifting sensor one; the neighbour residual cannot tell them
apart, the node's other series can. A series is *in an excursion* while ``|stat| > co_k * sd``
(sign: that of ``stat``) or while another rule flags a spike, a fast rise or a level shift on
it (sign: the value against its last usable one). No DRIFT on a series while another series of
its node was in an excursion of the same sign within ``co_hold_s`` (``node`` of
``add_series``; unknown: no such test): the flag is still held (``slow`` frozen, so the
episode is not learnt as the offset), the score is capped at 0.5, and once the episode is over
the series is drift again only if ``|stat|`` grows past its peak during it. A series taking
part in such an episode (its own ``|stat|`` above ``co_k`` sd) does not learn ``slow`` either.
A drift keeps growing: DRIFT is raised from ``confirm_s`` after the flag began (time for the
other quantities of an episode to join in) and only while ``|stat|`` has grown by ``grow_k``
sd within the last ``grow_s`` (a step, e.g. a source nearby switched on for the day, stops
being drift ``grow_s`` after it began, if the node's own wander does not pass for growth).

Samples that another rule flagged (``AnomalyFlags``) are ignored (a spike or a stuck value
would otherwise pass for drift), except values below the quantity's range (``IMPLAUSIBLE``,
e.g. a sensor drifting below zero): a lone one counts as the lower bound (a glitch), one in a
run of them as read (how far the sensor has gone). A window mean at or below the bound is
scored but not learnt (censored). A tick with fewer than ``min_neighbours`` fresh neighbours
(or as many fresh unflagged ones for the spread) is not scored. While flagged, ``slow`` is
frozen; when the flag ends the series relearns its offset from that tick and is scored again
``relearn_s`` later. The samples of a batch are visited in time order (stable sort) and the
ticks a timestamp completes are judged before its samples are applied, so the order of a
batch's rows does not matter and cutting a stream into batches does not change results. A
sample whose window has been judged is left out (``late``).

Settings: detect/data/drift.yaml. The rule is additive (the simulated
county's weather is); a multiplicative quantity would want ``log x`` (not done).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from detect._anomaly_kernels import DRIFT, NO_TIME
from detect._batch import ReadingBatch
from detect._drift_kernels import (
    COLD,
    FRESH_ROWS,
    GROUP,
    HOT,
    LINE,
    RARE,
    SCORING,
    drift_batch,
    is_nondecreasing,
)
from detect._kernels import as_index
from detect._state import new_records

__all__ = ["DRIFT", "DriftConfig", "NeighbourDrift"]

# The per-series records, in the kernel's argument order: name -> (fields, cache line to
# align each record to, or 0).
_SERIES_RECORDS = {"hot": (HOT, LINE), "cold": (COLD, LINE), "scoring": (SCORING, 0),
                   "rare": (RARE, 0)}  # fmt: skip

_INTS = (
    "step_s",
    "lag_s",
    "warmup_s",
    "relearn_s",
    "fresh_s",
    "min_neighbours",
    "co_hold_s",
    "grow_s",
    "confirm_s",
)


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """Settings of the drift rule; ``DriftConfig.default()`` reads detect/data/drift.yaml.

    Args:
        step_s: the rule judges each group every ``step_s`` (ticks at multiples of it, UTC),
            on the members' means over the window that ends at the tick.
        lag_s: a tick is judged once the group's samples are ``lag_s`` past it, so that
            samples that arrive up to that late still count (``< step_s``).
        k: threshold on ``|fast - slow|``, in sd of that statistic.
        release: a flag ends when ``|fast - slow|`` falls below ``release * k`` sd.
        tau_fast_s, tau_slow_s: time constants of the smoothed residual and of its offset.
        tau_cross_s: smoothing of the spread across the group; tau_pool_s: memory of the
            pooled sd; pool_clip: each term of the pooled sd is clipped to this many times it.
        warmup_s: a series is scored from this long after its first sample with neighbours.
        relearn_s: after a flag ends, the series is scored again this long after.
        fresh_s: a neighbour's latest value counts when within this of the sample.
        min_neighbours: fewer fresh neighbours: not scored.
        co_k, co_hold_s: a series is in an excursion while ``|fast - slow|`` exceeds ``co_k``
            sd (or another rule flags a spike, a fast rise or a level shift); no DRIFT on a
            series while another series of its node was in an excursion of the same sign
            within ``co_hold_s``.
        grow_k, grow_s: while flagged, ``|fast - slow|`` must have grown by ``grow_k`` sd
            within ``grow_s`` (or the flag began then) for DRIFT to be raised.
        confirm_s: DRIFT is raised from this long after the flag began (time for the node's
            other quantities to join a pollution episode).
    """

    step_s: int = 300
    lag_s: int = 60
    k: float = 4.5
    release: float = 0.5
    tau_fast_s: float = 1800.0
    tau_slow_s: float = 3 * 3600.0
    tau_cross_s: float = 3600.0
    tau_pool_s: float = 24 * 3600.0
    pool_clip: float = 4.0
    warmup_s: int = 3 * 3600
    relearn_s: int = 3600
    fresh_s: int = 300
    min_neighbours: int = 3
    co_k: float = 3.0
    co_hold_s: int = 1800
    grow_k: float = 1.0
    grow_s: int = 3 * 3600
    confirm_s: int = 900

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0 and f.name != "lag_s":
                raise ValueError(f"DriftConfig.{f.name}: must be > 0")
        if not 0 <= self.lag_s < self.step_s:
            raise ValueError("DriftConfig.lag_s: must be in [0, step_s)")

    @classmethod
    def default(cls) -> DriftConfig:
        """The packaged defaults (detect/data/drift.yaml)."""
        return _default_config()

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> DriftConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"DriftConfig: unknown settings {unknown}")
        return cls(**{k: (int(v) if k in _INTS else float(v)) for k, v in raw.items()})


def _node_key(node: int | str) -> int:
    """A node as an integer: itself if one, else a 63-bit hash of its id (stable across
    processes, unlike ``hash``)."""
    if isinstance(node, str):
        digest = hashlib.blake2b(node.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "little") >> 1
    return int(node)


@cache
def _default_config() -> DriftConfig:
    text = resources.files("detect").joinpath("data/drift.yaml").read_text("utf-8")
    return DriftConfig.from_mapping(yaml.safe_load(text) or {})


class NeighbourDrift:
    """Drift of each series against the other series of its group; state in records grown
    by doubling (``HOT``, ``COLD``, ``SCORING``, ``RARE`` and ``GROUP`` of
    ``detect/_drift_kernels.py``),
    checkpointed by ``state_arrays`` / ``load_state_arrays``.

    ``add_series(group, sd_floor)`` registers a series (indices in order, like the
    ``AnomalyDetector``'s; ``group < 0``: none, never scored); ``update(batch, flags)``
    takes the ``AnomalyDetector``'s flags of the same batch. The batch is not modified.
    ``late``: samples that came after their window had been judged (left out of the rule).
    """

    def __init__(self, config: DriftConfig | None = None, capacity: int = 1024) -> None:
        self.config = config or DriftConfig.default()
        self.n_series = 0
        self.n_groups = 0
        self.late = 0
        self._rows = {name: new_records(fields_, max(1, capacity), line)
                      for name, (fields_, line) in _SERIES_RECORDS.items()}  # fmt: skip
        self._grp = new_records(GROUP, 16)
        self._index: tuple[np.ndarray, ...] | None = None
        self._clock = np.array([NO_TIME], np.int64)  # derived: see drift_batch

    def _need_series(self, n: int) -> None:
        if n > self._rows["hot"].shape[0]:
            capacity = max(n, 2 * self._rows["hot"].shape[0])
            self._rows = {name: _grown(self._rows[name], fields_, capacity, self.n_series, line)
                          for name, (fields_, line) in _SERIES_RECORDS.items()}  # fmt: skip

    def _need_groups(self, n_groups: int) -> None:
        if n_groups > self._grp.shape[0]:
            capacity = max(n_groups, 2 * self._grp.shape[0])
            self._grp = _grown(self._grp, GROUP, capacity, self.n_groups)
        self.n_groups = max(self.n_groups, n_groups)

    def add_series(self, group: int, sd_floor: float, low: float = -math.inf,
                   node: int | str = -1) -> int:  # fmt: skip
        """Register a series of ``group`` (``-1``: none); ``sd_floor`` is the smallest sd
        its statistic may assume (the ``AnomalyDetector``'s, by quantity); ``low`` the lower
        bound of its quantity's range (a value below it counts as it); ``node`` the node that
        measures it (an integer >= 0 or a node id; ``-1``: unknown), whose other series
        tell a pollution episode from a drift."""
        self._need_series(self.n_series + 1)
        sid = self.n_series
        self.n_series += 1
        self._rows["hot"]["group_of"][sid] = group
        self._rows["hot"]["low"][sid] = low
        self._rows["scoring"]["sd_floor"][sid] = sd_floor
        self._rows["rare"]["node_of"][sid] = _node_key(node)
        self._need_groups(int(group) + 1)
        self._index = None
        return sid

    def set_groups(self, group_of: np.ndarray) -> None:
        """Regroup every registered series (``group_of``: one integer per series)."""
        group_of = np.asarray(group_of, np.int64)
        if group_of.shape != (self.n_series,):
            raise ValueError("set_groups: one group per registered series")
        self._rows["hot"]["group_of"][: self.n_series] = group_of
        self._need_groups(int(group_of.max()) + 1 if group_of.size else 0)
        self._index = None
        self._clock[0] = NO_TIME

    def state(self, name: str) -> np.ndarray:
        """A copy of one per-series field (``slow``, ``stat``, ``on``, ...)."""
        for rows in self._rows.values():
            if name in rows.dtype.names:
                return rows[name][: self.n_series].copy()
        raise KeyError(name)

    def _group_index(self) -> tuple[np.ndarray, ...]:
        """Members of each group, contiguous: ``members[start[g]:start[g + 1]]``; the series
        of each node likewise (``node_slot``: a series' node, -1: none); scratch."""
        if self._index is None:
            group_of = self._rows["hot"]["group_of"][: self.n_series]
            grouped = np.flatnonzero(group_of >= 0)
            keys = group_of[grouped]
            members = grouped[np.argsort(keys, kind="stable")].astype(np.uint64)
            size = np.bincount(keys, minlength=self.n_groups).astype(np.int64)
            start = np.concatenate([[0], np.cumsum(size)]).astype(np.int64)
            node_of = self._rows["rare"]["node_of"][: self.n_series]
            known = np.flatnonzero(node_of >= 0)
            nodes, slot = np.unique(node_of[known], return_inverse=True)
            node_slot = np.full(self.n_series, -1, np.int64)
            node_slot[known] = slot
            node_members = known[np.argsort(slot, kind="stable")].astype(np.uint64)
            node_size = np.bincount(slot, minlength=nodes.shape[0])
            node_start = np.concatenate([[0], np.cumsum(node_size)]).astype(np.int64)
            m = max(1, int(size.max()) if size.size else 1)
            scratch = (np.empty((FRESH_ROWS, m), np.int64), np.empty(m), np.empty(m), np.empty(m),
                       np.empty(m), np.empty((m, 2)))  # fmt: skip
            self._index = (
                np.ascontiguousarray(group_of, np.int64),
                members,
                start,
                node_slot,
                node_members,
                node_start,
                *scratch,
            )
        return self._index

    def update(self, batch: ReadingBatch, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per sample: the DRIFT bit (or 0) and the drift score in [0, 1] (``r / (1 + r)``
        of ``r = |stat| / (k sd)``; 0 when not scored), its series' verdict at the last tick
        its group judged."""
        n = len(batch)
        if n and (int(batch.series.min()) < 0 or int(batch.series.max()) >= self.n_series):
            raise ValueError("batch names a series the drift rule does not know")
        flags = np.asarray(flags)
        if flags.shape != (n,):
            raise ValueError("one flag per sample of the batch")
        out_flags = np.empty(n, np.uint16)
        out_score = np.empty(n, np.float64)
        ts = np.ascontiguousarray(batch.ts_s, np.int64)
        if is_nondecreasing(ts):  # already in time order (a stable sort would not move it)
            order = np.arange(n, dtype=np.uint64)
        else:
            order = np.argsort(ts, kind="stable").astype(np.uint64)
        c = self.config
        index = self._group_index()
        self.late += drift_batch(
            order, as_index(batch.series), ts,
            np.ascontiguousarray(batch.value, np.float64),
            np.ascontiguousarray(batch.valid, np.bool_),
            np.ascontiguousarray(flags, np.uint16),
            *index[:1], *self._rows.values(), self._grp, *index[1:6],
            int(c.step_s), int(c.lag_s), float(c.k), float(c.release), float(c.tau_fast_s),
            float(c.tau_slow_s), float(c.tau_cross_s), float(c.tau_pool_s),
            float(c.pool_clip), int(c.warmup_s), int(c.relearn_s), int(c.fresh_s),
            int(c.min_neighbours), float(c.co_k), int(c.co_hold_s), float(c.grow_k),
            int(c.grow_s), int(c.confirm_s),
            *index[6:], np.empty(max(1, 2 * self.n_groups), np.int64), self._clock,
            out_flags, out_score,
        )  # fmt: skip
        return out_flags, out_score

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The used part of every per-series and per-group field, one array each, and the
        late counter (for checkpoints)."""
        out = {name: rows[name][: self.n_series].copy() for rows in self._rows.values()
               for name in rows.dtype.names}  # fmt: skip
        out.update({name: self._grp[name][: self.n_groups].copy() for name in GROUP})
        out["late"] = np.array([self.late], np.int64)
        return out

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        n = int(arrays["group_of"].shape[0])
        n_groups = int(arrays["next_t"].shape[0])
        self.n_series = n
        self.n_groups = n_groups
        self._rows = {name: new_records(fields_, max(n, 16), line)
                      for name, (fields_, line) in _SERIES_RECORDS.items()}  # fmt: skip
        self._grp = new_records(GROUP, max(n_groups, 16))
        for rows in self._rows.values():
            for name in rows.dtype.names:
                rows[name][:n] = arrays[name]
        for name in GROUP:
            self._grp[name][:n_groups] = arrays[name]
        self.late = int(arrays["late"][0])
        self._index = None
        self._clock[0] = NO_TIME


def _grown(rows: np.ndarray, fields_: dict[str, tuple[type, float, int]], capacity: int,
           used: int, line: int = 0) -> np.ndarray:  # fmt: skip
    grown = new_records(fields_, capacity, line)
    grown[:used] = rows[:used]
    return grown

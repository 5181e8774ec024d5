"""Anomaly episodes: per-sample rule flags become one event per episode.

A rule's episode on a series opens at its first flagged sample and closes at the first later
sample of the series that is not flagged by that rule once ``quiet_s`` have passed since the
last flagged one (or at ``close_until`` when the stream goes quiet). Between, flagged samples
only update the episode's peak and count, so a stuck sensor is one event pair, not one event
per minute.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from detect import _episode_kernels as _ek
from detect._anomaly import AnomalyRule
from detect._batch import ReadingBatch
from detect._drift import DRIFT
from detect._events import ExceedanceEvent
from detect._kernels import as_index
from detect._state import SeriesState

# rule bit -> (rule name in events, what the evidence says)
ANOMALY_RULES: dict[int, tuple[str, str]] = {
    int(AnomalyRule.SPIKE): ("spike", "robust z-score against the running baseline above k"),
    int(AnomalyRule.LEVEL_SHIFT): ("level_shift", "CUSUM of the clipped z-score above h"),
    int(AnomalyRule.STUCK): ("stuck", "stuck_n consecutive equal values"),
    int(AnomalyRule.IMPLAUSIBLE): ("implausible", "outside the quantity's physical range"),
    int(AnomalyRule.RATE): ("rate", "change per minute above the quantity's limit"),
    int(AnomalyRule.MISSING): ("missing", "no value (NaN)"),
    DRIFT: ("drift", "deviation from the township median of the quantity"),
}
EVENT_MASK = sum(ANOMALY_RULES)
ANOMALY_RULE_NAMES = frozenset(name for name, _ in ANOMALY_RULES.values())
STANDARD = "tianwang anomaly rules"
EDITION = "detect/data/anomaly.yaml"

SeriesInfo = Callable[[int], tuple[str, str, str]]  # series -> (node, quantity, unit)
_SLOT_BITS = np.array(list(ANOMALY_RULES), np.int64)  # rule slot -> rule bit
_SLOT_RULES = list(ANOMALY_RULES.values())  # rule slot -> (rule, clause)
_SLOTS = len(ANOMALY_RULES)
_KIND = {_ek.OPEN: "open", _ek.CLOSE: "close"}
_MISSING = int(AnomalyRule.MISSING)
_NEW = object.__new__
_EVENT_FIELDS = ("kind", "node", "quantity", "rule", "hour_start_s", "value", "limit", "unit",
                 "standard", "edition", "clause", "episode_start_s", "peak", "periods")  # fmt: skip
if tuple(f.name for f in dataclasses.fields(ExceedanceEvent)) != _EVENT_FIELDS:
    raise ImportError("ExceedanceEvent's fields changed: update _anomaly_events._new_event")
(_SET_KIND, _SET_NODE, _SET_QUANTITY, _SET_RULE, _SET_HOUR, _SET_VALUE, _SET_LIMIT, _SET_UNIT,
 _SET_STANDARD, _SET_EDITION, _SET_CLAUSE, _SET_START, _SET_PEAK,
 _SET_PERIODS) = (getattr(ExceedanceEvent, name).__set__ for name in _EVENT_FIELDS)  # fmt: skip


def _new_event(kind: str, node: str, quantity: str, rule: str, t: int, value: float,
               unit: str, clause: str, start_s: int, peak: float,
               samples: int) -> ExceedanceEvent:  # fmt: skip
    """An anomaly event, built 4x faster than by ``ExceedanceEvent(...)``: the frozen
    dataclass's ``__init__`` sets each field through ``object.__setattr__``; this sets the
    slots directly (the same object: the class has no ``__post_init__``). Anomaly episodes
    are many (a spike is an event pair), so their construction showed in the profile."""
    event = _NEW(ExceedanceEvent)
    _SET_KIND(event, kind)
    _SET_NODE(event, node)
    _SET_QUANTITY(event, quantity)
    _SET_RULE(event, rule)
    _SET_HOUR(event, t)
    _SET_VALUE(event, value)
    _SET_LIMIT(event, math.nan)
    _SET_UNIT(event, unit)
    _SET_STANDARD(event, STANDARD)
    _SET_EDITION(event, EDITION)
    _SET_CLAUSE(event, clause)
    _SET_START(event, start_s)
    _SET_PEAK(event, peak)
    _SET_PERIODS(event, samples)
    return event


class AnomalyEpisodes(SeriesState):
    """Open anomaly episodes per (series, rule slot), stepped by ``_episode_kernels``."""

    _STATE: ClassVar[dict[str, tuple[type, float, int]]] = {
        "is_open": (np.bool_, False, _SLOTS),
        "start_s": (np.int64, 0, _SLOTS),
        "last_s": (np.int64, 0, _SLOTS),
        "peak": (np.float64, math.nan, _SLOTS),
        "peak_score": (np.float64, 0.0, _SLOTS),
        "samples": (np.int64, 0, _SLOTS),
        "announced": (np.bool_, False, _SLOTS),
    }

    def __init__(self, quiet_s: int, info: SeriesInfo, capacity: int = 1024,
                 min_s: dict[str, int] | None = None) -> None:  # fmt: skip
        super().__init__(capacity)
        self.quiet_s = quiet_s
        # per rule slot: how long an episode must last before it is an event
        self.min_s = np.array([int((min_s or {}).get(rule, 0)) for rule, _ in _SLOT_RULES],
                              np.int64)  # fmt: skip
        self._info = info
        self._infos: dict[int, tuple[str, str, str]] = {}  # series -> info(series), cached

    def _alloc(self, capacity: int) -> None:
        # Open episodes per series, apart from the records: the kernel reads it for every
        # sample, and a compact array (a byte per series: at most _SLOTS) stays in cache
        # where the wide records would not.
        # due_s: derived from is_open and last_s (not checkpointed), read only for rows of
        # a series with an open episode.
        n_open = np.zeros(capacity, np.uint8)
        due_s = np.full(capacity, _ek.NEVER, np.int64)
        if self.n_series:
            n_open[: self.n_series] = self.n_open[: self.n_series]
            due_s[: self.n_series] = self.due_s[: self.n_series]
        self.n_open = n_open
        self.due_s = due_s
        super()._alloc(capacity)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {**super().state_arrays(), "n_open": self.n_open[: self.n_series].astype(np.int64)}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_state_arrays(arrays)
        self.n_open[: self.n_series] = arrays["n_open"]
        self._set_due(np.arange(self.n_series))

    def _set_due(self, sids: np.ndarray) -> None:
        """``due_s`` of ``sids`` from their open episodes (as the kernel keeps it)."""
        due = np.where(self.is_open[sids], self.last_s[sids] + self.quiet_s, _ek.NEVER)
        self.due_s[sids] = due.min(axis=1, initial=_ek.NEVER)

    def _episode_state(self) -> tuple[np.ndarray, ...]:
        return (self.is_open, self.start_s, self.last_s, self.peak, self.peak_score,
                self.samples, self.announced, self.n_open, self.due_s)  # fmt: skip

    def update(self, batch: ReadingBatch, flags: np.ndarray, score: np.ndarray
               ) -> list[ExceedanceEvent]:  # fmt: skip
        """Step the episodes over one batch, in its order. ``flags`` carries the rule bits
        of every sample, ``score`` its anomaly score. The batch's series are known ones (the
        ``Detector`` has had them checked by ``AnomalyDetector.update``)."""
        # MISSING is an event only for a NaN value, not for a reading flagged invalid
        # (maintenance, calibration: the node said so itself).
        flags = np.ascontiguousarray(flags, np.uint16)
        n = len(batch)
        out = _ek.empty_outputs(min(n, 4096) + _ek.MAX_EVENTS_PER_ROW)
        state = self._episode_state()
        series = as_index(batch.series)
        events: list[ExceedanceEvent] = []
        row = 0
        while row < n:  # the outputs are bounded: step until every row is done
            row, k = _ek.step_episodes(series, batch.ts_s, batch.value, flags, score, row,
                                       EVENT_MASK, _MISSING, _SLOT_BITS, self.quiet_s,
                                       self.min_s, *state, *out)  # fmt: skip
            events += self._events(out, k, batch)
        return events

    def _events(self, out: tuple[np.ndarray, ...], k: int, batch: ReadingBatch
                ) -> list[ExceedanceEvent]:  # fmt: skip
        if not k:
            return []
        rows = out[0][:k]
        times, values = batch.ts_s[rows].tolist(), batch.value[rows].tolist()
        series, slots, kinds, starts, peaks, samples = (c[:k].tolist() for c in out[1:])
        events = []
        infos = self._infos
        for sid, slot, kind, t, value, start, peak, n in zip(
            series, slots, kinds, times, values, starts, peaks, samples, strict=True
        ):
            info = infos.get(sid)
            node, quantity, unit = self._describe(sid) if info is None else info
            rule, clause = _SLOT_RULES[slot]
            events.append(_new_event(_KIND[kind], node, quantity, rule, t, value, unit, clause,
                                     start, peak, n))  # fmt: skip
        return events

    def _describe(self, sid: int) -> tuple[str, str, str]:
        info = self._infos.get(sid)
        if info is None:  # a series' node, quantity and unit never change
            info = self._infos[sid] = self._info(sid)
        return info

    def close_until(self, cutoff_s: int) -> list[ExceedanceEvent]:
        """Close every episode whose last flagged sample is ``quiet_s`` before ``cutoff_s``."""
        used = slice(0, self.n_series)
        due = self.is_open[used] & (cutoff_s - self.last_s[used] >= self.quiet_s)
        sids, slots = np.nonzero(due)
        events = []
        for sid, slot in zip(sids, slots, strict=True):
            sid, slot = int(sid), int(slot)
            last, peak = int(self.last_s[sid, slot]), float(self.peak[sid, slot])
            if self.announced[sid, slot]:  # an episode too short for its rule made no event
                start, n = int(self.start_s[sid, slot]), int(self.samples[sid, slot])
                events.append(self._event("close", sid, slot, start, last, peak, peak, n))
            self.is_open[sid, slot] = False
            self.n_open[sid] -= 1
        self._set_due(sids)
        return events

    def _event(self, kind: str, sid: int, slot: int, start_s: int, t: int, value: float,
               peak: float, samples: int) -> ExceedanceEvent:  # fmt: skip
        node, quantity, unit = self._describe(sid)
        rule, clause = _SLOT_RULES[slot]
        return _new_event(kind, node, quantity, rule, t, value, unit, clause, start_s, peak,
                          samples)  # fmt: skip

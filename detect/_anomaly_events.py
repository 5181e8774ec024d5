"""Anomaly episodes: per-sample rule flags become one event per episode.

A rule's episode on a series opens at its first flagged sample and closes at the first later
sample of the series that is not flagged by that rule once ``quiet_s`` have passed since the
last flagged one (or at ``close_until`` when the stream goes quiet). Between, flagged samples
only update the episode's peak and count, so a stuck sensor is one event pair, not one event
per minute.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from detect._anomaly import AnomalyRule
from detect._batch import ReadingBatch
from detect._drift import DRIFT
from detect._events import ExceedanceEvent

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


@dataclass(slots=True)
class _Episode:
    start_s: int
    last_s: int
    peak: float  # the value of the highest-scoring sample
    peak_score: float
    samples: int = 1


class AnomalyEpisodes:
    """Open anomaly episodes per (series, rule bit); ``quiet_s`` closes them."""

    def __init__(self, quiet_s: int, info: SeriesInfo) -> None:
        self.quiet_s = quiet_s
        self._info = info
        self._open: dict[int, dict[int, _Episode]] = {}  # series -> bit -> episode
        self._has_open = np.zeros(1024, np.bool_)

    def add_series(self, sid: int) -> None:
        if sid >= self._has_open.shape[0]:
            grown = np.zeros(2 * self._has_open.shape[0], np.bool_)
            grown[: self._has_open.shape[0]] = self._has_open
            self._has_open = grown

    def update(self, batch: ReadingBatch, flags: np.ndarray, score: np.ndarray
               ) -> list[ExceedanceEvent]:  # fmt: skip
        """Step the episodes over one batch, in its order. ``flags`` carries the rule bits
        of every sample, ``score`` its anomaly score."""
        # MISSING is an event only for a NaN value, not for a reading flagged invalid
        # (maintenance, calibration: the node said so itself).
        mask = np.where(np.isnan(batch.value), EVENT_MASK, EVENT_MASK & ~int(AnomalyRule.MISSING))
        bits = flags.astype(np.int64) & mask
        # every sample of a series that has or gets an open episode may close one
        involved = self._has_open.copy()
        involved[batch.series[bits != 0]] = True
        rows = np.flatnonzero(involved[batch.series])
        events: list[ExceedanceEvent] = []
        columns = (batch.series[rows].tolist(), batch.ts_s[rows].tolist(), bits[rows].tolist())
        for i, sid, t, f in zip(rows.tolist(), *columns, strict=True):
            value, s = float(batch.value[i]), float(score[i])
            episodes = self._open.setdefault(sid, {})
            for bit in [b for b in episodes if not f & b]:
                if t - episodes[bit].last_s >= self.quiet_s:
                    events.append(self._event("close", sid, bit, episodes.pop(bit), t, value))
            for bit in (b for b in ANOMALY_RULES if f & b):
                episode = episodes.get(bit)
                if episode is None:
                    episodes[bit] = episode = _Episode(t, t, value, s)
                    events.append(self._event("open", sid, bit, episode, t, value))
                else:
                    episode.last_s = t
                    episode.samples += 1
                    if s > episode.peak_score:
                        episode.peak, episode.peak_score = value, s
            self._has_open[sid] = bool(episodes)
        return events

    def close_until(self, cutoff_s: int) -> list[ExceedanceEvent]:
        """Close every episode whose last flagged sample is ``quiet_s`` before ``cutoff_s``."""
        events = []
        for sid, episodes in self._open.items():
            for bit in [b for b, e in episodes.items() if cutoff_s - e.last_s >= self.quiet_s]:
                episode = episodes.pop(bit)
                events.append(self._event("close", sid, bit, episode, episode.last_s,
                                          episode.peak))  # fmt: skip
            self._has_open[sid] = bool(episodes)
        return events

    def _event(self, kind: str, sid: int, bit: int, e: _Episode, t: int,
               value: float) -> ExceedanceEvent:  # fmt: skip
        node, quantity, unit = self._info(sid)
        rule, clause = ANOMALY_RULES[bit]
        return ExceedanceEvent(
            kind=kind, node=node, quantity=quantity, rule=rule, hour_start_s=t, value=value,
            limit=math.nan, unit=unit, standard=STANDARD, edition=EDITION, clause=clause,
            episode_start_s=e.start_s, peak=e.peak, periods=e.samples,
        )  # type: ignore[arg-type]  # fmt: skip

    def to_json(self) -> list[list[object]]:
        return [[sid, bit, asdict(e)] for sid, eps in self._open.items() for bit, e in eps.items()]

    def load_json(self, raw: list[list[object]]) -> None:
        for sid, bit, episode in raw:
            self._open.setdefault(int(sid), {})[int(bit)] = _Episode(**episode)  # type: ignore[arg-type]
            self.add_series(int(sid))
            self._has_open[int(sid)] = True

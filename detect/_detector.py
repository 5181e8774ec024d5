"""The streaming detector: series registry, hourly means, limits and the episode policy.

Score, decide and act are separate: the kernels compute hourly means and compare them with
limits; the episode policy turns hour-by-hour verdicts into one event stream per episode;
grid decides who is told.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from detect import _kernels
from detect._anomaly import AnomalyConfig, AnomalyDetector, AnomalyRule
from detect._anomaly_events import AnomalyEpisodes
from detect._batch import ReadingBatch
from detect._drift import DriftConfig, NeighbourDrift
from detect._events import ExceedanceEvent
from detect._hourly import ClosedHours, HourlyMeans
from detect._regulatory import DailyMeans, EightHourMeans
from tianwang.quantities import quantity_table
from tianwang.standards import Limit, LimitBook, Permit, StandardError, noise_day_hours

RULE_1H = "1h_mean"
RULE_24H = "24h_mean"
RULE_8H_MAX = "8h_max"
RULE_24H_WARNING = "24h_mean_projected"
DAY_S = 86400
CHECKPOINT_VERSION = 8


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Args:
    timezone: the county's zone; standards' editions change on local dates.
    pinned_edition: use this edition (of the standard that has it, e.g. "GB 3095-2012")
        whatever the sample date.
    min_hour_minutes: GB 3095-2026 Table 4: >= 45 min of sampling for a valid hour.
    open_after_hours: consecutive exceeding hours before an episode opens (minimum
        duration; 1 = every exceeding hour counts, as the standard does).
    close_after_hours: consecutive valid hours below the close threshold before it closes.
    close_margin: hysteresis; an open episode closes only below ``limit * (1 - margin)``,
        so a mean wavering around the limit stays one episode instead of flapping.
    warn_min_hours: valid hours of a natural day before its 24-hour mean is projected for
        the early warning.
    noise_day_hours: GB 3096 day (昼间) as local [start, end) hours; None: the data file's
        06-22. Counties set their own (HJ 212-2017 Table 4).
    anomaly_quiet_s: an anomaly episode closes after this long without its rule's flag.
    anomaly_min_s: per anomaly rule, how long an episode must last before it is an event
        (minimum duration); missing rules: 0. Drift: 6 h, so that a pollution episode that
        reaches some nodes of a township and not others for a few hours (a plume, a fire)
        is not reported as drifting sensors; a real drift lasts days.
    """

    timezone: str = "Asia/Shanghai"
    pinned_edition: str | None = None
    min_hour_minutes: int = 45
    open_after_hours: int = 1
    close_after_hours: int = 1
    close_margin: float = 0.05
    warn_min_hours: int = 6
    noise_day_hours: tuple[int, int] | None = None
    anomaly_quiet_s: int = 900
    anomaly_min_s: dict[str, int] = field(default_factory=lambda: {"drift": 6 * 3600})

    def __post_init__(self) -> None:
        if self.open_after_hours < 1 or self.close_after_hours < 1:
            raise ValueError("open_after_hours and close_after_hours must be at least 1")
        if not 0.0 <= self.close_margin < 1.0:
            raise ValueError("close_margin must be in [0, 1)")


@dataclass(slots=True)
class DetectorStats:
    hours_closed: int = 0
    hours_invalid: int = 0
    hours_exceeded: int = 0
    hours_without_edition: int = 0  # sample dates before any edition of the standard
    late_samples: int = 0
    flagged_samples: int = 0  # samples some anomaly rule flagged
    excluded_samples: int = 0  # left out of the statistics: implausible


@dataclass(slots=True)
class _Episode:
    start_s: int
    peak: float
    hours: int = 1
    below: int = 0  # consecutive valid hours under the close threshold


@dataclass(slots=True)
class _Series:
    node: str
    quantity: str
    limit_class: str  # tianwang.standards.LimitBook
    unit: str
    episode: _Episode | None = field(default=None)
    neighbourhood: str | None = None  # nodes it is compared with for drift (a township)
    pending: int = 0  # consecutive exceeding hours while no episode is open


class Detector:
    """Judges hourly means, natural days and 8-hour means against the limits of each series'
    limit class (air GB 3095 grade, water GB 3838 class, noise GB 3096 zone, site permit)."""

    def __init__(
        self,
        config: DetectorConfig | None = None,
        permits: dict[str, Permit] | None = None,
        anomaly: AnomalyConfig | None = None,
        drift: DriftConfig | None = None,
    ) -> None:
        self.config = config or DetectorConfig()
        self._anomaly = AnomalyDetector(anomaly)
        self._drift = NeighbourDrift(drift)
        self._groups: dict[tuple[str, str], int] = {}  # (neighbourhood, quantity) -> group
        self._anomaly_episodes = AnomalyEpisodes(self.config.anomaly_quiet_s, self._describe,
                                                 min_s=self.config.anomaly_min_s)  # fmt: skip
        self._book = LimitBook(self.config.pinned_edition, permits)  # fails on an unknown pin
        self._day_start_h, self._day_end_h = self.config.noise_day_hours or noise_day_hours()
        self.stats = DetectorStats()
        self._zone = ZoneInfo(self.config.timezone)
        self._hourly = HourlyMeans()
        self._daily = DailyMeans()
        self._eight = EightHourMeans()
        # China keeps one offset all year (no daylight saving): natural days are fixed-offset.
        self._utc_offset_s = int(self._zone.utcoffset(datetime(2026, 1, 1)).total_seconds())
        self._day_episodes: dict[tuple[int, str], _Episode] = {}
        self._warned: dict[int, int] = {}  # series -> local day start it was warned for
        self._period_limits: dict[tuple[int, str, date], Limit | None] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._series: list[_Series] = []
        self._kinds: dict[tuple[str, str], int] = {}  # (quantity, limit class) -> kind
        self._kind_keys: list[tuple[str, str]] = []
        self._kind_of = np.zeros(1024, np.int64)  # series -> kind
        self._active = np.zeros(1024, np.bool_)  # series -> in an episode, or about to open
        self._energy = np.zeros(1024, np.bool_)  # series -> levels averaged as energy (dB)
        self._limits: dict[tuple[date, str, bool], _KindLimits] = {}
        self._no_edition: set[date] = set()

    def checkpoint(self, path: str | Path) -> None:
        """Write all state (open hours, series, episodes, counters) to ``path`` atomically,
        so that a restart in the middle of an hour or an episode loses nothing."""
        meta = {
            "version": CHECKPOINT_VERSION,
            "config": asdict(self.config),
            "stats": asdict(self.stats),
            "series": [asdict(s) for s in self._series],
            "warned": [[sid, day] for sid, day in self._warned.items()],
            "day_episodes": [
                [sid, rule, asdict(e)] for (sid, rule), e in self._day_episodes.items()
            ],
        }
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            arrays = {f"{prefix}.{name}": array for prefix, state in self._states()
                      for name, array in state.state_arrays().items()}  # fmt: skip
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def restore(
        cls,
        path: str | Path,
        config: DetectorConfig | None = None,
        permits: dict[str, Permit] | None = None,
        anomaly: AnomalyConfig | None = None,
        drift: DriftConfig | None = None,
    ) -> Detector:
        """A detector in the state ``checkpoint`` wrote; ``config`` defaults to the saved one.
        Permits, anomaly and drift settings are configuration, not state: pass them again."""
        with np.load(Path(path)) as data:
            meta = json.loads(str(data["meta"]))
            if meta["version"] != CHECKPOINT_VERSION:
                raise ValueError(f"checkpoint version {meta['version']}, expected "
                                 f"{CHECKPOINT_VERSION}")  # fmt: skip
            saved = meta["config"]
            if saved.get("noise_day_hours") is not None:
                saved["noise_day_hours"] = tuple(saved["noise_day_hours"])  # JSON made a list
            detector = cls(config or DetectorConfig(**saved), permits, anomaly, drift)
            for prefix, state in detector._states():
                state.load_state_arrays({k.split(".", 1)[1]: data[k] for k in data.files
                                         if k.startswith(prefix + ".")})  # fmt: skip
        detector.stats = DetectorStats(**meta["stats"])
        for raw in meta["series"]:
            episode = raw.pop("episode")
            series = _Series(**raw, episode=_Episode(**episode) if episode else None)
            detector._ids[(series.node, series.quantity)] = len(detector._series)
            detector._group(series)  # the same ids, in the same order, as when saved
            detector._register(series)
        detector._warned = {int(sid): int(day) for sid, day in meta["warned"]}
        for sid, rule, episode in meta["day_episodes"]:
            detector._day_episodes[(sid, rule)] = _Episode(**episode)
        return detector

    def _states(self) -> list[tuple[str, _Checkpointed]]:
        return [("hourly", self._hourly), ("daily", self._daily), ("eight", self._eight),
                ("anomaly", self._anomaly), ("drift", self._drift),
                ("anomaly_episodes", self._anomaly_episodes)]  # fmt: skip

    def _describe(self, sid: int) -> tuple[str, str, str]:
        s = self._series[sid]
        return s.node, s.quantity, s.unit

    def series_id(self, node: str, quantity: str, limit_class: str = "air:2",
                  neighbourhood: str | None = None) -> int:  # fmt: skip
        """Index of the (node, quantity) series, registering it on first sight with the
        limit class that judges it (``Registry.limit_class``) and the neighbourhood (the
        node's township) whose other nodes the drift rule compares it with (None: no drift
        rule for it)."""
        key = (node, quantity)
        sid = self._ids.get(key)
        if sid is None:
            sid = self._ids[key] = self._hourly.add_series()
            self._daily.add_series()
            self._eight.add_series()
            self._anomaly.add_series(quantity)
            self._anomaly_episodes.add_series()
            known = quantity_table().quantities.get(quantity)
            series = _Series(node, quantity, limit_class, known.unit if known else "",
                             neighbourhood=neighbourhood)  # fmt: skip
            cfg = self._anomaly.config  # the drift statistic's sd floor is the baseline's
            self._drift.add_series(self._group(series),
                                   cfg.sd_floor.get(quantity, cfg.default_sd_floor),
                                   known.min if known else -math.inf, node=node)  # fmt: skip
            self._register(series)
        return sid

    def _group(self, series: _Series) -> int:
        """The drift group of a series: its neighbourhood and quantity (-1: none)."""
        if series.neighbourhood is None:
            return -1
        key = (series.neighbourhood, series.quantity)
        return self._groups.setdefault(key, len(self._groups))

    def _register(self, series: _Series) -> None:
        """Append a series and its per-series arrays (grown by doubling)."""
        sid = len(self._series)
        self._series.append(series)
        if sid == self._kind_of.shape[0]:
            self._kind_of = np.concatenate([self._kind_of, np.zeros_like(self._kind_of)])
            self._active = np.concatenate([self._active, np.zeros_like(self._active)])
            self._energy = np.concatenate([self._energy, np.zeros_like(self._energy)])
        self._kind_of[sid] = self._kind(series.quantity, series.limit_class)
        self._active[sid] = series.episode is not None or series.pending > 0
        known = quantity_table().quantities.get(series.quantity)
        self._energy[sid] = known is not None and known.averaging == "energy"

    def update(self, batch: ReadingBatch) -> list[ExceedanceEvent]:
        """Score the batch's samples (anomaly events), then fold them into the hourly means
        and judge what closes (regulatory events). Events come anomalies first."""
        scored = self._anomaly.update(batch)
        flags, score = scored.flags, scored.score
        if self._groups:  # some series have neighbours to drift from
            drifted, drift_score = self._drift.update(batch, flags)
            flags, score = flags | drifted, np.maximum(score, drift_score)
        events = self._anomaly_episodes.update(batch, flags, score)
        self.stats.flagged_samples += int(np.count_nonzero(scored.flags & _FLAGGED))
        closed = self._levels(
            self._hourly.update(self._energies(self._usable(batch, scored.flags)))
        )
        self.stats.late_samples = self._hourly.late
        return events + self._judge(closed) + self._warn(closed) + self._days(closed)

    def _usable(self, batch: ReadingBatch, flags: np.ndarray) -> ReadingBatch:
        """Physically implausible values are not data: they stay out of the regulatory
        statistics. Spikes stay in: pollution spikes too."""
        excluded = (flags & _NOT_DATA) != 0
        if not excluded.any():
            return batch
        valid = batch.valid & ~excluded
        self.stats.excluded_samples += int(np.count_nonzero(batch.valid & excluded))
        return ReadingBatch(batch.series, batch.ts_s, batch.value, valid)

    def judge_hours(self, closed: ClosedHours) -> list[ExceedanceEvent]:
        """Judge hourly means computed elsewhere (a replay of hourly records): the hourly,
        daily and 8-hour rules, as if the hours had closed here. Levels (dB) as they are.
        No early warning: it projects the day from the latest hour of a live stream."""
        return self._judge(closed) + self._days(closed)

    def _energies(self, batch: ReadingBatch) -> ReadingBatch:
        """Sound levels enter the hourly means as energies, 10^(L/10): an hour's mean is
        then the GB 3096 equivalent continuous level once ``_levels`` takes it back to dB."""
        if not len(batch) or not self._energy[: len(self._series)].any():
            return batch
        rows = self._energy[batch.series]
        if not rows.any():
            return batch
        value = batch.value.copy()  # the caller's batch is not modified
        value[rows] = 10.0 ** (value[rows] / 10.0)
        return ReadingBatch(batch.series, batch.ts_s, value, batch.valid)

    def _levels(self, closed: ClosedHours) -> ClosedHours:
        if len(closed):
            rows = self._energy[closed.series]
            if rows.any():
                closed.mean[rows] = 10.0 * np.log10(closed.mean[rows])
        return closed

    def close_until(self, cutoff_s: int) -> list[ExceedanceEvent]:
        """Close every hour (and natural day) that ends by ``cutoff_s`` (end of stream, or a
        quiet period)."""
        closed = self._levels(self._hourly.close_until(cutoff_s))
        events = self._anomaly_episodes.close_until(cutoff_s)
        events += self._judge(closed) + self._days(closed)
        days = self._daily.close_until(cutoff_s)
        events += self._judge_days(RULE_24H, "24h", days.series, days.day_start_s, days.mean)
        max8 = self._eight.close_until(cutoff_s)
        return events + self._judge_days(RULE_8H_MAX, "8h_max", max8.series, max8.day_start_s,
                                          max8.max8h)  # fmt: skip

    def _days(self, closed: ClosedHours) -> list[ExceedanceEvent]:
        """Fold closed hours into the daily statistics and judge the days they close."""
        if not len(closed):
            return []
        days = self._daily.update(closed, self._utc_offset_s)
        _, max8 = self._eight.update(closed, self._utc_offset_s)
        events = self._judge_days(RULE_24H, "24h", days.series, days.day_start_s, days.mean)
        return events + self._judge_days(RULE_8H_MAX, "8h_max", max8.series, max8.day_start_s,
                                          max8.max8h)  # fmt: skip

    def _period_limit(self, sid: int, period: str, day: date) -> Limit | None:
        s = self._series[sid]
        key = (self._kind_of[sid], period, day)
        if key not in self._period_limits:
            try:
                self._period_limits[key] = self._book.limit(s.limit_class, s.quantity, period,
                                                            day)  # fmt: skip
            except StandardError:
                self._period_limits[key] = None
        return self._period_limits[key]

    def _judge_days(self, rule: str, period: str, series: np.ndarray, day_start_s: np.ndarray,
                    values: np.ndarray) -> list[ExceedanceEvent]:  # fmt: skip
        """Days are few (one per series per day): judged one by one. A NaN value is a day
        that failed the validity rule (Table 4) and changes nothing."""
        events = []
        for sid, day_s, value in zip(series.tolist(), day_start_s.tolist(), values.tolist(),
                                     strict=True):  # fmt: skip
            if value != value:
                continue
            day = datetime.fromtimestamp(day_s + 43200, self._zone).date()  # midday: that day
            limit = self._period_limit(sid, period, day)
            if limit is None:
                continue
            event = self._step_day(sid, rule, day_s, value, limit)
            if event is not None:
                events.append(event)
        return events

    def _step_day(self, sid: int, rule: str, day_s: int, value: float,
                  limit: Limit) -> ExceedanceEvent | None:  # fmt: skip
        """Daily rules: open on an exceeding day, update on each further one, close on the
        first valid day below ``limit * (1 - close_margin)``."""
        key = (sid, rule)
        episode = self._day_episodes.get(key)
        if limit.crossed_by(value):
            if episode is None:
                episode = self._day_episodes[key] = _Episode(day_s, value)
                kind = "open"
            else:
                episode.peak = _worse(episode.peak, value, limit)
                episode.hours += 1
                kind = "update"
        elif episode is not None and limit.inside_by(value, self.config.close_margin):
            del self._day_episodes[key]
            kind = "close"
        else:
            return None
        s = self._series[sid]
        return ExceedanceEvent(kind=kind, node=s.node, quantity=s.quantity, rule=rule,
                               hour_start_s=day_s, value=value, limit=limit.bound(value),
                               unit=s.unit,
                               standard=limit.standard, edition=limit.edition,
                               clause=limit.clause, episode_start_s=episode.start_s,
                               peak=episode.peak, periods=episode.hours)  # fmt: skip

    def _kind(self, quantity: str, limit_class: str) -> int:
        key = (quantity, limit_class)
        if key not in self._kinds:
            self._kinds[key] = len(self._kind_keys)
            self._kind_keys.append(key)
        return self._kinds[key]

    def _day_limits(self, day: date, period: str = "1h", night: bool = False) -> _KindLimits:
        """Limits of ``period`` for every (quantity, limit class) kind on a local day (and
        part of the day, for noise). Cached per day and kinds."""
        cached = self._limits.get((day, period, night))
        if cached is None or len(cached.limits) < len(self._kind_keys):
            limits: list[Limit | None] = []
            for quantity, limit_class in self._kind_keys:
                try:
                    limits.append(self._book.limit(limit_class, quantity, period, day, night))
                except StandardError:  # a date before any edition: counted, not fatal
                    limits.append(None)
                    self._no_edition.add(day)
            cached = self._limits[(day, period, night)] = _KindLimits.of(limits)
        return cached

    def _hour_tables(self, hour_start_s: np.ndarray) -> tuple[list[_KindLimits], np.ndarray]:
        """The limit table of each closed hour: one per local day and part of the day (noise
        day/night), and each hour's index into them. Vectorised, so a replay of years of
        hours in one call stays linear."""
        local_s = hour_start_s + self._utc_offset_s
        day_index = local_s // DAY_S
        hour = (local_s % DAY_S) // 3600
        night = (hour < self._day_start_h) | (hour >= self._day_end_h)
        keys, group = np.unique(day_index * 2 + night, return_inverse=True)
        tables = []
        for key, rows in zip(keys.tolist(), np.bincount(group).tolist(), strict=True):
            day = _EPOCH_DAY + timedelta(days=key // 2)
            tables.append(self._day_limits(day, "1h", bool(key % 2)))
            if day in self._no_edition:
                self.stats.hours_without_edition += rows
        return tables, group.reshape(-1)

    def _warn(self, closed: ClosedHours) -> list[ExceedanceEvent]:
        """Early warning (docs/detector.md): once a natural day has >= ``warn_min_hours``
        valid hours, project its 24-hour mean by assuming the remaining hours stay at the
        latest valid hourly mean; if the projection is above the 24-h limit (and the day can
        still reach 20 valid hours), warn once for that day."""
        if not len(closed):
            return []
        # the latest closed hour of each series in this batch
        order = np.argsort(closed.hour_start_s, kind="stable")
        sids_rev, first = np.unique(closed.series[order][::-1], return_index=True)
        last = order[::-1][first]
        valid = (closed.minutes[last] >= self.config.min_hour_minutes) & np.isfinite(
            closed.mean[last]
        )
        sids, last = sids_rev[valid], last[valid]
        daily = self._daily
        n_valid = daily.acc_n[sids]
        day_start = daily.day_start[sids]
        remaining = (day_start + DAY_S - daily.last_hour[sids] - 3600) // 3600
        projected = (daily.acc_sum[sids] + remaining * closed.mean[last]) / (n_valid + remaining)
        events = []
        candidates = (n_valid >= self.config.warn_min_hours) & (n_valid + remaining >= 20)
        for i in np.flatnonzero(candidates):
            sid, day_s = int(sids[i]), int(day_start[i])
            if self._warned.get(sid) == day_s:
                continue
            day = datetime.fromtimestamp(day_s + 43200, self._zone).date()
            limit = self._day_limits(day, "24h").limits[int(self._kind_of[sid])]
            if limit is None or not limit.crossed_by(float(projected[i])):
                continue
            self._warned[sid] = day_s
            s = self._series[sid]
            events.append(ExceedanceEvent(
                kind="warning", node=s.node, quantity=s.quantity, rule=RULE_24H_WARNING,
                hour_start_s=day_s, value=float(projected[i]),
                limit=limit.bound(float(projected[i])), unit=s.unit,
                standard=limit.standard, edition=limit.edition, clause=limit.clause,
                episode_start_s=day_s, peak=float(projected[i]), periods=int(n_valid[i]),
            ))  # fmt: skip
        return events

    def _judge(self, closed: ClosedHours) -> list[ExceedanceEvent]:
        """Compare closed hours with their limits (vectorised per hour) and step the episode
        policy only where something can change: an exceedance, or a series in an episode."""
        if not len(closed):
            return []
        n = len(closed)
        kinds = self._kind_of[closed.series]
        tables, group = self._hour_tables(closed.hour_start_s)
        upper = np.stack([t.upper[: len(self._kind_keys)] for t in tables])[group, kinds]
        lower = np.stack([t.lower[: len(self._kind_keys)] for t in tables])[group, kinds]
        # a floor-only limit (DO) has no ceiling; the kernel skips non-finite limits
        upper[~np.isfinite(upper) & np.isfinite(lower)] = np.finfo(np.float64).max
        verdicts = _kernels.exceeds(
            closed.mean, closed.minutes, upper, self.config.min_hour_minutes
        )
        # floors (DO, pH): a judged hour below its floor exceeds too
        verdicts[(verdicts == 0) & (closed.mean < lower)] = 1
        self.stats.hours_closed += n
        self.stats.hours_invalid += int(
            np.count_nonzero(closed.minutes < self.config.min_hour_minutes)
        )
        self.stats.hours_exceeded += int(np.count_nonzero(verdicts == 1))
        # a series in an episode, or getting one in this call (several hours of a series can
        # close at once: a replay, a node's backlog), may close it on a later row
        touched = self._active.copy()
        touched[closed.series[verdicts == 1]] = True
        live = (verdicts == 1) | ((verdicts == 0) & touched[closed.series])
        events = []
        for i in np.flatnonzero(live):
            sid = int(closed.series[i])
            limit = tables[group[i]].limits[kinds[i]]
            event = self._step(sid, int(closed.hour_start_s[i]), float(closed.mean[i]),
                               bool(verdicts[i] == 1), limit)  # fmt: skip
            self._active[sid] = (
                self._series[sid].episode is not None or self._series[sid].pending > 0
            )
            if event:
                events.append(event)
        return events

    def _step(
        self, sid: int, hour_s: int, mean: float, exceeded: bool, limit: Limit | None
    ) -> ExceedanceEvent | None:
        """Episode policy with minimum duration and hysteresis (``DetectorConfig``): open after
        ``open_after_hours`` exceeding hours, update on each further exceeding hour, close
        after ``close_after_hours`` valid hours below ``limit * (1 - close_margin)``. Hours
        in the band between change nothing; invalid hours never reach here."""
        assert limit is not None
        config = self.config
        s = self._series[sid]
        episode = s.episode
        if episode is None:
            s.pending = s.pending + 1 if exceeded else 0
            if s.pending < config.open_after_hours:
                return None
            start = hour_s - (config.open_after_hours - 1) * 3600
            episode = s.episode = _Episode(start, mean, hours=s.pending)
            s.pending = 0
            kind = "open"
        elif exceeded:
            episode.peak = _worse(episode.peak, mean, limit)
            episode.hours += 1
            episode.below = 0
            kind = "update"
        elif limit.inside_by(mean, config.close_margin):
            episode.below += 1
            if episode.below < config.close_after_hours:
                return None
            s.episode = None
            kind = "close"
        else:
            episode.below = 0
            return None
        return ExceedanceEvent(
            kind=kind,
            node=s.node,
            quantity=s.quantity,
            rule=RULE_1H,
            hour_start_s=hour_s,
            value=mean,
            limit=limit.bound(mean),
            unit=s.unit,
            standard=limit.standard,
            edition=limit.edition,
            clause=limit.clause,
            episode_start_s=episode.start_s,
            peak=episode.peak,
            periods=episode.hours,
        )


# Only physically impossible values leave the statistics. A run of equal values is a stuck
# sensor's symptom but also what a coarse sensor reports on a still night; it raises an
# event for the officer and stays in the means.
_EPOCH_DAY = date(1970, 1, 1)
_NOT_DATA = int(AnomalyRule.IMPLAUSIBLE)
_FLAGGED = int(AnomalyRule.SPIKE | AnomalyRule.LEVEL_SHIFT | AnomalyRule.STUCK
               | AnomalyRule.IMPLAUSIBLE | AnomalyRule.RATE)  # fmt: skip
_Checkpointed = (HourlyMeans | DailyMeans | EightHourMeans | AnomalyDetector | NeighbourDrift
                 | AnomalyEpisodes)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _KindLimits:
    """The limits of every kind for one period of one local day: bounds as arrays (NaN /
    -inf where none) for the vectorised verdicts, Limit objects for the evidence."""

    upper: np.ndarray
    lower: np.ndarray
    limits: list[Limit | None]

    @classmethod
    def of(cls, limits: list[Limit | None]) -> _KindLimits:
        upper = np.array([lim.value if lim else np.nan for lim in limits], np.float64)
        lower = np.array([lim.lower if lim else -np.inf for lim in limits], np.float64)
        return cls(upper, lower, limits)


def _worse(peak: float, value: float, limit: Limit) -> float:
    """The episode's peak: the value furthest beyond the limit (the lowest, for a floor)."""
    return value if limit.severity(value) > limit.severity(peak) else peak

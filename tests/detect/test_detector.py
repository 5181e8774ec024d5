"""Detector: GB 3095 1-hour exceedances, the 45-minute rule and the episode policy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from detect import (
    ANOMALY_RULE_NAMES,
    RULE_1H,
    Detector,
    DetectorConfig,
    ExceedanceEvent,
    ReadingBatch,
)
from tianwang.standards import StandardError

H = 3600
E2012 = "GB 3095-2012"
E2026_TRANSITIONAL = "GB 3095-2026 (transitional)"


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


T0 = utc(2024, 6, 1)


def hour_batch(sid: int, hour_s: int, value: float, minutes: int = 60) -> ReadingBatch:
    """One valid sample a minute for the first ``minutes`` minutes of the hour."""
    return ReadingBatch.from_lists(
        [sid] * minutes,
        [hour_s + 60 * m for m in range(minutes)],
        [value] * minutes,
        [True] * minutes,
    )


def regulatory(events: list[ExceedanceEvent]) -> list[ExceedanceEvent]:
    """The events of the standards' rules (constant test hours also make stuck events)."""
    return [e for e in events if e.rule not in ANOMALY_RULE_NAMES]


def feed(
    detector: Detector, sid: int, start_s: int, hours: list[tuple[float, int]]
) -> list[ExceedanceEvent]:
    """Feed consecutive hours of (value, minutes), then close the last one; the regulatory
    events."""
    events: list[ExceedanceEvent] = []
    for i, (value, minutes) in enumerate(hours):
        events += detector.update(hour_batch(sid, start_s + i * H, value, minutes))
    return regulatory(events + detector.close_until(start_s + len(hours) * H))


def summary(events: list[ExceedanceEvent]) -> list[tuple[str, int, float, float, int]]:
    return [(e.kind, e.hour_start_s, e.value, e.peak, e.episode_start_s) for e in events]


def test_two_hour_no2_episode_is_open_update_close() -> None:
    detector = Detector()
    sid = detector.series_id("yy-0001", "NO2")
    events = feed(
        detector, sid, T0, [(150.0, 60), (250.0, 60), (300.0, 60), (120.0, 60), (260.0, 10)]
    )
    assert summary(events) == [
        ("open", T0 + H, 250.0, 250.0, T0 + H),
        ("update", T0 + 2 * H, 300.0, 300.0, T0 + H),
        ("close", T0 + 3 * H, 120.0, 300.0, T0 + H),
    ]
    for event in events:
        assert (event.node, event.quantity, event.rule, event.unit) == (
            "yy-0001",
            "NO2",
            RULE_1H,
            "ug/m3",
        )
        assert (event.limit, event.standard, event.edition) == (200.0, "GB 3095", E2012)
    assert detector.stats.hours_closed == 5
    assert detector.stats.hours_exceeded == 2
    assert detector.stats.hours_invalid == 1


def test_invalid_hour_changes_nothing() -> None:
    detector = Detector()
    sid = detector.series_id("n1", "NO2")
    hours = [(250.0, 60), (50.0, 44), (300.0, 45), (500.0, 44), (100.0, 45)]
    events = feed(detector, sid, T0, hours)
    # 44 minutes: invalid, neither closes the episode nor updates it; 45 minutes: valid.
    assert summary(events) == [
        ("open", T0, 250.0, 250.0, T0),
        ("update", T0 + 2 * H, 300.0, 300.0, T0),
        ("close", T0 + 4 * H, 100.0, 300.0, T0),
    ]
    assert detector.stats.hours_invalid == 2


def test_invalid_exceeding_hour_opens_nothing() -> None:
    detector = Detector()
    sid = detector.series_id("n1", "NO2")
    assert feed(detector, sid, T0, [(900.0, 44), (900.0, 30)]) == []
    assert detector.stats.hours_closed == 2


def test_value_equal_to_the_limit_is_not_an_exceedance() -> None:
    detector = Detector()
    sid = detector.series_id("n1", "NO2")
    assert feed(detector, sid, T0, [(200.0, 60), (200.0, 60)]) == []
    assert detector.stats.hours_exceeded == 0
    events = feed(detector, sid, T0 + 2 * H, [(200.001, 60)])
    assert [e.kind for e in events] == ["open"]


def test_pm25_has_no_one_hour_limit() -> None:
    detector = Detector()
    sid = detector.series_id("n1", "PM2.5")
    assert feed(detector, sid, T0, [(1500.0, 60)] * 3) == []
    assert detector.stats.hours_closed == 3
    assert detector.stats.hours_exceeded == 0


def test_grade_i_zone_uses_the_stricter_o3_limit() -> None:
    detector = Detector()
    grade_1 = detector.series_id("park", "O3", "air:1")
    grade_2 = detector.series_id("town", "O3", "air:2")
    events = feed(detector, grade_1, T0, [(180.0, 60)]) + feed(detector, grade_2, T0, [(180.0, 60)])
    assert [(e.kind, e.node, e.limit) for e in events] == [("open", "park", 160.0)]
    events = feed(detector, grade_2, T0 + H, [(210.0, 60)])
    assert [(e.kind, e.node, e.limit) for e in events] == [("open", "town", 200.0)]


def test_edition_follows_the_sample_date() -> None:
    detector = Detector()
    sid = detector.series_id("n1", "NO2")
    [event] = feed(detector, sid, utc(2015, 7, 1), [(400.0, 60)])
    assert event.edition == E2012
    [event] = feed(detector, sid, utc(2027, 7, 1), [(400.0, 60)])
    assert event.kind == "update"
    assert event.edition == E2026_TRANSITIONAL


def test_edition_changes_on_the_local_date() -> None:
    # 2026-02-28T16:00Z is 2026-03-01 00:00 in Asia/Shanghai: the 2026 edition is in force.
    detector = Detector()
    sid = detector.series_id("n1", "NO2")
    events = feed(detector, sid, utc(2026, 2, 28, 15), [(400.0, 60), (400.0, 60)])
    assert [(e.kind, e.edition) for e in events] == [
        ("open", E2012),
        ("update", E2026_TRANSITIONAL),
    ]


def test_pinned_edition() -> None:
    detector = Detector(DetectorConfig(pinned_edition=E2012))
    sid = detector.series_id("n1", "NO2")
    [event] = feed(detector, sid, utc(2027, 7, 1), [(400.0, 60)])
    assert (event.edition, event.clause) == (E2012, "Table 1")


def test_late_samples_reach_the_stats() -> None:
    detector = Detector()
    sid = detector.series_id("n1", "NO2")
    detector.update(hour_batch(sid, T0 + H, 10.0, 5))
    detector.update(hour_batch(sid, T0, 10.0, 3))
    assert detector.stats.late_samples == 3


def test_hour_before_any_edition_does_not_break_the_batch() -> None:
    # A node whose clock was reset (no RTC) sends 2011 timestamps: no GB 3095 edition is in
    # force, so there is no limit. That must not raise out of the detector and lose the
    # verdicts of the other series closed in the same call.
    detector = Detector()
    stale = detector.series_id("n1", "NO2")
    good = detector.series_id("n2", "NO2")
    detector.update(hour_batch(stale, utc(2011, 6, 1), 400.0))
    detector.update(hour_batch(good, T0, 400.0))
    events = regulatory(detector.close_until(T0 + H))
    assert [(e.kind, e.node) for e in events] == [("open", "n2")]


def test_unknown_pinned_edition_is_refused_when_the_detector_is_built() -> None:
    # Today the typo surfaces only when the first hour closes, inside ingest's flush, and
    # then on every flush after it: readings are stored but never judged.
    with pytest.raises(StandardError, match="GB 3095-1996"):
        Detector(DetectorConfig(pinned_edition="GB 3095-1996"))

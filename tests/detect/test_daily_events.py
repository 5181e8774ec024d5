"""Daily rules in the live detector: 24-hour means per natural day and the O3 daily maximum
8-hour mean, their events, and a restart in the middle of a day."""

from __future__ import annotations

from pathlib import Path

from detect import Detector, ExceedanceEvent
from tests.detect.test_detector import H, hour_batch, utc

DAY0 = utc(2026, 6, 1) - 8 * H  # local midnight of 2026-06-01 in Asia/Shanghai (UTC+8)


def hours(detector: Detector, sid: int, first: int, values: list[float]) -> list[ExceedanceEvent]:
    events: list[ExceedanceEvent] = []
    for i, value in enumerate(values):
        events += detector.update(hour_batch(sid, DAY0 + (first + i) * H, value))
    return events


def daily(events: list[ExceedanceEvent], rule: str) -> list[tuple[str, int, float]]:
    return [(e.kind, (e.hour_start_s - DAY0) // 86400, round(e.value, 6)) for e in events
            if e.rule == rule]  # fmt: skip


def test_a_day_above_the_24h_limit_opens_a_daily_episode() -> None:
    detector = Detector()
    sid = detector.series_id("yy-0001", "NO2")  # 24-h limit 80 (GB 3095-2026 transitional)
    events = hours(detector, sid, 0, [100.0] * 24 + [60.0] * 24 + [30.0])
    events += detector.close_until(DAY0 + 3 * 86400)
    assert daily(events, "24h_mean") == [("open", 0, 100.0), ("close", 1, 60.0)]
    opened = next(e for e in events if e.rule == "24h_mean")
    assert (opened.limit, opened.edition) == (80.0, "GB 3095-2026 (transitional)")
    assert not [e for e in events if e.rule == "1h_mean"]  # 100 is far below the 1-h 200


def test_a_day_with_19_valid_hours_is_not_judged() -> None:
    detector = Detector()
    sid = detector.series_id("yy-0001", "SO2")  # 24-h limit 150
    events = hours(detector, sid, 0, [400.0] * 19)
    events += detector.close_until(DAY0 + 2 * 86400)
    assert daily(events, "24h_mean") == []


def test_o3_daily_maximum_8_hour_mean() -> None:
    detector = Detector()
    sid = detector.series_id("yy-0001", "O3")  # 8-h limit 160, 1-h limit 200
    values = [60.0] * 10 + [180.0] * 8 + [60.0] * 6
    events = hours(detector, sid, 0, values) + detector.close_until(DAY0 + 86400 + H)
    assert daily(events, "8h_max") == [("open", 0, 180.0)]
    assert daily(events, "24h_mean") == []  # O3 has no 24-h limit


def test_a_restart_in_the_middle_of_a_day_keeps_that_day(tmp_path: Path) -> None:
    def run(restart: bool) -> list[ExceedanceEvent]:
        detector = Detector()
        sid = detector.series_id("yy-0001", "NO2")
        events = hours(detector, sid, 0, [95.0] * 12)
        if restart:
            detector.checkpoint(tmp_path / "d.npz")
            detector = Detector.restore(tmp_path / "d.npz")
        events += hours(detector, sid, 12, [70.0] * 12 + [10.0])
        return events + detector.close_until(DAY0 + 2 * 86400)

    restarted = run(restart=True)
    assert restarted == run(restart=False)
    assert daily(restarted, "24h_mean") == [("open", 0, 82.5)]  # (12 * 95 + 12 * 70) / 24


def test_early_warning_before_the_day_closes() -> None:
    detector = Detector()
    sid = detector.series_id("yy-0001", "PM2.5")  # 24-h limit 60 (2026 transitional)
    # Morning clean, then high from 06:00: the projection crosses 60 at some hour.
    events = hours(detector, sid, 0, [30.0] * 6 + [110.0] * 6)
    warnings = [e for e in events if e.kind == "warning"]
    assert len(warnings) == 1  # once per day, however long it stays on course
    warning = warnings[0]
    assert warning.rule == "24h_mean_projected" and warning.limit == 60.0
    # Its projection: the valid hours so far, the rest of the day at the latest hour's mean.
    n = warning.periods
    assert n >= 6
    assert warning.value == ((30.0 * 6 + 110.0 * (n - 6)) + 110.0 * (24 - n)) / 24
    assert warning.value > 60.0 and warning.hour_start_s == DAY0


def test_no_warning_when_the_day_stays_within_the_limit() -> None:
    detector = Detector()
    sid = detector.series_id("yy-0001", "PM2.5")
    events = hours(detector, sid, 0, [40.0] * 23)
    assert [e for e in events if e.kind == "warning"] == []

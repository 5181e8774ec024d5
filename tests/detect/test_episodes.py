"""Episode policy (minimum duration, hysteresis) and checkpoint/restore of the detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detect import ClosedHours, Detector, DetectorConfig, ExceedanceEvent
from tests.detect.test_detector import T0, H, feed, hour_batch, regulatory


def kinds(events: list[ExceedanceEvent]) -> list[tuple[str, int]]:
    return [(e.kind, (e.hour_start_s - T0) // H) for e in events]


def test_a_mean_wavering_around_the_limit_is_one_episode() -> None:
    detector = Detector()
    sid = detector.series_id("yy-0001", "NO2")  # 1-h limit 200, closes below 190
    hours = [(201.0, 60), (199.0, 60), (205.0, 60), (195.0, 60), (202.0, 60), (150.0, 60)]
    assert kinds(feed(detector, sid, T0, hours)) == [
        ("open", 0), ("update", 2), ("update", 4), ("close", 5),
    ]  # fmt: skip


def test_without_hysteresis_the_same_means_flap() -> None:
    detector = Detector(DetectorConfig(close_margin=0.0))
    sid = detector.series_id("yy-0001", "NO2")
    hours = [(201.0, 60), (199.0, 60), (205.0, 60), (195.0, 60)]
    assert [k for k, _ in kinds(feed(detector, sid, T0, hours))] == [
        "open", "close", "open", "close",
    ]  # fmt: skip


def test_minimum_duration_and_close_after() -> None:
    detector = Detector(DetectorConfig(open_after_hours=2, close_after_hours=2))
    sid = detector.series_id("yy-0001", "SO2")  # limit 500
    hours = [(600.0, 60), (100.0, 60), (600.0, 60), (650.0, 60), (100.0, 60), (600.0, 60),
             (100.0, 60), (100.0, 60)]  # fmt: skip
    events = feed(detector, sid, T0, hours)
    assert kinds(events) == [("open", 3), ("update", 5), ("close", 7)]
    assert events[0].episode_start_s == T0 + 2 * H  # the episode began with its first hour
    assert events[-1].peak == 650.0 and events[-1].periods == 3


def test_restore_mid_hour_and_mid_episode_gives_the_same_events(tmp_path: Path) -> None:
    def run(split: bool) -> list[ExceedanceEvent]:
        detector = Detector()
        sid = detector.series_id("yy-0001", "NO2")
        events = detector.update(hour_batch(sid, T0, 300.0))
        first_half = hour_batch(sid, T0 + H, 320.0, minutes=30)
        events += detector.update(first_half)
        if split:
            detector.checkpoint(tmp_path / "detector.npz")
            detector = Detector.restore(tmp_path / "detector.npz")
            assert detector.series_id("yy-0001", "NO2") == sid
        rest = hour_batch(sid, T0 + H, 320.0)
        events += detector.update(rest.rows(30))
        events += detector.update(hour_batch(sid, T0 + 2 * H, 100.0))
        return events + detector.close_until(T0 + 3 * H)

    straight, restored = run(split=False), run(split=True)
    assert restored == straight  # anomaly events included: their state is checkpointed too
    assert any(e.rule == "stuck" for e in restored)  # 60 equal values an hour
    restored = regulatory(restored)
    assert [e.kind for e in restored] == ["open", "update", "close"]
    assert restored[1].value == 320.0  # the restored hour kept its first 30 minutes


def test_restore_keeps_counters_and_late_policy(tmp_path: Path) -> None:
    detector = Detector()
    sid = detector.series_id("yy-0002", "O3")
    detector.update(hour_batch(sid, T0 + H, 50.0))
    detector.update(hour_batch(sid, T0, 50.0, minutes=5))  # an older hour: late
    detector.checkpoint(tmp_path / "c.npz")
    restored = Detector.restore(tmp_path / "c.npz")
    assert restored.stats == detector.stats and restored.stats.late_samples == 5
    assert np.array_equal(restored._hourly.state_arrays()["acc_n"], np.array([60]))


def test_hours_closing_together_step_the_episode_as_one_by_one() -> None:
    # A replay or a node's backlog closes several hours of a series in one call: the hour
    # below the limit must still close the episode the earlier hours opened.
    means = [250.0, 260.0, 120.0, 230.0, 100.0]
    hours = T0 + H * np.arange(len(means), dtype=np.int64)

    def closed(rows: slice) -> ClosedHours:
        n = len(means[rows])
        return ClosedHours(np.zeros(n, np.int64), hours[rows], np.array(means[rows]),
                           np.full(n, 60, np.int64))  # fmt: skip

    together = Detector()
    together.series_id("yy-0001", "NO2")
    one_by_one = Detector()
    one_by_one.series_id("yy-0001", "NO2")
    events = together.judge_hours(closed(slice(None)))
    expected = [
        e for i in range(len(means)) for e in one_by_one.judge_hours(closed(slice(i, i + 1)))
    ]
    assert kinds(events) == kinds(expected) == [
        ("open", 0), ("update", 1), ("close", 2), ("open", 3), ("close", 4),
    ]  # fmt: skip

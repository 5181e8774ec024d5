"""Anomaly rules inside the Detector: one event per episode, checkpointed, split-invariant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detect import ANOMALY_RULE_NAMES, Detector, DetectorConfig, ExceedanceEvent, ReadingBatch
from tests.detect.test_detector import T0

MIN = 60


def noisy(n: int, level: float = 40.0, sd: float = 2.0, seed: int = 3) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0.0, sd, n)


def batch(sid: int, values: np.ndarray, start_s: int = T0, valid: np.ndarray | None = None
          ) -> ReadingBatch:  # fmt: skip
    n = values.shape[0]
    return ReadingBatch(
        np.full(n, sid, np.int64),
        start_s + MIN * np.arange(n, dtype=np.int64),
        values.astype(np.float64),
        np.ones(n, np.bool_) if valid is None else valid,
    )


def anomalies(events: list[ExceedanceEvent]) -> list[tuple[str, str, int]]:
    """(rule, kind, minute of the event) of the anomaly events."""
    return [(e.rule, e.kind, (e.hour_start_s - T0) // MIN) for e in events
            if e.rule in ANOMALY_RULE_NAMES]  # fmt: skip


def test_a_spike_is_one_episode_that_closes_after_the_quiet_time() -> None:
    detector = Detector(DetectorConfig(anomaly_quiet_s=900))
    sid = detector.series_id("n1", "NO2")
    values = noisy(180)
    values[100] = 400.0
    events = detector.update(batch(sid, values))
    spikes = [e for e in events if e.rule == "spike"]
    timeline = [(e.kind, (e.hour_start_s - T0) // MIN) for e in spikes]
    assert timeline == [("open", 100), ("close", 115)]
    opened = spikes[0]
    assert (opened.value, opened.peak, opened.episode_start_s) == (400.0, 400.0, T0 + 100 * MIN)
    assert opened.standard == "tianwang anomaly rules" and opened.unit == "ug/m3"


def test_a_stuck_sensor_is_one_episode_not_one_event_a_minute() -> None:
    detector = Detector()
    sid = detector.series_id("n1", "PM10")
    values = noisy(240, level=80.0)
    values[60:180] = 81.5  # two hours frozen
    events = detector.update(batch(sid, values))
    stuck = [(k, m) for rule, k, m in anomalies(events) if rule == "stuck"]
    assert len(stuck) == 2 and stuck[0][0] == "open" and stuck[1][0] == "close"
    assert 60 < stuck[0][1] <= 70  # after stuck_n equal values
    assert stuck[1][1] == 179 + 15  # the quiet time after the last frozen value
    closing = next(e for e in events if e.rule == "stuck" and e.kind == "close")
    assert closing.periods >= 100  # the frozen samples it covered


def _one_hour_with(value: float) -> tuple[Detector, list[ExceedanceEvent], np.ndarray]:
    detector = Detector()
    sid = detector.series_id("n1", "NO2")  # 1-h limit 200
    values = noisy(60, level=150.0, sd=3.0)
    values[30] = value
    events = detector.update(batch(sid, values)) + detector.close_until(T0 + 3600)
    return detector, events, values


def test_an_implausible_value_is_an_event_and_stays_out_of_the_hourly_mean() -> None:
    # 6000 ug/m3 NO2 is beyond what a sensor can report (quantities.yaml: max 5000); kept, it
    # would lift the hour's mean above 200.
    detector, events, values = _one_hour_with(6000.0)
    assert ("implausible", "open", 30) in anomalies(events)
    assert detector.stats.excluded_samples == 1
    assert np.mean(values) > 200 and np.mean(np.delete(values, 30)) < 200
    assert not [e for e in events if e.rule == "1h_mean"]


def test_a_plausible_spike_stays_in_the_hourly_mean() -> None:
    detector, events, values = _one_hour_with(4900.0)  # possible: a real plume
    assert ("spike", "open", 30) in anomalies(events)
    assert detector.stats.excluded_samples == 0
    hourly = [e for e in events if e.rule == "1h_mean"]
    assert [e.kind for e in hourly] == ["open"]
    assert hourly[0].value == pytest.approx(np.mean(values))


def test_nan_is_missing_but_a_reading_flagged_invalid_is_not() -> None:
    detector = Detector()
    a, b = detector.series_id("n1", "NO2"), detector.series_id("n2", "NO2")
    with_nan = noisy(60)
    with_nan[20:25] = np.nan
    maintenance = np.ones(60, np.bool_)
    maintenance[20:25] = False  # the node flagged them (calibration), values present
    events = detector.update(batch(a, with_nan)) + detector.update(
        batch(b, noisy(60), valid=maintenance)
    )
    missing = [(e.node, e.kind) for e in events if e.rule == "missing"]
    assert missing == [("n1", "open"), ("n1", "close")]


def same(a: list[ExceedanceEvent], b: list[ExceedanceEvent]) -> bool:
    """Equal event lists; a NaN value (an episode closed at a missing sample) equals NaN."""
    return [repr(e) for e in a] == [repr(e) for e in b]


def _stream() -> ReadingBatch:
    """Three series over three hours with a spike, a frozen stretch and a gap."""
    parts = []
    for sid, seed in enumerate((1, 2, 3)):
        v = noisy(180, seed=seed)
        v[50 + sid] = 500.0
        v[90:120] = 41.0 if sid == 1 else v[90:120]
        v[150:153] = np.nan if sid == 2 else v[150:153]
        parts.append(batch(sid, v))
    order = np.argsort(np.concatenate([p.ts_s for p in parts]), kind="stable")
    cat = [np.concatenate([getattr(p, c) for p in parts])[order]
           for c in ("series", "ts_s", "value", "valid")]  # fmt: skip
    return ReadingBatch(*cat)


def _detector() -> Detector:
    detector = Detector()
    for i in range(3):
        detector.series_id(f"n{i}", "NO2")
    return detector


@pytest.mark.parametrize("cuts", [[], [1], [7, 300], [100, 101, 102, 400]])
def test_batch_split_points_do_not_change_the_events(cuts: list[int]) -> None:
    stream = _stream()
    whole = _detector()
    expected = whole.update(stream) + whole.close_until(T0 + 4 * 3600)
    assert {e.rule for e in expected} >= {"spike", "stuck", "missing"}
    split = _detector()
    got: list[ExceedanceEvent] = []
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += split.update(stream.rows(lo, hi))
    assert same(got + split.close_until(T0 + 4 * 3600), expected)


def test_checkpoint_inside_an_anomaly_episode(tmp_path: Path) -> None:
    stream = _stream()
    whole = _detector()
    expected = whole.update(stream) + whole.close_until(T0 + 4 * 3600)
    first = _detector()
    events = first.update(stream.rows(0, 3 * 100))  # inside the frozen stretch of n1
    first.checkpoint(tmp_path / "d.npz")
    second = Detector.restore(tmp_path / "d.npz")
    events += second.update(stream.rows(3 * 100)) + second.close_until(T0 + 4 * 3600)
    assert same(events, expected)
    assert second.stats.flagged_samples == whole.stats.flagged_samples


def test_the_batch_is_not_modified() -> None:
    stream = _stream()
    before = [c.copy() for c in (stream.series, stream.ts_s, stream.value, stream.valid)]
    _detector().update(stream)
    for was, now in zip(before, (stream.series, stream.ts_s, stream.value, stream.valid),
                        strict=True):  # fmt: skip
        np.testing.assert_array_equal(was, now)


def _township_detector(min_s: dict[str, int] | None = None) -> Detector:
    detector = Detector(DetectorConfig(anomaly_min_s=min_s or {}))
    for i in range(8):  # series 0..7: O3 of eight nodes of one township
        detector.series_id(f"t{i}", "O3", "air:2", "township-1")
    detector.series_id("far", "O3", "air:2", None)  # no neighbourhood: never drift-scored
    return detector


def test_a_node_drifting_from_its_township_is_one_drift_episode(tmp_path: Path) -> None:
    from tests.detect.test_anomaly_drift import stream

    batches = stream(0.1)  # node t0 drifts from minute 400 on
    whole = _township_detector()
    events = [e for b in batches for e in whole.update(b)]
    drift = [(e.node, e.kind) for e in events if e.rule == "drift"]
    assert drift == [("t0", "open")]  # it holds to the end of the stream: no close yet
    opened = next(e for e in events if e.rule == "drift")
    assert 400 * 60 < opened.hour_start_s - batches[0].ts_s[0] < 700 * 60
    # a checkpoint in the middle of the drift gives the same events
    first = _township_detector()
    split = [e for b in batches[:600] for e in first.update(b)]
    first.checkpoint(tmp_path / "d.npz")
    second = Detector.restore(tmp_path / "d.npz")
    split += [e for b in batches[600:] for e in second.update(b)]
    assert same(split, events)


def test_a_minimum_duration_holds_an_episode_back_until_it_has_lasted() -> None:
    from tests.detect.test_anomaly_drift import stream

    batches = stream(0.1)  # t0 drifts from minute 400, flagged some hours later, to the end
    unheld = _township_detector()
    plain = [e for b in batches for e in unheld.update(b) if e.rule == "drift"]
    flagged_at = plain[0].hour_start_s
    held = _township_detector({"drift": 2 * 3600})
    events = [e for b in batches for e in held.update(b) if e.rule == "drift"]
    assert [(e.node, e.kind) for e in events] == [("t0", "open")]
    assert events[0].episode_start_s == flagged_at  # dated from its first flagged sample
    assert events[0].hour_start_s >= flagged_at + 2 * 3600  # told once it had lasted 2 h
    # longer than the drift has lasted by the end of the stream: no event at all
    never = _township_detector({"drift": 12 * 3600})
    assert not [e for b in batches for e in never.update(b) if e.rule == "drift"]

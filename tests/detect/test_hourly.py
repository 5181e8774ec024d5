"""HourlyMeans (Numba kernels) against the plain-Python reference in naive.py."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detect import ClosedHours, HourlyMeans, ReadingBatch
from tests.detect import naive
from tests.detect.naive import HourMean

T0 = 1_717_200_000  # 2024-06-01T00:00:00Z, an hour boundary
H = 3600


Samples = ReadingBatch  # a random stream of readings, as the detector takes them


def columns(samples: Samples) -> list[np.ndarray]:
    """The batch's own arrays (not copies)."""
    return [getattr(samples, f.name) for f in dataclasses.fields(samples)]


def reference(samples: Samples) -> tuple[dict[tuple[int, int], HourMean], int]:
    return naive.hourly_means(samples.series.tolist(), samples.ts_s.tolist(),
                              samples.value.tolist(), samples.valid.tolist())  # fmt: skip


def random_samples(rng: np.random.Generator, n_series: int, p_late: float) -> Samples:
    """Per series sorted by time (except late ones), interleaved at random between series;
    gaps, duplicate times, NaN, inf and invalid flags; sampling dense enough to straddle
    the 45-minute rule."""
    per_series: list[list[tuple[int, float, bool]]] = []
    for _ in range(n_series):
        n = int(rng.integers(0, 300))
        max_step = int(rng.choice([30, 60, 80, 120]))
        t = T0 + int(rng.integers(0, 3 * H))
        rows: list[tuple[int, float, bool]] = []
        for _ in range(n):
            t += (
                int(rng.integers(H, 5 * H))
                if rng.random() < 0.03
                else int(rng.integers(0, max_step))
            )
            ts = t - int(rng.integers(H, 3 * H)) if rng.random() < p_late else t
            u = rng.random()
            value = math.nan if u < 0.05 else math.inf if u < 0.07 else float(rng.uniform(0, 400))
            rows.append((ts, value, bool(rng.random() > 0.1)))
        per_series.append(rows)
    labels = np.repeat(np.arange(n_series), [len(rows) for rows in per_series])
    rng.shuffle(labels)
    cursor = [0] * n_series
    out: list[tuple[int, int, float, bool]] = []
    for s in labels.tolist():
        out.append((s, *per_series[s][cursor[s]]))
        cursor[s] += 1
    return Samples(
        np.array([r[0] for r in out], np.int64),
        np.array([r[1] for r in out], np.int64),
        np.array([r[2] for r in out], np.float64),
        np.array([r[3] for r in out], np.bool_),
    )


def rows_of(closed: ClosedHours) -> list[HourMean]:
    return [
        HourMean(int(s), int(h), float(m), int(n))
        for s, h, m, n in zip(
            closed.series, closed.hour_start_s, closed.mean, closed.minutes, strict=True
        )
    ]


def new_means(n_series: int, capacity: int = 1024) -> HourlyMeans:
    means = HourlyMeans(capacity=capacity)
    for i in range(n_series):
        assert means.add_series() == i
    return means


def run(
    samples: Samples, n_series: int, cuts: list[int], capacity: int = 1024
) -> tuple[list[HourMean], int]:
    """Feed the samples in batches split at ``cuts``, then close every hour."""
    means = new_means(n_series, capacity)
    rows: list[HourMean] = []
    bounds = [0, *cuts, len(samples.series)]
    for lo, hi in itertools.pairwise(bounds):
        rows += rows_of(means.update(samples.rows(lo, hi)))
    end = int(samples.ts_s.max()) + 2 * H if len(samples.ts_s) else T0
    rows += rows_of(means.close_until(end))
    assert rows_of(means.close_until(end + 10 * H)) == []  # nothing left open
    return rows, means.late


def same_row(a: HourMean, b: HourMean) -> bool:
    both_nan = math.isnan(a.mean) and math.isnan(b.mean)
    return a._replace(mean=0.0) == b._replace(mean=0.0) and (both_nan or a.mean == b.mean)


def assert_matches_reference(rows: list[HourMean], late: int, samples: Samples) -> None:
    expected, expected_late = reference(samples)
    keys = [(r.series, r.hour_start_s) for r in rows]
    assert len(keys) == len(set(keys)), "an hour was emitted twice"
    assert set(keys) == set(expected)
    for row in rows:
        assert same_row(row, expected[(row.series, row.hour_start_s)]), row
    assert late == expected_late


def random_cuts(rng: np.random.Generator, n: int) -> list[int]:
    return sorted(rng.integers(0, n + 1, size=int(rng.integers(0, 20))).tolist())


@settings(deadline=None, max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_series=st.integers(1, 7),
    p_late=st.sampled_from([0.0, 0.02, 0.2]),
)
def test_matches_reference(seed: int, n_series: int, p_late: float) -> None:
    rng = np.random.default_rng(seed)
    samples = random_samples(rng, n_series, p_late)
    rows, late = run(samples, n_series, random_cuts(rng, len(samples.series)), capacity=2)
    assert_matches_reference(rows, late, samples)


@settings(deadline=None, max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), n_series=st.integers(1, 5))
def test_batching_does_not_change_results(seed: int, n_series: int) -> None:
    rng = np.random.default_rng(seed)
    samples = random_samples(rng, n_series, p_late=0.05)
    n = len(samples.series)
    whole, whole_late = run(samples, n_series, [])
    one_by_one, one_by_one_late = run(samples, n_series, list(range(1, n)))
    pieces, pieces_late = run(samples, n_series, random_cuts(rng, n))
    assert len(whole) == len(one_by_one) == len(pieces)
    assert all(same_row(a, b) for a, b in zip(whole, one_by_one, strict=True))
    assert all(same_row(a, b) for a, b in zip(whole, pieces, strict=True))
    assert whole_late == one_by_one_late == pieces_late


def test_reference_sees_valid_hours() -> None:
    # The random inputs must exercise both sides of the 45-minute rule, or the
    # comparison above says little.
    rng = np.random.default_rng(3095)
    hours = [h for _ in range(20) for h in reference(random_samples(rng, 4, 0.02))[0].values()]
    assert any(h.valid for h in hours)
    assert any(not h.valid and h.minutes > 0 for h in hours)
    assert any(math.isnan(h.mean) for h in hours)


def minute_batch(
    series: int, hour: int, minutes: range, value: float = 1.0, valid: bool = True
) -> ReadingBatch:
    n = len(minutes)
    return ReadingBatch.from_lists(
        [series] * n, [hour + 60 * m for m in minutes], [value] * n, [valid] * n
    )


def test_hour_mean_and_coverage() -> None:
    means = new_means(1)
    batch = ReadingBatch.from_lists(
        [0, 0, 0, 0, 0, 0, 0],
        [T0, T0 + 10, T0 + 60, T0 + 120, T0 + 180, T0 + 240, T0 + H - 1],
        [10.0, 20.0, math.nan, 30.0, math.inf, 99.0, 60.0],
        [True, True, True, True, True, False, True],
    )
    assert len(means.update(batch)) == 0
    # valid finite: 10, 20 (minute 0), 30 (minute 2), 60 (minute 59)
    assert rows_of(means.close_until(T0 + H)) == [HourMean(0, T0, 30.0, 3)]


def test_hour_without_valid_data_has_nan_mean() -> None:
    means = new_means(1)
    means.update(minute_batch(0, T0, range(60), valid=False))
    [row] = rows_of(means.close_until(T0 + H))
    assert (row.hour_start_s, row.minutes) == (T0, 0)
    assert math.isnan(row.mean)


def test_close_until_closes_only_ended_hours() -> None:
    means = new_means(2)
    means.update(minute_batch(0, T0, range(60)))
    means.update(minute_batch(1, T0 + H, range(10)))
    assert len(means.close_until(T0 + H - 1)) == 0
    assert rows_of(means.close_until(T0 + H)) == [HourMean(0, T0, 1.0, 60)]
    assert rows_of(means.close_until(T0 + 2 * H)) == [HourMean(1, T0 + H, 1.0, 10)]


def test_late_samples_are_counted_and_skipped() -> None:
    means = new_means(2)
    means.update(minute_batch(0, T0 + H, range(30, 40), value=5.0))
    # Older hour than series 0's open hour: late. Earlier minute of the open hour: not late.
    closed = means.update(
        ReadingBatch.from_lists(
            [0, 0, 1], [T0 + 100, T0 + H + 60, T0], [500.0, 2.0, 7.0], [True] * 3
        )
    )
    assert len(closed) == 0
    assert means.late == 1
    rows = rows_of(means.close_until(T0 + 2 * H))
    assert rows == [HourMean(0, T0 + H, 52.0 / 11, 11), HourMean(1, T0, 7.0, 1)]


def test_sample_for_an_hour_already_closed_is_late() -> None:
    # close_until (a lull) emits hour T0 of series 0; a sample of hour T0 that arrives
    # afterwards is older than anything the series may still open: it must count as late,
    # not re-open hour T0 and emit it a second time with partial data.
    means = new_means(1)
    means.update(minute_batch(0, T0, range(50)))
    assert rows_of(means.close_until(T0 + H)) == [HourMean(0, T0, 1.0, 50)]
    means.update(minute_batch(0, T0, range(50, 60)))
    assert means.late == 10
    assert len(means.close_until(T0 + 2 * H)) == 0


def test_unknown_series_is_refused() -> None:
    means = new_means(2)
    with pytest.raises(ValueError, match="series"):
        means.update(minute_batch(2, T0, range(1)))


def test_negative_series_is_refused() -> None:
    # Numba wraps a negative index to the end of the state arrays: series -1 would be added
    # silently to an unregistered slot (or to the last series when the arrays are full).
    means = new_means(2)
    with pytest.raises(ValueError, match="series"):
        means.update(minute_batch(-1, T0, range(1)))


def test_many_series_grow_past_the_default_capacity() -> None:
    n_series, per_hour = 1500, 50
    means = new_means(n_series)
    assert means.n_series == n_series
    series = np.tile(np.arange(n_series, dtype=np.int64), per_hour)
    ts_s = np.repeat(T0 + 60 * np.arange(per_hour, dtype=np.int64), n_series)
    samples = Samples(series, ts_s, series.astype(np.float64) / 2, np.ones(series.size, np.bool_))
    rows, late = run(samples, n_series, [series.size // 3])
    assert_matches_reference(rows, late, samples)
    assert [r.mean for r in rows] == [s / 2 for s in range(n_series)]
    assert {r.minutes for r in rows} == {per_hour}


def test_growth_keeps_open_hours() -> None:
    means = new_means(2, capacity=2)
    means.update(minute_batch(0, T0, range(30), value=4.0))
    means.update(minute_batch(1, T0, range(20), value=8.0))
    for i in range(2, 9):  # grows 2 -> 4 -> 8 -> 16 with both hours open
        assert means.add_series() == i
    means.update(minute_batch(0, T0, range(30, 50), value=4.0))
    means.update(minute_batch(8, T0, range(5), value=1.0))
    assert rows_of(means.close_until(T0 + H)) == [
        HourMean(0, T0, 4.0, 50),
        HourMean(1, T0, 8.0, 20),
        HourMean(8, T0, 1.0, 5),
    ]


def test_input_arrays_are_not_mutated() -> None:
    rng = np.random.default_rng(7)
    samples = random_samples(rng, 4, p_late=0.05)
    copies = [a.copy() for a in columns(samples)]
    means = new_means(4)
    means.update(samples.rows())
    means.close_until(int(samples.ts_s.max()) + 2 * H)
    for before, after in zip(copies, columns(samples), strict=True):
        np.testing.assert_array_equal(before, after)
        assert before.dtype == after.dtype

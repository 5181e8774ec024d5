"""AnomalyDetector (Numba kernels) against the plain-Python reference in naive.py, and its
streaming properties: prefix stability, batch-split invariance, a baseline that flagged
samples do not move, NaN tolerated, input not mutated."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detect import ReadingBatch
from detect._anomaly import (
    AnomalyConfig,
    AnomalyDetector,
    AnomalyFlags,
    AnomalyRule,
    anomaly_scores,
)
from tests.detect import naive

T0 = 1_780_243_200  # 2026-06-01T00:00:00Z
QUANTITIES = ("PM2.5", "CO", None)
# Small windows and thresholds, so every rule fires often on short random streams.
TIGHT = AnomalyConfig(
    spike_k=3.0, tau_level_s=300.0, tau_scale_s=900.0, warmup=5, cusum_k=0.5, cusum_h=4.0,
    cusum_clip=3.0, relearn=3, stuck_n=3, stuck_eps=0.0,
    rate_per_min={"PM2.5": 40.0, "CO": 1.0}, sd_floor={"PM2.5": 0.5, "CO": 0.01},
)  # fmt: skip


Samples = ReadingBatch  # a random stream of readings, as the detector takes them


def columns(samples: Samples) -> list[np.ndarray]:
    """The batch's own arrays (not copies)."""
    return [getattr(samples, f.name) for f in dataclasses.fields(samples)]


def random_stream(rng: np.random.Generator, n_series: int, n: int) -> Samples:
    """Per series: 60-s steps (sometimes repeated or going back), noisy values with level
    shifts, spikes, stuck runs, NaN, invalid and out-of-range values; series interleaved."""
    series = rng.integers(0, n_series, n)
    ts = np.empty(n, np.int64)
    value = np.empty(n)
    clock = np.full(n_series, T0)
    level = rng.uniform(5, 50, n_series)
    last = level.copy()
    for i, s in enumerate(series):
        clock[s] += int(rng.choice([60, 60, 60, 120, 0, -60], p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.05]))
        ts[i] = clock[s]
        if rng.random() < 0.03:
            level[s] += rng.normal(0, 20)
        kind = rng.random()
        if kind < 0.15:
            x = last[s]  # a repeat: stuck runs
        elif kind < 0.2:
            x = level[s] + rng.choice([-1, 1]) * rng.uniform(10, 100)  # a spike
        elif kind < 0.23:
            x = math.nan
        elif kind < 0.26:
            x = rng.choice([-5.0, 0.0, 5000.0])  # outside [0, 2000] or at the bound
        else:
            x = round(level[s] + rng.normal(0, 2), 1)
        value[i] = x
        if math.isfinite(x):
            last[s] = x
    valid = rng.random(n) > 0.03
    return Samples(series, ts, value, valid)


def params(config: AnomalyConfig, quantity: str | None) -> naive.AnomalyParams:
    from tianwang.quantities import quantity_table

    q = quantity_table().quantities.get(quantity) if quantity else None
    rate = config.rate_per_min.get(quantity, config.default_rate_per_min) if quantity else math.inf
    floor = config.sd_floor.get(quantity, config.default_sd_floor) if quantity else 1e-6
    if quantity is None:
        floor = config.default_sd_floor
    return naive.AnomalyParams(
        q.min if q else -math.inf, q.max if q else math.inf, rate / 60.0, floor,
        config.spike_k, config.tau_level_s, config.tau_scale_s, config.warmup, config.cusum_k,
        config.cusum_h, config.cusum_clip, config.relearn, config.stuck_n, config.stuck_eps,
    )  # fmt: skip


def detector(n_series: int, config: AnomalyConfig = TIGHT, capacity: int = 2) -> AnomalyDetector:
    d = AnomalyDetector(config, capacity=capacity)
    for s in range(n_series):
        assert d.add_series(QUANTITIES[s % len(QUANTITIES)]) == s
    return d


def run(d: AnomalyDetector, samples: Samples, cuts: list[int]) -> AnomalyFlags:
    bounds = [0, *cuts, len(samples.series)]
    parts = [d.update(samples.rows(lo, hi)) for lo, hi in itertools.pairwise(bounds)]
    return AnomalyFlags(
        np.concatenate([p.flags for p in parts]), np.concatenate([p.score for p in parts])
    )


seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=60, deadline=None)
@given(seed=seeds, n_series=st.integers(1, 5), n=st.integers(0, 400))
def test_matches_reference(seed: int, n_series: int, n: int) -> None:
    samples = random_stream(np.random.default_rng(seed), n_series, n)
    got = run(detector(n_series), samples, [])
    ps = [params(TIGHT, QUANTITIES[s % len(QUANTITIES)]) for s in range(n_series)]
    flags, scores = naive.anomaly_flags(
        samples.series.tolist(), samples.ts_s.tolist(), samples.value.tolist(),
        samples.valid.tolist(), ps,
    )  # fmt: skip
    assert got.flags.tolist() == flags
    np.testing.assert_allclose(got.score, scores, rtol=1e-12, atol=0)


def test_reference_fires_every_rule() -> None:
    """The random streams exercise every rule (else the comparison above proves little)."""
    samples = random_stream(np.random.default_rng(1), 3, 3000)
    fired = np.bitwise_or.reduce(run(detector(3), samples, []).flags)
    assert fired == int(np.bitwise_or.reduce([int(r) for r in AnomalyRule]))


@settings(max_examples=40, deadline=None)
@given(seed=seeds, n_series=st.integers(1, 4), n=st.integers(1, 300), data=st.data())
def test_batch_split_invariance(seed: int, n_series: int, n: int, data: st.DataObject) -> None:
    samples = random_stream(np.random.default_rng(seed), n_series, n)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=6)))
    whole = run(detector(n_series), samples, [])
    split = run(detector(n_series), samples, cuts)
    assert whole.flags.tolist() == split.flags.tolist()
    assert whole.score.tolist() == split.score.tolist()


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(1, 300), data=st.data())
def test_streaming_scores(seed: int, n: int, data: st.DataObject) -> None:
    """Score i depends only on samples up to i: a prefix scores the same alone."""
    rng = np.random.default_rng(seed)
    values = rng.normal(20, 3, n)
    values[rng.random(n) < 0.05] = np.nan
    values[rng.random(n) < 0.05] += 60
    ts = T0 + 60 * np.arange(n)
    k = data.draw(st.integers(0, n))
    full = anomaly_scores(values, ts, quantity="PM2.5", config=TIGHT)
    prefix = anomaly_scores(values[:k], ts[:k], quantity="PM2.5", config=TIGHT)
    assert prefix.tolist() == full[:k].tolist()
    assert ((full >= 0) & (full <= 1)).all()


def clean(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return T0 + 60 * np.arange(n), 40 + rng.normal(0, 2, n)


def baseline_after(ts: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    d = AnomalyDetector(capacity=1)
    d.add_series("PM2.5")
    ok = np.ones(len(values), np.bool_)
    d.update(ReadingBatch(np.zeros(len(values), np.int64), ts, values, ok))
    return float(d.state("level")[0]), float(d.state("scale")[0])


def test_spike_does_not_move_the_baseline() -> None:
    ts, values = clean(200)
    spiked = values.copy()
    spiked[150] += 200.0  # a spike below the rate limit: only the spike rule fires
    flags = AnomalyDetector(capacity=1)
    flags.add_series("PM2.5")
    out = flags.update(ReadingBatch(np.zeros(200, np.int64), ts, spiked, np.ones(200, np.bool_)))
    assert out.flags[150] & AnomalyRule.SPIKE
    assert out.score[150] > 0.5
    without = np.delete(values, 150), np.delete(ts, 150)
    assert baseline_after(ts, spiked) == baseline_after(without[1], without[0])


def test_default_rules_on_simple_faults() -> None:
    ts, values = clean(300)
    values[100:130] = values[99]  # stuck
    values[200] = -3.0  # implausible
    values[250:] += 60.0  # level shift
    values[220] = np.nan
    d = AnomalyDetector(capacity=1)
    d.add_series("PM2.5")
    out = d.update(ReadingBatch(np.zeros(300, np.int64), ts, values, np.ones(300, np.bool_)))
    assert out.flags[109] & AnomalyRule.STUCK and not out.flags[107] & AnomalyRule.STUCK
    assert out.flags[200] == AnomalyRule.IMPLAUSIBLE and out.score[200] == 1.0
    assert out.flags[220] == AnomalyRule.MISSING and out.score[220] == 0.0
    assert (out.flags[250:260] & AnomalyRule.LEVEL_SHIFT).any()
    assert not (out.flags[:100] & ~AnomalyRule.MISSING).any()


def test_nan_and_inputs_not_mutated() -> None:
    samples = random_stream(np.random.default_rng(3), 3, 500)
    copies = [a.copy() for a in columns(samples)]
    out = run(detector(3), samples, [100, 250])
    for before, after in zip(copies, columns(samples), strict=True):
        np.testing.assert_array_equal(before, after)
    assert np.isfinite(out.score).all()
    values, ts = samples.value[samples.series == 0], samples.ts_s[samples.series == 0]
    values_copy = values.copy()
    anomaly_scores(values, ts, config=TIGHT)
    np.testing.assert_array_equal(values, values_copy)


def test_out_of_order_is_not_scored() -> None:
    d = detector(1)
    out = d.update(ReadingBatch.from_lists([0, 0, 0], [T0 + 60, T0, T0 + 60], [1.0, 2.0, 3.0],
                                           [True] * 3))  # fmt: skip
    assert out.flags.tolist() == [0, AnomalyRule.OUT_OF_ORDER, AnomalyRule.OUT_OF_ORDER]


def test_growth_keeps_state() -> None:
    samples = random_stream(np.random.default_rng(5), 1, 200)
    grown = detector(1, capacity=1)
    small = run(grown, samples, [100])
    for _ in range(40):
        grown.add_series("CO")
    again = detector(1, capacity=1)
    run(again, samples, [])
    assert grown.state("level")[0] == again.state("level")[0]
    assert small.flags.shape == (200,)


def test_unknown_series_rejected() -> None:
    with pytest.raises(ValueError, match="series"):
        detector(1).update(ReadingBatch.from_lists([1], [T0], [1.0], [True]))


def test_default_config_is_data() -> None:
    config = AnomalyConfig.default()
    assert config.rate_per_min["PM2.5"] > 0 and config.sd_floor["CO"] > 0
    assert config == AnomalyConfig.default()
    with pytest.raises(ValueError):
        dataclasses.replace(config, stuck_n=1)
    with pytest.raises(ValueError):
        dataclasses.replace(config, spike_k=0.0)


def test_anomaly_scores_timestamps() -> None:
    values = np.array([1.0, 2.0, 3.0])
    as_int = anomaly_scores(values, T0 + 60 * np.arange(3))
    as_dt = anomaly_scores(values, (T0 + 60 * np.arange(3)).astype("datetime64[s]"))
    assert as_int.tolist() == as_dt.tolist()
    assert anomaly_scores(np.array([])).shape == (0,)
    with pytest.raises(ValueError):
        anomaly_scores(values, np.arange(2))


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n_series=st.integers(1, 4), n=st.integers(0, 300), data=st.data())
def test_checkpoint_round_trip(seed: int, n_series: int, n: int, data: st.DataObject) -> None:
    """A stream split at a checkpoint scores as one uninterrupted run; the arrays round-trip
    exactly, parameters included (the restored detector is given no quantities)."""
    samples = random_stream(np.random.default_rng(seed), n_series, n)
    cut = data.draw(st.integers(0, n))
    whole = run(detector(n_series), samples, [])
    first = detector(n_series)
    head = first.update(samples.rows(0, cut))
    saved = first.state_arrays()
    restored = AnomalyDetector(TIGHT, capacity=1)
    restored.load_state_arrays(saved)
    assert restored.n_series == n_series
    again = restored.state_arrays()
    assert saved.keys() == again.keys()
    for name, array in saved.items():
        assert array.dtype == again[name].dtype
        np.testing.assert_array_equal(array, again[name])
    tail = restored.update(samples.rows(cut))
    assert np.concatenate([head.flags, tail.flags]).tolist() == whole.flags.tolist()
    assert np.concatenate([head.score, tail.score]).tolist() == whole.score.tolist()
    assert restored.add_series("CO") == n_series  # grows past the restored series


# --- regressions of the quality benchmark (benchmarks/bench_detection_quality.py) ----------

RELEARN = dataclasses.replace(AnomalyConfig.default(), relearn=10)


def pm25_flags(values: np.ndarray, config: AnomalyConfig = RELEARN) -> tuple[np.ndarray, float]:
    """Flags of one PM2.5 series sampled every minute, and its final level."""
    d = AnomalyDetector(config, capacity=1)
    d.add_series("PM2.5")
    n = len(values)
    out = d.update(ReadingBatch(np.zeros(n, np.int64), T0 + 60 * np.arange(n), values,
                                np.ones(n, np.bool_)))  # fmt: skip
    return out.flags, float(d.state("level")[0])


def test_level_restarted_at_an_outlier_is_relearnt() -> None:
    """A CUSUM alarm restarts the level at the alarm sample. If that sample is an outlier of
    the new level, the samples after it must still be learnt: judged as spikes against it,
    they were never learnt, the level never aged past ``relearn`` and every later sample of
    the series was a spike (seen for 8 h after a plume ended)."""
    _, values = clean(400)
    values[200:] += 60.0
    flags, _ = pm25_flags(values)
    alarm = 200 + int(np.argmax(flags[200:] & AnomalyRule.LEVEL_SHIFT))
    assert flags[alarm] & AnomalyRule.LEVEL_SHIFT
    values[alarm] += 40.0  # the alarm sample is an outlier of the new level (CUSUM clipped)
    flags, level = pm25_flags(values)
    assert flags[alarm] & AnomalyRule.LEVEL_SHIFT
    assert not flags[alarm + 30 :].any()
    assert abs(level - 100.0) < 2.0


def test_series_at_the_lower_bound_is_a_level_shift() -> None:
    """A series that falls to the lower bound (0) and stays there: the censored samples feed
    the CUSUM and the level, so the fall is one level shift and the small readings that
    follow are not spikes against the old level."""
    rng = np.random.default_rng(2)
    _, values = clean(400)
    values[200:] = 0.0
    later = 260 + np.flatnonzero(rng.random(140) < 0.2)
    values[later] = rng.uniform(0.2, 1.5, len(later))
    flags, level = pm25_flags(values)
    assert (flags[200:215] & AnomalyRule.LEVEL_SHIFT).any()
    assert not (flags[215:] & (AnomalyRule.SPIKE | AnomalyRule.LEVEL_SHIFT)).any()
    assert level < 1.0


def test_one_sample_after_a_gap_does_not_set_the_scale() -> None:
    """After a long gap the time-based scale weight is near 1; it is capped at 1 / warmup, so
    the first sample after the gap (here exactly at the level) does not shrink the scale and
    make ordinary noise a spike."""
    _, values = clean(360)
    values[200:350] = np.nan  # 150 min without data: exp(-9000 / 7200) ~ 0.29
    _, level = pm25_flags(values[:200])
    values[350] = level
    values[351:] = level + 4.0  # 2 sd of the noise above the level
    flags, _ = pm25_flags(values)
    assert not (flags[351:] & AnomalyRule.SPIKE).any()
    assert (flags[200:350] == AnomalyRule.MISSING).all()


def test_a_rule_fires_above_its_threshold_not_at_it() -> None:
    """A change exactly at the rate limit is not a rate anomaly (its statistic is 1, the
    score 0.5); the least step beyond the limit is. The rule compares the step with the
    limit, so no rounding of the quotient can flip it."""
    config = AnomalyConfig(rate_per_min={"q": 6.0}, stuck_n=50)
    d = AnomalyDetector(config)
    at, beyond = d.add_series("q"), d.add_series("q")
    out = d.update(ReadingBatch.from_lists(
        [at, beyond, at, beyond], [T0, T0, T0 + 60, T0 + 60],
        [0.0, 0.0, 6.0, math.nextafter(6.0, 7.0)], [True] * 4))  # fmt: skip
    assert out.flags[2] & AnomalyRule.RATE == 0
    assert out.score[2] == 0.5
    assert out.flags[3] & AnomalyRule.RATE
    assert out.score[3] > 0.5

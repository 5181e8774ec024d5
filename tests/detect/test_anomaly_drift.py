"""NeighbourDrift: a node drifting away from its group is flagged; county-wide changes, which
every neighbour shares, and a node's own bounded wander are not; batch splits, row order and
a checkpoint do not change results; inputs are not modified; NaN is tolerated."""

from __future__ import annotations

import numpy as np

from detect import ReadingBatch
from detect._anomaly import AnomalyDetector
from detect._drift import DRIFT, DriftConfig, NeighbourDrift

T0 = 1_780_243_200
N = 8
STEPS = 900  # one sample a minute
START = 400  # the drift starts at this step


def stream(drift_per_step: float, steps: int = STEPS, seed: int = 0) -> list[ReadingBatch]:
    """Per minute one sample of each of ``N`` nodes: a common random walk (weather every node
    shares), each node's own slow wander (AR(1), 2 h) and white noise; node 0 drifts."""
    rng = np.random.default_rng(seed)
    common = 70 + np.cumsum(rng.normal(0, 1.0, steps))
    own = np.zeros(N)
    phi = np.exp(-1 / 120)
    out = []
    for t in range(steps):
        own = phi * own + np.sqrt(1 - phi * phi) * rng.normal(0, 3, N)
        x = common[t] + own + rng.normal(0, 2, N)
        x[0] += max(0, t - START) * drift_per_step
        out.append(ReadingBatch(np.arange(N), np.full(N, T0 + 60 * t), x, np.ones(N, bool)))
    return out


def merged(batches: list[ReadingBatch], every: int) -> list[ReadingBatch]:
    cols = ("series", "ts_s", "value", "valid")
    return [
        ReadingBatch(*(np.concatenate([getattr(b, c) for b in batches[i : i + every]])
                       for c in cols))
        for i in range(0, len(batches), every)
    ]  # fmt: skip


def detectors(n: int = N) -> tuple[AnomalyDetector, NeighbourDrift]:
    det = AnomalyDetector(capacity=2)
    drift = NeighbourDrift(capacity=2)  # grown by doubling
    for _ in range(n):
        sid = det.add_series("O3")
        assert drift.add_series(0, det.config.sd_floor["O3"], 0.0) == sid
    return det, drift


def run(batches: list[ReadingBatch], det=None, drift=None) -> tuple[np.ndarray, np.ndarray]:
    if det is None:
        det, drift = detectors()
    out = [drift.update(b, det.update(b).flags) for b in batches]
    return np.concatenate([f for f, _ in out]), np.concatenate([s for _, s in out])


def test_drift_is_flagged_only_on_the_drifting_node() -> None:
    flags, score = run(stream(0.1))
    flags = flags.reshape(-1, N)
    drifting = flags[START:, 0] == DRIFT
    assert drifting.any()
    first = START + int(np.argmax(drifting))
    assert first < START + 300  # within 5 h at 6 units an hour (own wander: sd 3)
    assert drifting[first - START :].all()  # and it holds
    assert not flags[:START].any()
    assert not flags[:, 1:].any()
    assert ((score >= 0) & (score < 1)).all()


def test_common_changes_and_own_wander_are_not_drift() -> None:
    for seed in range(3):
        assert not run(stream(0.0, seed=seed))[0].any()


def test_batch_splits_and_row_order_do_not_change_results() -> None:
    batches = stream(0.1, steps=600)
    one = run(batches)
    for every in (7, 60):
        chunks = merged(batches, every)
        assert [a.tolist() for a in run(chunks)] == [a.tolist() for a in one]
    # node-major rows inside each batch, as a gateway uploading a backlog would send them
    shuffled, back = [], []
    offset = 0
    for b in merged(batches, 60):
        order = np.lexsort((b.ts_s, b.series))
        shuffled.append(ReadingBatch(b.series[order], b.ts_s[order], b.value[order],
                                     b.valid[order]))  # fmt: skip
        back.append(offset + np.argsort(order))
        offset += len(b)
    flags, score = run(shuffled)
    inverse = np.concatenate(back)
    assert flags[inverse].tolist() == one[0].tolist()
    assert score[inverse].tolist() == one[1].tolist()


def test_a_checkpoint_split_gives_the_results_of_one_run() -> None:
    batches = stream(0.1, steps=700)
    one = run(batches)
    det, drift = detectors()
    first = run(batches[:450], det, drift)
    arrays = drift.state_arrays()
    restored = NeighbourDrift()
    restored.load_state_arrays({k: v.copy() for k, v in arrays.items()})
    assert all(np.array_equal(v, restored.state_arrays()[k], equal_nan=True)
               for k, v in arrays.items())  # fmt: skip
    second = run(batches[450:], det, restored)
    for a, b, c in zip(one, first, second, strict=True):
        assert a.tolist() == np.concatenate([b, c]).tolist()


def test_inputs_are_not_modified_and_nan_is_tolerated() -> None:
    batches = stream(0.1, steps=500)
    for t in range(0, 500, 37):
        batches[t].value[3] = np.nan
    batches[100].valid[2] = False
    det, drift = detectors()
    for b in batches:
        keep = [getattr(b, c).copy() for c in ("series", "ts_s", "value", "valid")]
        flags = det.update(b).flags
        kept_flags = flags.copy()
        out, score = drift.update(b, flags)
        for c, k in zip(("series", "ts_s", "value", "valid"), keep, strict=True):
            assert np.array_equal(getattr(b, c), k, equal_nan=True)
        assert np.array_equal(flags, kept_flags)
        assert np.isfinite(score).all()
        assert not out[~np.isfinite(b.value)].any()


def test_ungrouped_and_lonely_series_are_not_scored() -> None:
    det = AnomalyDetector()
    drift = NeighbourDrift(DriftConfig(warmup_s=60))
    for g in (-1, 0, 0, 1, 1, 1, 1):
        drift.add_series(g, 0.5)
        det.add_series("O3")
    rng = np.random.default_rng(1)
    for t in range(300):
        x = 50 + rng.normal(0, 1, 7) + np.array([t, t, 0, 0, 0, 0, 0])  # 0 and 1 run away
        b = ReadingBatch(np.arange(7), np.full(7, T0 + 60 * t), x, np.ones(7, bool))
        flags, score = drift.update(b, det.update(b).flags)
        assert not flags[:3].any() and not score[:3].any()  # no group, or one neighbour

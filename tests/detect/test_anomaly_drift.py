"""NeighbourDrift: a node drifting away from its township is flagged; county-wide changes,
which every neighbour shares, are not; batch splits do not change results."""

from __future__ import annotations

import numpy as np

from detect import ReadingBatch
from detect._anomaly import AnomalyDetector
from detect._drift import DRIFT, NeighbourDrift

T0 = 1_780_243_200
N = 8


def stream(drift_per_step: float, steps: int = 900, seed: int = 0) -> list[ReadingBatch]:
    rng = np.random.default_rng(seed)
    common = 70 + np.cumsum(rng.normal(0, 1.0, steps))  # weather every node shares
    out = []
    for t in range(steps):
        x = common[t] + rng.normal(0, 4, N)
        x[0] += max(0, t - 400) * drift_per_step
        out.append(ReadingBatch(np.arange(N), np.full(N, T0 + 60 * t), x, np.ones(N, bool)))
    return out


def run(batches: list[ReadingBatch]) -> np.ndarray:
    det = AnomalyDetector(capacity=N)
    for _ in range(N):
        det.add_series("O3")
    drift = NeighbourDrift(det.state("sd_floor"))
    drift.set_groups(np.zeros(N, np.int64))
    flags = [drift.update(b, det.update(b).flags)[0] for b in batches]
    return np.concatenate(flags)


def test_drift_is_flagged_only_on_the_drifting_node() -> None:
    flags = run(stream(0.25)).reshape(-1, N)
    assert (flags[400:, 0] == DRIFT).sum() > 300
    assert not flags[:400].any()
    assert not flags[:, 1:].any()


def test_common_changes_are_not_drift() -> None:
    assert not run(stream(0.0)).any()


def test_split_invariance() -> None:
    batches = stream(0.25, steps=600)
    merged = [
        ReadingBatch(*(np.concatenate([getattr(b, c) for b in batches[i : i + 7]])
                       for c in ("series", "ts_s", "value", "valid")))
        for i in range(0, 600, 7)
    ]  # fmt: skip
    assert run(batches).tolist() == run(merged).tolist()

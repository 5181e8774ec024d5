"""The detector journal (ingest/_journal.py): a process killed after acknowledging batches
that its last checkpoint does not hold restarts with them in the detector, once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detect import RULE_1H, Detector, ReadingBatch
from ingest import DetectorJournal

HOUR_S = 1_773_000_000 // 3600 * 3600  # a whole hour (UTC) in 2026
SERIES = ("n1", "NO2", "air:2", "t1")


def build(path: Path | None) -> Detector:
    return Detector.restore(path) if path is not None else Detector()


def minutes(sid: int, first: int, last: int, value: float = 300.0) -> ReadingBatch:
    """NO2 every minute from ``first`` to ``last`` of the hour, over the 1-hour limit (200)."""
    n = last - first + 1
    return ReadingBatch(np.full(n, sid, np.int64), HOUR_S + 60 * np.arange(first, last + 1),
                        np.full(n, value), np.ones(n, np.bool_))  # fmt: skip


def opened(events: list) -> list:
    return [e for e in events if e.rule == RULE_1H and e.kind == "open"]


def test_batches_after_the_last_checkpoint_are_replayed_once(tmp_path: Path) -> None:
    journal = DetectorJournal(tmp_path)
    detector, replayed = journal.load(build)
    assert replayed == [] and journal.readings == 0
    sid = detector.series_id(*SERIES)
    for batch, new in ((minutes(sid, 0, 29), [(sid, *SERIES)]), (minutes(sid, 30, 59), [])):
        detector.update(batch)
        journal.record(batch, new, list(range(batch.ts_s[0] // 60 % 60, 60))[: len(batch)])
        if new:
            journal.checkpoint(detector)  # after the first half hour only
    # SIGKILL here: no checkpoint, no close. The checkpoint alone holds half an hour.
    checkpointed = sorted(tmp_path.glob("detector-*.npz"))[-1]
    alone = Detector.restore(checkpointed)
    assert opened(alone.update(minutes(alone.series_id(*SERIES), 60, 60))) == []  # 30 min: invalid

    again = DetectorJournal(tmp_path)
    restored, _ = again.load(build)
    assert (again.readings, again.replayed) == (60, 30)
    assert again.seen == [("n1", seq) for seq in range(30, 60)]  # for ingest's de-duplication
    events = restored.update(minutes(restored.series_id(*SERIES), 60, 60))
    assert len(opened(events)) == 1  # 60 valid minutes: the exceeding hour is judged

    # and once only: a third start replays nothing more
    third = DetectorJournal(tmp_path)
    third.load(build)
    assert (third.readings, third.replayed) == (60, 0)
    for j in (journal, again, third):
        j.close()


def test_series_registered_after_the_checkpoint_keep_their_ids(tmp_path: Path) -> None:
    journal = DetectorJournal(tmp_path)
    detector, _ = journal.load(build)
    first = detector.series_id(*SERIES)
    journal.checkpoint(detector)
    other = ("n2", "SO2", "air:2", "t1")
    second = detector.series_id(*other)
    batch = minutes(second, 0, 9, 20.0)
    detector.update(batch)
    journal.record(batch, [(second, *other)], list(range(10)))
    journal.close()
    restored, _ = DetectorJournal(tmp_path).load(build)
    assert restored.series_id(*SERIES) == first
    assert restored.series_id(*other) == second

"""SeqWindow: duplicates, reused and rewound seqs, and seqs remembered without their time."""

from __future__ import annotations

from ingest._dedup import DUPLICATE, SEQ_REUSED, SEQ_REWOUND, SeqWindow


def test_a_resend_is_a_duplicate_and_another_time_under_a_seq_is_refused() -> None:
    window = SeqWindow(window=10)
    assert window.accept("n", 5, 1000) is None
    assert window.accept("n", 5, 1000) == DUPLICATE
    assert window.accept("n", 5, 2000) == SEQ_REUSED
    assert window.accept("n", 3, 900) is None  # a late reading filling a gap
    assert window.accept("n", 30, 9000) is None
    assert window.accept("n", 20, 8000) == SEQ_REWOUND  # at or below highest - window
    assert window.gaps == 24  # 6..29 skipped (a first seq opens no gap)


def test_a_remembered_seq_is_a_duplicate_whatever_its_time() -> None:
    window = SeqWindow()
    window.remember("n", 7)  # what a previous process fed the detector (its journal)
    assert window.accept("n", 7, 123_456) == DUPLICATE
    assert window.accept("n", 8, 123_457) is None
    window.accept("n", 9, 500)
    window.remember("n", 9)  # one seen with its time keeps it
    assert window.accept("n", 9, 501) == SEQ_REUSED

"""The persistent outbox on a real SQLite file: numbering, order, ack, the bound, reopening;
and random sequences of operations against a plain list as the model."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
)

from edge import Outbox, OutboxError
from tianwang.codec import Reading

NODE = "yy-0001"
TS = 1795766400000


def values(*numbers: float) -> list[tuple[str, float, str, str]]:
    return [("PM2.5", v, "ug/m3", "N") for v in numbers]


def seqs(readings: list[Reading]) -> list[int]:
    return [r.seq for r in readings]


def test_seqs_increase_across_puts(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", NODE)
    first = outbox.put(TS, values(1, 2, 3))
    second = outbox.put(TS + 60_000, values(4, 5))
    assert seqs(first) == [0, 1, 2]
    assert seqs(second) == [3, 4]
    assert first[0] == Reading(NODE, 0, TS, "PM2.5", 1.0, "ug/m3", "N")
    assert second[1] == Reading(NODE, 4, TS + 60_000, "PM2.5", 5.0, "ug/m3", "N")
    assert outbox.put(TS, []) == []  # an empty sample uses no number
    assert seqs(outbox.put(TS, values(6))) == [5]
    assert outbox.next_seq == 6
    outbox.close()


def test_seqs_continue_after_reopen_even_when_everything_was_acked(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path, NODE)
    outbox.put(TS, values(1, 2, 3, 4, 5))
    outbox.ack(outbox.peek(100))
    assert len(outbox) == 0
    outbox.close()

    reopened = Outbox(path, NODE)
    assert len(reopened) == 0
    assert reopened.next_seq == 5
    assert seqs(reopened.put(TS, values(6, 7))) == [5, 6]
    reopened.close()

    again = Outbox(path, NODE)
    assert seqs(again.peek(10)) == [5, 6]
    assert seqs(again.put(TS, values(8))) == [7]
    again.close()


def test_peek_is_oldest_first_and_nan_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path, NODE)
    outbox.put(TS, [("NO2", 40.5, "ug/m3", "N"), ("CO", math.nan, "mg/m3", "D")])
    outbox.put(TS + 60_000, [("NO2", -0.0, "ug/m3", "N"), ("CO", 1e-300, "mg/m3", "T")])
    assert seqs(outbox.peek(2)) == [0, 1]
    assert seqs(outbox.peek(3)) == [0, 1, 2]
    outbox.close()

    peeked = Outbox(path, NODE).peek(100)  # from the file, not from memory
    assert seqs(peeked) == [0, 1, 2, 3]
    assert [r.ts_ms for r in peeked] == [TS, TS, TS + 60_000, TS + 60_000]
    assert peeked[0] == Reading(NODE, 0, TS, "NO2", 40.5, "ug/m3", "N")
    nan = peeked[1]
    assert (nan.quantity, nan.unit, nan.flag) == ("CO", "mg/m3", "D")
    assert isinstance(nan.value, float) and math.isnan(nan.value)
    assert peeked[3].value == 1e-300 and peeked[3].flag == "T"


def test_ack_deletes_only_the_given_readings(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", NODE)
    readings = outbox.put(TS, values(0, 1, 2, 3, 4))
    assert len(outbox) == 5
    outbox.ack([readings[1], readings[3]])
    assert len(outbox) == 3
    assert seqs(outbox.peek(10)) == [0, 2, 4]
    outbox.ack([readings[1]])  # acknowledged twice: nothing more goes
    assert len(outbox) == 3
    outbox.ack([])
    assert seqs(outbox.peek(10)) == [0, 2, 4]
    outbox.ack(outbox.peek(2))
    assert seqs(outbox.peek(10)) == [4]
    assert len(outbox) == 1


@pytest.mark.parametrize("per_put", [1, 4, 25])
def test_bound_keeps_the_newest_and_counts_the_dropped(tmp_path: Path, per_put: int) -> None:
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path, NODE, max_readings=10)
    for start in range(0, 25, per_put):
        outbox.put(TS, values(*range(start, min(start + per_put, 25))))
        assert len(outbox) <= 10
    assert len(outbox) == 10
    assert outbox.dropped == 15
    kept = outbox.peek(100)
    assert seqs(kept) == list(range(15, 25))
    assert [r.value for r in kept] == [float(v) for v in range(15, 25)]
    outbox.close()

    reopened = Outbox(path, NODE, max_readings=10)
    assert (len(reopened), reopened.dropped, reopened.next_seq) == (10, 15, 25)
    assert seqs(reopened.peek(100)) == list(range(15, 25))
    reopened.put(TS, values(25))
    assert (len(reopened), reopened.dropped) == (10, 16)
    assert seqs(reopened.peek(1)) == [16]


def test_len_tracks_depth(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", NODE, synchronous="NORMAL")
    assert len(outbox) == 0
    outbox.put(TS, values(1, 2, 3))
    assert len(outbox) == 3
    outbox.put(TS, values(4))
    assert len(outbox) == 4
    outbox.ack(outbox.peek(2))
    assert len(outbox) == 2
    outbox.ack(outbox.peek(5))
    assert len(outbox) == 0


def test_an_unusable_file_is_an_outbox_error(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="outbox"):
        Outbox(tmp_path, NODE)  # a folder
    with pytest.raises(ValueError, match="max_readings"):
        Outbox(tmp_path / "outbox.sqlite", NODE, max_readings=0)


# --- random sequences against a model ---------------------------------------------------------

VALUE = st.floats(allow_nan=True, allow_infinity=False, width=64) | st.sampled_from([math.nan])


class OutboxMachine(RuleBasedStateMachine):
    """The model: the list of readings still to send, the next seq and the dropped count."""

    peeked = Bundle("peeked")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="outbox-model-"))
        self.path = self.folder / "outbox.sqlite"
        self.bound = 8
        self.outbox = Outbox(self.path, NODE, max_readings=self.bound)
        self.model: list[Reading] = []
        self.next_seq = 0
        self.dropped = 0
        self.issued: list[int] = []

    @rule(numbers=st.lists(VALUE, max_size=12), ts=st.integers(0, 2**40))
    def put(self, numbers: list[float], ts: int) -> None:
        got = self.outbox.put(ts, values(*numbers))
        want = [
            Reading(NODE, self.next_seq + i, ts, "PM2.5", v, "ug/m3", "N")
            for i, v in enumerate(numbers)
        ]
        assert seqs(got) == seqs(want)
        self.issued += seqs(got)
        self.next_seq += len(numbers)
        self.model += want
        excess = len(self.model) - self.bound
        if excess > 0:
            self.dropped += excess
            del self.model[:excess]

    @rule(target=peeked, limit=st.integers(0, 12))
    def peek(self, limit: int) -> object:
        got = self.outbox.peek(limit)
        assert same(got, self.model[:limit])
        return multiple(*got)

    @rule(reading=consumes(peeked))
    def ack_one(self, reading: Reading) -> None:
        self.outbox.ack([reading])
        self.model = [r for r in self.model if r.seq != reading.seq]

    @rule(limit=st.integers(1, 12))
    def ack_oldest(self, limit: int) -> None:
        batch = self.outbox.peek(limit)
        self.outbox.ack(batch)
        done = set(seqs(batch))
        self.model = [r for r in self.model if r.seq not in done]

    @rule()
    def reopen(self) -> None:
        self.outbox.close()
        self.outbox = Outbox(self.path, NODE, max_readings=self.bound)

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert len(self.outbox) == len(self.model)
        assert self.outbox.next_seq == self.next_seq
        assert self.outbox.dropped == self.dropped
        assert same(self.outbox.peek(self.bound + 1), self.model)
        assert self.issued == list(range(self.next_seq))  # never a gap, never a repeat

    def teardown(self) -> None:
        self.outbox.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def same(got: list[Reading], want: list[Reading]) -> bool:
    """Equal readings, NaN equal to NaN."""

    def key(r: Reading) -> tuple[object, ...]:
        return (*r[:4], "nan" if math.isnan(r.value) else r.value, *r[5:])

    return [key(r) for r in got] == [key(r) for r in want]


OutboxMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestOutboxAgainstModel = OutboxMachine.TestCase

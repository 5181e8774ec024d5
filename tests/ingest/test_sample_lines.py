"""The ``sample`` measurement: one line per node and sample time (docs/protocol.md)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from ingest import SAMPLE_MEASUREMENT, node_tags, sample_lines
from tests.ingest.lineproto import parse_line
from tianwang.codec import Reading
from tianwang.registry import Registry

TAGS = "county=yiyuan,township=nanma,village=xili,node=yy-0005"
T0 = 1795766400000


def reading(quantity: str, value: float, ts: int = T0, seq: int = 7, flag: str = "N") -> Reading:
    return Reading("yy-0005", seq, ts, quantity, value, "ug/m3", flag)


def test_one_line_per_sample_time_with_value_flag_and_seq() -> None:
    lines = sample_lines(
        TAGS,
        [
            reading("PM2.5", 12.5, seq=1),
            reading("NO2", 40.0, seq=1),
            reading("PM2.5", 13.25, ts=T0 + 60_000, seq=2),
        ],
    )
    assert lines == [
        f'sample,{TAGS} PM2.5=12.5,PM2.5_flag="N",PM2.5_seq=1i,'
        f'NO2=40.0,NO2_flag="N",NO2_seq=1i {T0}',
        f'sample,{TAGS} PM2.5=13.25,PM2.5_flag="N",PM2.5_seq=2i {T0 + 60_000}',
    ]
    assert SAMPLE_MEASUREMENT == "sample"


def test_missing_values_keep_flag_and_seq() -> None:
    (line,) = sample_lines(
        TAGS, [reading("NH3-N", math.nan, flag="F"), reading("DO", math.inf), reading("pH", 7.1)]
    )
    _, _, fields, _ = parse_line(line)
    assert fields == {
        "NH3-N_flag": "F",
        "NH3-N_seq": 7,
        "DO_flag": "N",
        "DO_seq": 7,
        "pH": 7.1,
        "pH_flag": "N",
        "pH_seq": 7,
    }


def test_field_keys_tags_and_flags_are_escaped() -> None:
    (line,) = sample_lines(
        r"node=a\ b\,c\=d", [reading("odd q,x=y", 1e-5, flag='a"b\\'), reading("PM10", 3.0)]
    )
    assert line.startswith(r"sample,node=a\ b\,c\=d odd\ q\,x\=y=1e-05,")
    measurement, tags, fields, ts = parse_line(line)
    assert (measurement, tags, ts) == ("sample", {"node": "a b,c=d"}, T0)
    assert fields["odd q,x=y"] == 1e-5
    assert fields["odd q,x=y_flag"] == 'a"b\\'
    assert fields["PM10"] == 3.0


def test_a_quantity_repeated_at_one_time_keeps_the_last() -> None:
    (line,) = sample_lines(TAGS, [reading("O3", 1.0, seq=1), reading("O3", 2.0, seq=2)])
    assert parse_line(line)[2] == {"O3": 2.0, "O3_flag": "N", "O3_seq": 2}


def test_node_tags_of_the_registry(county: Registry) -> None:
    node = next(iter(county.nodes.values()))
    (line,) = sample_lines(node_tags(node), [reading("SO2", 5.0)])
    tags = parse_line(line)[1]
    place = node.place
    assert tags == {
        "county": place.county,
        "township": place.township,
        "village": place.village,
        "node": place.node,
    }


NAMES = st.text(alphabet="abcXY09.-, =", min_size=1, max_size=8)
FLAGS = st.text(alphabet='NFMDTab" ,=\\', min_size=1, max_size=3)
READINGS = st.lists(
    st.builds(
        Reading,
        node=st.just("n"),
        seq=st.integers(0, 2**53),
        ts_ms=st.sampled_from([T0, T0 + 1, T0 + 60_000]),
        quantity=NAMES,
        value=st.floats(allow_nan=True, allow_infinity=True),
        unit=st.just("u"),
        flag=FLAGS,
    ),
    max_size=30,
)


@given(READINGS, NAMES)
def test_parsing_the_lines_back_gives_the_readings(readings: list[Reading], node: str) -> None:
    tags = node_tags_for(node)
    expected: dict[int, dict[str, object]] = {}
    for r in readings:  # the last reading of a quantity at a time wins
        fields = expected.setdefault(r.ts_ms, {})
        for key in (r.quantity, f"{r.quantity}_flag", f"{r.quantity}_seq"):
            fields.pop(key, None)
        if math.isfinite(r.value):
            fields[r.quantity] = r.value
        fields[f"{r.quantity}_flag"] = r.flag
        fields[f"{r.quantity}_seq"] = r.seq
    parsed = {}
    for line in sample_lines(tags, readings):
        measurement, got_tags, fields, ts = parse_line(line)
        assert measurement == "sample"
        assert got_tags == {"node": node}
        assert ts not in parsed
        parsed[ts] = fields
    assert parsed == expected


def node_tags_for(node: str) -> str:
    return "node=" + node.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")

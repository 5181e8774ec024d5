"""Topic scheme v1: tw/v1/<county>/<township>/<village>/<node>/<kind>."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tianwang.topics import (
    DATA_FILTER,
    KINDS,
    STATUS_FILTER,
    NodeTopic,
    TopicError,
    county_filter,
    parse_topic,
)

PLACE = NodeTopic("yiyuan", "nanma", "dongli", "yy-0001")

# A level: no separator, no MQTT wildcard, not empty.
levels = st.text(
    st.characters(blacklist_characters="/+#", blacklist_categories=("Cs",)), min_size=1
)


def test_topic_layout() -> None:
    assert PLACE.topic("data") == "tw/v1/yiyuan/nanma/dongli/yy-0001/data"
    assert PLACE.topic("status") == "tw/v1/yiyuan/nanma/dongli/yy-0001/status"


@given(levels, levels, levels, levels, st.sampled_from(sorted(KINDS)))
def test_parse_topic_round_trip(
    county: str, township: str, village: str, node: str, kind: str
) -> None:
    place = NodeTopic(county, township, village, node)
    assert parse_topic(place.topic(kind)) == (place, kind)


def test_unknown_kind_is_refused_when_building() -> None:
    with pytest.raises(TopicError, match="unknown topic kind"):
        PLACE.topic("telemetry")


@pytest.mark.parametrize(
    "topic",
    [
        "tw/v2/yiyuan/nanma/dongli/yy-0001/data",  # wrong version
        "xx/v1/yiyuan/nanma/dongli/yy-0001/data",  # wrong root
        "/tw/v1/yiyuan/nanma/dongli/yy-0001/data",  # leading slash shifts the levels
        "tw/v1/yiyuan/nanma/dongli/data",  # a level short
        "tw/v1/yiyuan/nanma/dongli/yy-0001/data/extra",  # a level too many
        "tw/v1/yiyuan/nanma/dongli/yy-0001/data/",  # trailing slash
        "tw/v1",
        "",
    ],
)
def test_not_a_v1_topic(topic: str) -> None:
    with pytest.raises(TopicError, match="not a tw/v1 topic"):
        parse_topic(topic)


@pytest.mark.parametrize("kind", ["telemetry", "Data", "", "+"])
def test_unknown_kind(kind: str) -> None:
    with pytest.raises(TopicError, match="unknown topic kind"):
        parse_topic(f"tw/v1/yiyuan/nanma/dongli/yy-0001/{kind}")


@pytest.mark.parametrize(
    "topic",
    [
        "tw/v1//nanma/dongli/yy-0001/data",
        "tw/v1/yiyuan//dongli/yy-0001/data",
        "tw/v1/yiyuan/nanma//yy-0001/data",
        "tw/v1/yiyuan/nanma/dongli//data",
    ],
)
def test_empty_level(topic: str) -> None:
    with pytest.raises(TopicError, match="empty level"):
        parse_topic(topic)


def test_county_filter() -> None:
    assert county_filter("yiyuan") == "tw/v1/yiyuan/+/+/+/data"
    assert county_filter("yiyuan", "status") == "tw/v1/yiyuan/+/+/+/status"


def test_filters_have_the_topic_shape() -> None:
    # Every filter has as many levels as a topic and puts the kind last.
    for flt, kind in [(DATA_FILTER, "data"), (STATUS_FILTER, "status")]:
        parts = flt.split("/")
        assert len(parts) == len(PLACE.topic(kind).split("/")) == 7
        assert parts[-1] == kind
        assert parts[2:6] == ["+"] * 4

"""Shape and consistency of the standards' data files added for the daily statistics."""

from __future__ import annotations

import itertools
from importlib import resources

import pytest
import yaml


def load(name: str) -> dict:
    text = resources.files("tianwang").joinpath(f"data/standards/{name}.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def test_hj633_rows_rise_and_editions_are_contiguous():
    raw = load("hj633")
    for e in raw["editions"]:
        for row in e["breakpoints"]:
            bp = [v for v in row["bp"] if v is not None]
            assert len(row["bp"]) == len(raw["iaqi"])
            assert bp == sorted(bp) and len(set(bp)) == len(bp), row
            assert ("above_last" in row) == (len(bp) < len(raw["iaqi"])), row
    for a, b in itertools.pairwise(raw["editions"]):
        assert a["effective_until"] == b["effective_from"]


def test_gb3838_limits_tighten_towards_class_i():
    (edition,) = load("gb3838")["editions"]
    for quantity, direction, *limits in edition["limits"]:
        assert len(limits) == 5, quantity
        ordered = sorted(limits, reverse=direction == "min")
        assert limits == ordered, quantity


@pytest.mark.parametrize("index", [1, 2])
def test_gb3096_limits_rise_with_zone_class(index):
    (edition,) = load("gb3096")["editions"]
    values = [row[index] for row in edition["limits"]]
    assert values == sorted(values)
    assert all(day > night for _, day, night in edition["limits"])

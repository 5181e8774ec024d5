"""Schemathesis against the officer API's own OpenAPI document, in-process (ASGI), with a
county officer's token (who may act on every incident of the county) and with a village
officer's (most ids answer 404): no request may end in a server error.

The app is built when the module is collected: schemathesis' lazy ``from_fixture`` does not
run under pytest 9 (it sets ``request.node._nodeid``, which pytest 9 no longer has)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from grid import IncidentStore, Tokens, create_app
from tests.grid.conftest import T0, draft
from tianwang.registry import load_registry

ROOT = Path(__file__).resolve().parents[2]
COUNTY, VILLAGE = "hb-yiyuan-duty", "off-nanma-dongli"
PLACES = [("nanma", "dongli"), ("nanma", "xili"), ("lishan", "shanxi"), ("lucun", "lucun")]

_folder = tempfile.TemporaryDirectory(prefix="officer-api-")
_store = IncidentStore(f"sqlite:///{Path(_folder.name) / 'incidents.sqlite'}")
# Incidents 1.. in several villages: the id 1 of the OpenAPI example and small ids exist.
for _i, (_township, _village) in enumerate(PLACES * 3):
    _store.open_or_extend(
        replace(draft(f"n{_i}", township=_township, village=_village), county="yiyuan"), now=T0
    )
_tokens = Tokens(_store, {})
TOKENS = {who: _tokens.issue(who).token for who in (COUNTY, VILLAGE)}
_app = create_app(load_registry(ROOT / "examples" / "county.yaml"), _store, _tokens)
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)
bounded = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _store.close()
    _folder.cleanup()


def _call(case: schemathesis.Case, officer: str) -> None:
    headers = {"Authorization": f"Bearer {TOKENS[officer]}"}
    case.call_and_validate(headers=headers, checks=[not_a_server_error])


@schema.parametrize()
@bounded
def test_no_server_error_as_the_county_officer(case: schemathesis.Case) -> None:
    _call(case, COUNTY)


@schema.parametrize()
@bounded
def test_no_server_error_as_a_village_officer(case: schemathesis.Case) -> None:
    _call(case, VILLAGE)

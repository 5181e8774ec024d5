"""Fuzzing the ingest front door: MessageValidator.message / .reading and IngestService.handle
on hostile input (random bytes, truncated JSON, 1 MB payloads, deep nesting, NaN/Infinity
literals, wrong types, unicode ids, random topics). Bad input is a PayloadError with a reason
code or a counted rejection, never another exception, and memory stays bounded."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detect import Detector
from ingest import InfluxV1Sink, IngestConfig, IngestService, count_stored, stored_readings
from ingest._service import _Pending
from ingest._validate import MessageValidator
from tianwang.codec import FLAGS, PayloadError, Reading, Status, encode_data, encode_status
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.quantities import quantity_table
from tianwang.registry import Registry
from tianwang.services import InfluxDB, Mosquitto

NOW_S = 1795766400.0
NOW_MS = NOW_S * 1000
NODE = "yy-0001"
TOPIC = "tw/v1/yiyuan/nanma/dongli/yy-0001/data"
MB = 1 << 20
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies -------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip
stamps = st.one_of(
    st.just("2026-11-27T00:00:00Z"),
    st.from_regex(
        r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
        r"(Z|[+-][0-9]{2}:[0-9]{2})\Z"
    ),
    st.text(max_size=30),
)
quantities = st.one_of(st.sampled_from(sorted(quantity_table().quantities)), st.text(max_size=33))
units = st.one_of(st.sampled_from(["ug/m3", "mg/m3", "ng/m3", "ppb", "ppm", "µg/m³", "mg/L",
                                   "dB(A)", "pH", "furlongs"]), st.text(max_size=17))  # fmt: skip
node_ids = st.one_of(st.sampled_from([NODE, "yy-0002", "yy-0064", "zz-9999"]),
                     st.text(max_size=70))  # fmt: skip


def dumps(value: Any) -> bytes:
    """Compact JSON, integers of any size, non-ASCII text as UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@st.composite
def reading_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "seq": draw(st.one_of(st.integers(0, 2**53 - 1), st.integers(-(2**64), 2**64))),
        "ts": draw(stamps),
        "quantity": draw(quantities),
        "value": draw(
            st.one_of(
                st.none(),
                st.floats(allow_nan=False, allow_infinity=False),
                st.integers(-(2**63), 2**63 - 1),
            )
        ),
        "unit": draw(units),
        "flag": draw(st.one_of(st.sampled_from(FLAGS), st.text(max_size=2))),
    }
    if draw(st.booleans()):  # a field of the wrong type, missing or extra
        key = draw(st.sampled_from([*doc, "extra"]))
        if draw(st.booleans()):
            doc[key] = draw(json_values)
        else:
            doc.pop(key, None)
    return doc


@st.composite
def data_payloads(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = {
        "v": draw(st.one_of(st.just(1), json_scalars)),
        "node": draw(node_ids),
        "readings": draw(st.lists(reading_docs(), min_size=0, max_size=5)),
    }
    if draw(st.integers(0, 4)) == 0:
        key = draw(st.sampled_from(["v", "node", "readings", "x"]))
        doc[key] = draw(json_values)
    raw = dumps(doc)
    how = draw(st.integers(0, 5))
    if how == 0:  # truncated
        raw = raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    elif how == 1:  # a literal JSON does not have
        literal = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-0",
                                        b"1" * 400, b"0x10", b"01"]))  # fmt: skip
        raw = raw.replace(b'"value":', b'"value":' + literal + b',"_":', 1)
        if draw(st.booleans()):
            raw = raw.replace(b'"seq":', b'"seq":' + literal + b',"_":', 1)
    elif how == 2 and raw:  # a byte flipped
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1 :]
    return raw


def nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    if kind == "dict":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"v":1,"node":"yy-0001","readings":[' + b"[" * depth + b"]" * depth + b"]}"


payloads = st.one_of(
    st.binary(max_size=300),
    data_payloads(),
    st.builds(nested, st.integers(1, 5000), st.sampled_from(["list", "dict", "readings"])),
    st.builds(lambda s: s.encode("utf-8", "surrogatepass"), st.text(max_size=200)),
    st.builds(lambda v: dumps(v), json_values),
    st.sampled_from([b"", b"null", b"1", b"[]", b"{}", b'"x"', b"\xef\xbb\xbf{}"]),
)
topics = st.one_of(
    st.just(TOPIC),
    st.sampled_from(["tw/v1/yiyuan/nanma/dongli/yy-0002/data",
                     "tw/v1/yiyuan/nanma/dongli/yy-0001/status",
                     "tw/v1/yiyuan/nanma/dongli/yy-0001/cfg", "tw/v1//nanma/dongli/x/data",
                     "tw/v2/yiyuan/nanma/dongli/yy-0001/data", "", "/", "tw/v1"]),
    st.lists(st.text(max_size=10), max_size=9).map("/".join),
    st.builds(lambda levels: "tw/v1/" + "/".join(levels) + "/data",
              st.lists(st.text(min_size=1, max_size=10), min_size=4, max_size=4)),
)  # fmt: skip


# -- MessageValidator -------------------------------------------------------------------------


def check_message(validator: MessageValidator, topic: str, payload: bytes) -> str:
    """The contract: (node, readings) of a registered node on its own path, or PayloadError
    with a reason code; each reading then checks to (reading, None) or (None, reason)."""
    try:
        node, readings = validator.message(topic, payload)
    except PayloadError as exc:
        assert isinstance(exc.reason, str) and exc.reason, exc
        assert isinstance(exc.detail, str)
        return exc.reason
    assert validator.registry.nodes[node.id] is node
    assert topic == node.place.topic("data")
    assert 1 <= len(readings) <= 1000
    for raw in readings:
        assert raw.node == node.id
        reading, reason = validator.reading(node, raw, NOW_MS)
        if reading is None:
            assert isinstance(reason, str) and reason
        else:
            assert reason is None
            assert reading.unit == validator.quantities.quantities[reading.quantity].unit
            assert math.isnan(reading.value) or math.isfinite(reading.value)
    return "ok"


@FUZZ
@given(topic=topics, payload=payloads)
def test_validator_message_returns_or_raises_payload_error(topic: str, payload: bytes) -> None:
    validator = _validator()
    check_message(validator, topic, payload)
    check_message(validator, TOPIC, payload)  # the payload on the right path too


@FUZZ
@given(readings=st.lists(reading_docs(), min_size=1, max_size=5), node=node_ids)
def test_validator_on_schema_shaped_messages(readings: list[dict[str, Any]], node: str) -> None:
    validator = _validator()
    payload = dumps({"v": 1, "node": node, "readings": readings})
    check_message(validator, TOPIC, payload)


_VALIDATOR: list[MessageValidator] = []


def _validator() -> MessageValidator:
    if not _VALIDATOR:
        from tests.conftest import EXAMPLES
        from tianwang.registry import load_registry

        _VALIDATOR.append(MessageValidator(load_registry(EXAMPLES / "county.yaml"),
                                           quantity_table()))  # fmt: skip
    return _VALIDATOR[0]


def _reading_doc(seq: int) -> dict[str, Any]:
    return {"seq": seq, "ts": "2026-11-27T00:00:00Z", "quantity": "NO2", "value": 40.0,
            "unit": "ug/m3", "flag": "N"}  # fmt: skip


HUGE = {
    "open brackets": b"[" * MB,
    "nested lists": b"[" * (MB // 2) + b"]" * (MB // 2),
    "numbers": b"[" + b"1.5," * (MB // 4 - 1) + b"1.5]",
    "objects": b"[" + b'{"a":{"b":[1,2,{"c":null}]}},' * (MB // 30) + b"1]",
    "whitespace": b" " * MB,
    "long node id": orjson.dumps({"v": 1, "node": "x" * MB, "readings": [_reading_doc(1)]}),
    "long quantities": orjson.dumps(
        {
            "v": 1,
            "node": NODE,
            "readings": [dict(_reading_doc(i), quantity="Q" * 1000) for i in range(1000)],
        }
    ),
    "too many readings": orjson.dumps(
        {"v": 1, "node": NODE, "readings": [_reading_doc(i) for i in range(12_000)]}
    ),
    "random bytes": bytes(range(256)) * (MB // 256),
}
PEAK_LIMIT_MB = 64  # measured 12-33 MB for these 1 MB payloads (CPython 3.11, orjson)


@pytest.mark.parametrize("name", sorted(HUGE))
def test_a_1mb_payload_is_refused_in_bounded_memory(name: str) -> None:
    validator = _validator()
    payload = HUGE[name]
    assert len(payload) >= 0.7 * MB
    gc.collect()
    tracemalloc.start()
    try:
        reason = check_message(validator, TOPIC, payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reason in {"not_json", "schema"}
    assert peak < PEAK_LIMIT_MB * MB, f"{name}: peak {peak / MB:.1f} MB"


def test_the_largest_valid_message_is_accepted() -> None:
    payload = orjson.dumps({"v": 1, "node": NODE, "readings": [
        _reading_doc(i) for i in range(1000)]})  # fmt: skip
    assert check_message(_validator(), TOPIC, payload) == "ok"


SEQ_BUG = (
    "tianwang/codec.py decode_data: JSON Schema 'integer' lets 2.0 / 1e2 through "
    "(fastjsonschema), and the float is kept as Reading.seq; ingest/_lines.py then writes "
    "'NO2_seq=2.0i', a line InfluxDB refuses"
)


@pytest.mark.parametrize("seq", [b"2.0", b"1e2"])
def test_an_integral_float_seq_is_refused_or_made_an_int(seq: bytes) -> None:
    payload = orjson.dumps({"v": 1, "node": NODE, "readings": [_reading_doc(7)]})
    payload = payload.replace(b'"seq":7', b'"seq":' + seq)
    try:
        _, (reading,) = _validator().message(TOPIC, payload)
    except PayloadError as exc:
        assert exc.reason == "schema"
        return
    assert type(reading.seq) is int, reading


# -- IngestService.handle ---------------------------------------------------------------------


class NoSink:
    """handle() only queues; a write here would be a test failure."""

    points_written = 0

    async def write(self, lines: list[str]) -> None:
        raise AssertionError("handle() wrote to the sink")

    async def __aenter__(self) -> NoSink:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


async def _ignore(events: list[object]) -> None:
    return None


@contextmanager
def unentered_service(registry: Registry, **config: Any) -> Iterator[IngestService]:
    """An IngestService built in a running loop but not entered (no broker connection), with
    a batch to queue into: ``handle`` can be called directly."""
    loop = asyncio.new_event_loop()

    async def build() -> IngestService:
        cfg = IngestConfig(BrokerAddress("127.0.0.1", 9), **config)
        service = IngestService(cfg, registry, Detector(), NoSink(), _ignore,  # type: ignore[arg-type]
                                clock=lambda: NOW_S)  # fmt: skip
        service._pending = _Pending()
        return service

    try:
        yield loop.run_until_complete(build())
    finally:
        loop.close()


def _status_payloads() -> st.SearchStrategy[bytes]:
    status = st.builds(Status, node_ids, st.sampled_from(["online", "offline", "x"]),
                       st.one_of(st.none(), st.integers(0, 2**45)))  # fmt: skip
    return status.map(lambda s: orjson.dumps({"v": 1, "node": s.node, "state": s.state,
                                              "ts": s.ts_ms}))  # fmt: skip


def test_ingest_handle_never_raises(county: Registry) -> None:
    with unentered_service(county) as service:

        @FUZZ
        @given(topic=topics, payload=st.one_of(payloads, _status_payloads()))
        def fuzz(topic: str, payload: bytes) -> None:
            before = service.counts.copy(), service.rejections.total()
            service.handle(topic, payload)
            service.handle(TOPIC, payload)
            service.handle(TOPIC.replace("/data", "/status"), payload)
            # every call is accounted for: a message, a status, or a rejection
            counts, rejected = service.counts, service.rejections.total()
            seen = sum(counts[k] - before[0][k] for k in ("messages", "status"))
            assert seen + rejected - before[1] >= 3

        fuzz()
        good = encode_status(Status(NODE, "online", 1795766400000))
        service.handle(TOPIC.replace("/data", "/status"), good)
        assert service.deadman.said[NODE] == "online"
        pending = service._pending
        assert pending is not None
        assert len(pending) == len(pending.series) == len(pending.value) == len(pending.ts_s)
        assert service.counts["readings"] + service.counts["duplicate"] >= len(pending)


def test_ingest_handle_with_a_quarantine_file_never_raises(county: Registry, tmp_path) -> None:
    with unentered_service(county, quarantine_path=tmp_path / "q.jsonl") as service:
        service.handle(TOPIC, b"\x00 not json")
        service.quarantine.close()
    assert service.rejections == {"not_json": 1}
    assert len((tmp_path / "q.jsonl").read_bytes().splitlines()) == 1


def test_rejected_large_payloads_are_not_all_kept_in_memory(county: Registry) -> None:
    with unentered_service(county) as service:
        gc.collect()
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            for i in range(100):
                service.handle(TOPIC, b"x%d" % i + b" " * MB)  # not_json, 1 MB each
            gc.collect()
            kept, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert service.rejections == {"not_json": 100}
    assert (kept - base) < 32 * MB, f"{(kept - base) / MB:.0f} MB kept after 100 x 1 MB"


# -- through the broker and the database ------------------------------------------------------

NASTY = [
    b"[" * MB,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    orjson.dumps({"v": 1, "node": "yy-0001", "readings": [_reading_doc(1)]}).replace(
        b"40.0", b"NaN"
    ),
    orjson.dumps({"v": 1, "node": "节点-1", "readings": [_reading_doc(1)]}),
    orjson.dumps({"v": 1, "node": "yy-0001", "readings": [dict(_reading_doc(1), value="4")]}),
    bytes(range(256)) * 64,
    b"",
]


async def _through_broker(registry: Registry, broker: Mosquitto, influx: InfluxDB) -> tuple:
    address = BrokerAddress.parse(broker.url)
    good = encode_data(NODE, [Reading(NODE, 5, int(NOW_MS), "NO2", 40.0, "ug/m3", "N")])
    async with InfluxV1Sink(influx.url) as sink:
        config = IngestConfig(address, flush_interval_s=0.05)
        async with IngestService(config, registry, Detector(), sink, _ignore,
                                 clock=lambda: NOW_S) as ingest:  # fmt: skip
            async with MqttLink(address, "test-nasty") as link:
                for payload in NASTY:
                    await link.publish(TOPIC, payload, qos=1)
                await link.publish(TOPIC, good, qos=1)
            assert await ingest.wait_for_readings(1, timeout_s=20)
        stored = await stored_readings(sink, NODE)
    return ingest, stored


def test_nasty_payloads_through_the_broker_leave_ingest_working(
    mosquitto: Mosquitto, influxdb: InfluxDB, county: Registry
) -> None:
    ingest, stored = asyncio.run(_through_broker(county, mosquitto, influxdb))
    assert [(r.seq, r.value) for r in stored] == [(5, 40.0)]
    assert ingest.counts["messages"] == len(NASTY) + 1
    assert ingest.rejections.total() == len(NASTY)
    assert set(ingest.rejections) <= {"not_json", "schema", "bad_timestamp"}


async def _float_seq(registry: Registry, broker: Mosquitto, influx: InfluxDB) -> tuple:
    address = BrokerAddress.parse(broker.url)
    one = {"v": 1, "node": NODE, "readings": [_reading_doc(1), dict(_reading_doc(2),
                                                                     quantity="SO2")]}  # fmt: skip
    poisoned = orjson.dumps(one).replace(b'"seq":2', b'"seq":2.0')
    other = encode_data("yy-0002", [Reading("yy-0002", 1, int(NOW_MS), "NO2", 9.0, "ug/m3", "N")])
    async with InfluxV1Sink(influx.url) as sink:
        config = IngestConfig(address, flush_interval_s=0.05)
        async with IngestService(config, registry, Detector(), sink, _ignore,
                                 clock=lambda: NOW_S) as ingest:  # fmt: skip
            async with MqttLink(address, "test-float-seq") as link:
                await link.publish(TOPIC, poisoned, qos=1)
                await link.publish("tw/v1/yiyuan/nanma/dongli/yy-0002/data", other, qos=1)
            async with asyncio.timeout(20):
                while ingest.counts["messages"] < 2:
                    await asyncio.sleep(0.02)
            await ingest.wait_for_readings(3, timeout_s=5)
        in_tsdb = await count_stored(sink)
    return ingest, in_tsdb


def test_a_float_seq_does_not_lose_readings_counted_as_stored(
    mosquitto: Mosquitto, influxdb: InfluxDB, county: Registry
) -> None:
    ingest, in_tsdb = asyncio.run(_float_seq(county, mosquitto, influxdb))
    assert (in_tsdb, ingest.counts["tsdb_rejected"]) == ({"yy-0002": 1, NODE: 2}, 0) or (
        in_tsdb, ingest.rejections["schema"]) == ({"yy-0002": 1}, 1)  # fmt: skip
    assert sum(in_tsdb.values()) == ingest.counts["stored"]

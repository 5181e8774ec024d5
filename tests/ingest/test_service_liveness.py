"""IngestService liveness through a real broker and InfluxDB: the deadman (silence is
offline, NaN and a seq gap are not) and the nodes' retained status messages."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from detect import Detector, ExceedanceEvent
from ingest import RULE_OFFLINE, InfluxV1Sink, IngestConfig, IngestService, stored_readings
from tianwang.codec import Reading, Status, encode_data, encode_status
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.registry import Registry, parse_registry
from tianwang.services import InfluxDB, Mosquitto

T0_S = 1795766400.0
STEP_S = 0.3  # the clock advances this much per round; the silence limit is 0.5 s
KEEP, GONE, NAN = "n-keep", "n-gone", "n-nan"
GONE_ROUNDS = {0, 1, 5, 6, 7}  # silent in rounds 2-4: 0.9 s at the round 4 check
ROUNDS = 8


def three_nodes() -> Registry:
    def node(node_id: str, lat: float) -> dict[str, Any]:
        return {"id": node_id, "lat": lat, "lon": 118.0, "sampling_s": 1,
                "quantities": ["PM2.5", "NO2"]}  # fmt: skip

    return parse_registry({
        "county": {"id": "tc", "name": "test county"},
        "townships": [{"id": "t1", "villages": [{
            "id": "v1", "officer": {"id": "o1", "name": "officer"},
            "nodes": [node(KEEP, 36.1), node(GONE, 36.2), node(NAN, 36.3)],
        }]}],
    })  # fmt: skip


class SteppedClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


async def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


def gauge(ingest: IngestService, name: str) -> float:
    for family in text_string_to_metric_families(ingest.metrics.text()):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    raise AssertionError(f"{name} not exposed")


def events_total(ingest: IngestService, kind: str) -> float:
    for family in text_string_to_metric_families(ingest.metrics.text()):
        for sample in family.samples:
            if sample.name == "tianwang_ingest_events_total" and sample.labels == {
                "rule": RULE_OFFLINE, "kind": kind}:  # fmt: skip
                return sample.value
    return 0.0


async def _deadman(broker: Mosquitto, influx: InfluxDB) -> dict[str, Any]:
    registry = three_nodes()
    clock = SteppedClock(T0_S)
    events: list[ExceedanceEvent] = []

    async def on_events(batch: list[ExceedanceEvent]) -> None:
        events.extend(batch)

    config = IngestConfig(BrokerAddress.parse(broker.url), flush_interval_s=0.05,
                          offline_after_periods=0.01, offline_min_s=0.5,
                          deadman_interval_s=0.1)  # fmt: skip
    topics = {n: registry.nodes[n].place.topic("data") for n in (KEEP, GONE, NAN)}
    gauges: list[float] = []
    sent = 0
    async with InfluxV1Sink(influx.url) as sink:
        async with IngestService(config, registry, Detector(), sink, on_events,
                                 clock=clock) as ingest:  # fmt: skip
            checks: list[float] = []
            check = ingest.deadman.check

            def counted_check() -> list[ExceedanceEvent]:
                checks.append(clock.now)
                return check()

            ingest.deadman.check = counted_check  # type: ignore[method-assign]

            async def a_check_at_this_time() -> None:
                before = len(checks)
                await wait_until(lambda: len(checks) >= before + 2)  # a whole check after now

            async with MqttLink(BrokerAddress.parse(broker.url), "test-nodes") as link:
                for r in range(ROUNDS):
                    clock.now = T0_S + r * STEP_S
                    await a_check_at_this_time()
                    ts_ms = round(clock.now * 1000)
                    for node in (KEEP, GONE, NAN):
                        if node == GONE and r not in GONE_ROUNDS:
                            continue
                        seq = 3 * r if node == NAN else r  # NAN: a gap of 2 seqs every time
                        value = math.nan if node == NAN else 10.0 + r
                        flag = "D" if node == NAN else "N"
                        payload = encode_data(node, [Reading(node, seq, ts_ms, "PM2.5", value,
                                                             "ug/m3", flag)])  # fmt: skip
                        await link.publish(topics[node], payload, qos=1)
                        sent += 1
                    await wait_until(lambda n=sent: ingest.counts["messages"] == n)
                    await a_check_at_this_time()
                    gauges.append(gauge(ingest, "tianwang_ingest_nodes_offline"))
            assert await ingest.wait_for_readings(sent, timeout_s=20)
            opens, closes = events_total(ingest, "open"), events_total(ingest, "close")
        stored = {n: await stored_readings(sink, n) for n in (KEEP, GONE, NAN)}
    return {"ingest": ingest, "events": events, "gauges": gauges, "stored": stored,
            "opens": opens, "closes": closes, "sent": sent}  # fmt: skip


def test_deadman_silence_is_offline_nan_and_seq_gaps_are_not(
    mosquitto: Mosquitto, influxdb: InfluxDB
) -> None:
    got = asyncio.run(_deadman(mosquitto, influxdb))
    ingest = got["ingest"]
    offline = [e for e in got["events"] if e.rule == RULE_OFFLINE]
    assert [(e.node, e.kind) for e in offline] == [(GONE, "open"), (GONE, "close")]
    opened, closed = offline
    # Silent since round 1 (T0 + 0.3 s); found at the check of round 3 (0.6 s of silence).
    assert opened.episode_start_s == int(T0_S + 1 * STEP_S)
    assert opened.limit == 0.5 and opened.unit == "s"
    assert opened.value == round(3 * STEP_S - 1 * STEP_S, 1)
    assert closed.hour_start_s == int(T0_S + 5 * STEP_S)
    assert ingest.counts["offline_events"] == 2
    assert (got["opens"], got["closes"]) == (1, 1)
    # The gauge, read after each round's deadman check: offline in rounds 3 and 4 only.
    assert got["gauges"] == [0, 0, 0, 1, 1, 0, 0, 0]
    assert ingest.deadman.offline == {}
    # NaN readings are stored without a value, with their flag and seq; the seq gaps between
    # them are not duplicates, not rejections and not silence.
    nan_rows = sorted((r.seq, r.value, r.flag) for r in got["stored"][NAN])
    assert nan_rows == [(3 * r, None, "D") for r in range(ROUNDS)]
    assert sorted(r.seq for r in got["stored"][KEEP]) == list(range(ROUNDS))
    assert sorted(r.seq for r in got["stored"][GONE]) == sorted(GONE_ROUNDS)
    assert ingest.counts["stored"] == got["sent"]
    assert dict(ingest.rejections) == {}
    assert ingest.counts["duplicate"] == ingest.counts["too_old"] == 0


# -- retained status --------------------------------------------------------------------------

STATUS_NODE = "yy-0001"


def status_topic(registry: Registry, node: str) -> str:
    return registry.nodes[node].place.topic("status")


async def _status(registry: Registry, broker: Mosquitto, influx: InfluxDB) -> dict[str, Any]:
    address = BrokerAddress.parse(broker.url)
    online = encode_status(Status(STATUS_NODE, "online", int(T0_S * 1000)))
    will = encode_status(Status("yy-0004", "offline", None))  # the last will: no ts
    impostor = encode_status(Status("yy-0002", "online", int(T0_S * 1000)))
    async with MqttLink(address, "test-edges") as link:  # retained before ingest subscribes
        await link.publish(status_topic(registry, STATUS_NODE), online, qos=1, retain=True)
        await link.publish(status_topic(registry, "yy-0004"), will, qos=1, retain=True)
        await link.publish(status_topic(registry, "yy-0003"), impostor, qos=1, retain=True)
    config = IngestConfig(address, flush_interval_s=0.05)
    sink = InfluxV1Sink(influx.url)
    service = IngestService(config, registry, Detector(), sink, _ignore, clock=lambda: T0_S)
    async with sink, service as ingest:
        await wait_until(lambda: ingest.counts["status"] + ingest.rejections.total() >= 3)
        said_at_start = dict(ingest.deadman.said)
        async with MqttLink(address, "test-edge") as link:  # a later status replaces it
            offline = encode_status(Status(STATUS_NODE, "offline", int(T0_S * 1000) + 5))
            await link.publish(status_topic(registry, STATUS_NODE), offline, qos=1)
        await wait_until(lambda: ingest.counts["status"] >= 3)
    return {"ingest": ingest, "said_at_start": said_at_start, "impostor": impostor}


async def _ignore(events: list[object]) -> None:
    return None


def test_retained_status_is_kept_and_a_status_on_another_path_is_refused(
    mosquitto: Mosquitto, influxdb: InfluxDB, county: Registry
) -> None:
    got = asyncio.run(_status(county, mosquitto, influxdb))
    ingest = got["ingest"]
    assert got["said_at_start"] == {STATUS_NODE: "online", "yy-0004": "offline"}
    assert ingest.deadman.said == {STATUS_NODE: "offline", "yy-0004": "offline"}
    assert dict(ingest.rejections) == {"topic_mismatch": 1}
    (rejected,) = ingest.quarantine.recent
    assert rejected.topic == status_topic(county, "yy-0003")
    assert rejected.payload == got["impostor"]
    # What a node says is kept apart from what ingest observes: no data messages, no events.
    assert ingest.counts["messages"] == 0
    assert ingest.deadman.offline == {}

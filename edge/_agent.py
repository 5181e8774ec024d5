"""The edge agent: sample on a clock, number and store in the outbox, publish with QoS 1.

Sampling and sending are separate tasks: sampling never waits for the network, and the
sender empties the outbox whenever the broker is reachable, in rate-limited batches after an
outage so that a fleet coming back together does not flatten the broker.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edge._config import AgentConfig, Settings
from edge._driver import Driver, PushSource, SensorValue
from edge._health import health_report
from edge._outbox import Outbox
from edge._remote import RemoteConfig, encode_cfg_ack, parse_remote_config, readable_id
from tianwang.aio import cancel_and_wait
from tianwang.clock import Clock
from tianwang.codec import FLAGS, Reading, Status, encode_data, encode_status
from tianwang.mqtt import LastWill, LinkError, MqttLink
from tianwang.quantities import UnitError, quantity_table

log = logging.getLogger(__name__)

# Module-level so that tests can shrink them.
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 60.0


@dataclass(slots=True)
class AgentStats:
    samples: int = 0
    readings_stored: int = 0
    readings_published: int = 0
    messages_published: int = 0
    reconnects: int = 0
    driver_errors: int = 0
    unit_errors: int = 0
    cfg_applied: int = 0
    cfg_rejected: int = 0
    published_seqs: list[int] = field(default_factory=list)  # only with track_seqs


def _status(node: str, state: str, now: float | None) -> bytes:
    return encode_status(Status(node, state, None if now is None else round(now * 1000)))


class EdgeAgent:
    """One node.

    Args:
        config: the node's configuration (place, broker, settings, outbox, backlog).
        drivers: polled drivers, read together at every sampling tick.
        clock: wall clock on a node, an accelerated one in simulation.
        outbox: defaults to the one ``config.outbox`` describes.
        push_sources: sources that deliver samples when they like (HJ 212 bridge).
        track_seqs: keep every acknowledged seq in ``stats`` (tests).
        link_factory: builds the MQTT connection (the simulator injects network faults here).
    """

    def __init__(self, config: AgentConfig, drivers: Sequence[Driver], clock: Clock, *,
                 outbox: Outbox | None = None, push_sources: Sequence[PushSource] = (),
                 track_seqs: bool = False,
                 link_factory: Callable[..., MqttLink] = MqttLink) -> None:  # fmt: skip
        self.config = config
        self.settings: Settings = config.settings
        self.drivers = list(drivers)
        self.push_sources = list(push_sources)
        self.clock = clock
        self.outbox = outbox or Outbox(
            config.outbox.path,
            config.node,
            max_readings=config.outbox.max_readings,
            synchronous=config.outbox.synchronous,
        )  # type: ignore[arg-type]
        self.stats = AgentStats()
        self.track_seqs = track_seqs
        self.link_factory = link_factory
        self.cfg_id: str | None = None
        self._topic = {k: config.place.topic(k) for k in ("data", "status", "cfg", "cfg_ack",
                                                          "health")}  # fmt: skip
        self._factors: dict[tuple[str, str], float] = {}
        self._started = time.monotonic()
        self._backoff_s = RECONNECT_MIN_S
        self._pending = asyncio.Event()
        self._stop = asyncio.Event()
        self._sampling_done = False

    # --- sampling ---------------------------------------------------------------------------

    def _factor(self, value: SensorValue) -> float:
        key = (value.quantity, value.unit)
        if key not in self._factors:
            self._factors[key] = quantity_table().factor(*key)
        return self._factors[key]

    def _condition(self, v: SensorValue) -> tuple[str, float, str, str] | None:
        """Calibrate in the sensor's unit, convert to the canonical unit, pre-check. A value
        of an unknown quantity is dropped (counted); one in an unknown unit becomes a fault."""
        quantity = quantity_table().quantities.get(v.quantity)
        if quantity is None:
            self.stats.unit_errors += 1
            log.warning("node %s: driver reported unknown quantity %r", self.config.node,
                        v.quantity)  # fmt: skip
            return None
        canonical = quantity.unit
        try:
            factor = self._factor(v)
        except UnitError as exc:
            self.stats.unit_errors += 1
            log.warning("node %s: %s", self.config.node, exc)
            return v.quantity, math.nan, canonical, "D"
        cal = self.settings.calibration.get(v.quantity)
        value = v.value if cal is None else cal.gain * v.value + cal.offset
        value *= factor
        flag = v.flag if v.flag in FLAGS else "D"  # a flag we cannot interpret: not valid data
        bounds = self.settings.precheck.get(v.quantity)
        if bounds and flag == "N" and not bounds[0] <= value <= bounds[1]:
            flag = "T"  # HJ 212: over range
        return v.quantity, value, canonical, flag

    def store(self, sample_time: float, values: list[SensorValue]) -> list[Reading]:
        """Condition, number and store one sample's values; the sender is woken."""
        rows = [row for row in map(self._condition, values) if row is not None]
        readings = self.outbox.put(round(sample_time * 1000), rows)
        self.stats.samples += 1
        self.stats.readings_stored += len(readings)
        self._pending.set()
        return readings

    async def sample(self, sample_time: float) -> list[Reading]:
        """Read every polled driver once; a failing driver is counted, the others still count."""
        results = await asyncio.gather(*(d.read(sample_time) for d in self.drivers),
                                       return_exceptions=True)  # fmt: skip
        values: list[SensorValue] = []
        for driver, result in zip(self.drivers, results, strict=True):
            if isinstance(result, BaseException):
                self.stats.driver_errors += 1
                log.warning("node %s: driver %r failed: %r", self.config.node, driver, result)
            else:
                values += result
        return self.store(sample_time, values)

    async def _sample_loop(self, start: float, until: float) -> None:
        tick = start
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            while tick < until:
                sleeping = asyncio.ensure_future(self.clock.sleep_until(tick))
                await asyncio.wait({sleeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping.done():
                    sleeping.cancel()
                    return
                await self.sample(tick)
                tick += self.settings.sampling_s
        finally:
            stopping.cancel()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    def stop(self) -> None:
        """Stop sampling; ``run`` then delivers what the outbox holds and returns. What cannot
        be delivered stays in the (persistent) outbox for the next start."""
        self._stop.set()

    async def _push_loop(self, source: PushSource) -> None:
        async for sample in source.samples():
            self.store(sample.sample_time, sample.values)

    # --- sending ----------------------------------------------------------------------------

    async def _deliver(self, link: MqttLink, receiver: asyncio.Task[None]) -> None:
        """Publish the outbox, oldest first, until sampling is done and the outbox is empty."""
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.config.backlog.max_messages_per_s
        next_allowed = loop.time()
        while True:
            readings = self.outbox.peek(self.config.backlog.batch_readings)
            if not readings:
                if self._sampling_done:
                    return
                self._pending.clear()
                waiter = asyncio.ensure_future(self._pending.wait())
                await asyncio.wait({waiter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if receiver.done():
                    receiver.result()  # the link died while idle: raise its error
                    raise LinkError("receiver ended")
                continue
            await asyncio.sleep(max(0.0, next_allowed - loop.time()))
            next_allowed = max(next_allowed, loop.time()) + interval
            await link.publish(self._topic["data"], encode_data(self.config.node, readings))
            self.outbox.ack(readings)
            self.stats.messages_published += 1
            self.stats.readings_published += len(readings)
            if self.track_seqs:
                self.stats.published_seqs.extend(r.seq for r in readings)

    async def _receive(self, link: MqttLink) -> None:
        async for topic, payload in link.messages():
            if topic == self._topic["cfg"]:
                await self._apply_cfg(link, payload)

    async def _apply_cfg(self, link: MqttLink, payload: bytes) -> None:
        """Validate a remote configuration; apply it whole or keep the old one, and say so."""
        try:
            remote: RemoteConfig = parse_remote_config(payload, self.settings)
        except ValueError as exc:
            self.stats.cfg_rejected += 1
            log.warning("node %s: cfg rejected: %s", self.config.node, exc)
            ack = encode_cfg_ack(self.config.node, readable_id(payload), "rejected", str(exc),
                                 self.clock.now())  # fmt: skip
            await link.publish(self._topic["cfg_ack"], ack)
            return
        if remote.id == self.cfg_id:
            return  # the retained cfg again, after a reconnect
        self.settings, self.cfg_id = remote.settings, remote.id
        self.stats.cfg_applied += 1
        log.info("node %s: cfg %s applied", self.config.node, remote.id)
        ack = encode_cfg_ack(self.config.node, remote.id, "applied", None, self.clock.now())
        await link.publish(self._topic["cfg_ack"], ack)

    async def _health_loop(self, link: MqttLink) -> None:
        while True:
            report = health_report(self, uptime_s=time.monotonic() - self._started)
            await link.publish(self._topic["health"], report, qos=0)
            await asyncio.sleep(self.config.health_s)  # real seconds, also in simulation

    async def _session(self) -> None:
        node = self.config.node
        will = LastWill(self._topic["status"], _status(node, "offline", None))
        async with self.link_factory(self.config.broker, f"tw-edge-{node}", will=will,
                                     tls=self.config.tls,
                                     keepalive_s=self.config.keepalive_s) as link:  # fmt: skip
            self._backoff_s = RECONNECT_MIN_S
            await link.subscribe(self._topic["cfg"], qos=1)
            await link.publish(self._topic["status"], _status(node, "online", self.clock.now()),
                               retain=True)  # fmt: skip
            receiver = asyncio.create_task(self._receive(link))
            health = asyncio.create_task(self._health_loop(link))
            try:
                await self._deliver(link, receiver)
            finally:
                await cancel_and_wait(receiver, health)
            await link.publish(self._topic["status"], _status(node, "offline", self.clock.now()),
                               retain=True)  # fmt: skip

    async def _send_loop(self) -> None:
        while True:
            try:
                await self._session()
                return
            except Exception as exc:  # the sender must outlive any failure; the outbox waits
                self.stats.reconnects += 1
                delay = self._backoff_s * random.uniform(0.5, 1.0)
                if isinstance(exc, LinkError):
                    log.warning("node %s: broker link lost (%s); retry in %.1f s",
                                self.config.node, exc, delay)  # fmt: skip
                else:
                    log.exception("node %s: sender failed; retry in %.1f s", self.config.node,
                                  delay)  # fmt: skip
                await asyncio.sleep(delay)
                self._backoff_s = min(self._backoff_s * 2, RECONNECT_MAX_S)

    # --- lifecycle --------------------------------------------------------------------------

    def first_tick(self, now: float) -> float:
        """The next whole multiple of the sampling period (samples line up across nodes)."""
        period = self.settings.sampling_s
        return math.ceil(now / period) * period

    async def run(self, start: float | None = None, until: float = math.inf) -> AgentStats:
        """Sample at ``start``, then every sampling period while ``< until``; deliver what is
        in the outbox; then mark the node offline. With the defaults it runs until cancelled."""
        start = self.first_tick(self.clock.now()) if start is None else start
        self._sampling_done = False
        sender = asyncio.create_task(self._send_loop())
        pushers = [asyncio.create_task(self._push_loop(s)) for s in self.push_sources]
        try:
            await self._sample_loop(start, until)
            self._sampling_done = True
            self._pending.set()
            await sender
        finally:
            await cancel_and_wait(sender, *pushers)
        return self.stats

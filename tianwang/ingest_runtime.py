"""``tianwang ingest``: one ingest worker as a long-running service (composition root).

Broker -> IngestService -> TSDB sink (InfluxDB 1.x or the v2 API, through a disk spool) and
detector -> grid router -> incident store. The detector's state is checkpointed on a period
and at exit, and restored at start, so a restart keeps the day's statistics. SIGTERM and
SIGINT stop it cleanly (flush, checkpoint, disconnect: what was not acknowledged stays with
the broker's session).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from detect import Detector, DetectorConfig, warm_up
from grid import (
    EmailChannel,
    Escalator,
    IncidentRouter,
    IncidentStore,
    MqttChannel,
    Notifier,
    SmtpConfig,
    WebhookChannel,
    webhook_secrets_from_env,
)
from ingest import (
    DetectorJournal,
    HourlyAqi,
    InfluxV1Sink,
    InfluxV2Sink,
    IngestConfig,
    IngestMetrics,
    IngestService,
    SinkError,
    SpoolingSink,
    partition_filters,
    worker_config,
)
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.registry import Registry, load_registry

log = logging.getLogger(__name__)

AQI_INTERVAL_S = 300.0  # how often worker 0 recomputes the last hours' AQI (InfluxDB 1.x)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    grid: Path
    broker: str
    var: Path  # spool, quarantine, checkpoint, incident store
    influx_url: str | None = None  # InfluxDB 1.x
    v2_url: str | None = None  # the InfluxDB v2 write API
    v2_token: str = ""
    v2_org: str = "tianwang"
    database: str = "tianwang"
    workers: int = 1
    worker: int = 0
    client_id: str = "tianwang-ingest"
    metrics_port: int | None = None
    spool_max_mb: int = 1024
    checkpoint_s: float = 60.0
    incidents_url: str | None = None
    escalation_tick_s: float | None = None  # None: the Escalator's own interval


def _sink(options: IngestOptions) -> InfluxV1Sink | InfluxV2Sink:
    if options.v2_url:
        return InfluxV2Sink(options.v2_url, options.v2_token, options.v2_org, options.database)
    if options.influx_url:
        return InfluxV1Sink(options.influx_url, options.database)
    raise ValueError("give --influx (InfluxDB 1.x) or --influx-v2 (the v2 write API)")


def _detector(registry: Registry, checkpoint: Path | None) -> Detector:
    config = DetectorConfig(timezone=registry.timezone)
    if checkpoint is not None:
        log.info("restoring the detector from %s", checkpoint)
        return Detector.restore(checkpoint, config, registry.permits)
    return Detector(config, registry.permits)


async def run_ingest(options: IngestOptions, stop: asyncio.Event | None = None) -> dict[str, int]:
    """Run until ``stop`` is set (or SIGTERM/SIGINT); returns the intake counters."""
    registry = load_registry(options.grid)
    work = options.var / f"ingest-{options.worker}"
    work.mkdir(parents=True, exist_ok=True)
    # Checkpoint plus journal: every batch acknowledged before a crash is in the restored state.
    journal = DetectorJournal(work)
    warm_up()  # the kernels' compile or cache load now, not in the message loop later
    detector, replayed = journal.load(lambda checkpoint: _detector(registry, checkpoint))
    store = IncidentStore(options.incidents_url or f"sqlite:///{work / 'incidents.sqlite'}")
    # its notifier is set once the alert link is up
    tick = {} if options.escalation_tick_s is None else {"interval_s": options.escalation_tick_s}
    escalator = Escalator(registry, store, **tick)
    router = IncidentRouter(registry, store, lambda routed: escalator.wake())
    base = IngestConfig(BrokerAddress.parse(options.broker), client_id=options.client_id,
                        quarantine_path=work / "quarantine.jsonl")  # fmt: skip
    config = (worker_config(base, partition_filters(registry, options.workers, options.worker),
                            options.worker) if options.workers > 1 else base)  # fmt: skip
    metrics = IngestMetrics()
    server = metrics.serve(port=options.metrics_port) if options.metrics_port is not None else None
    stop = stop or _stop_on_signals()
    tsdb = _sink(options)
    spool = SpoolingSink(tsdb, work / "spool", options.spool_max_mb << 20)
    alerts = MqttLink(BrokerAddress.parse(options.broker), f"{config.client_id}-alerts")
    try:
        service = IngestService(config, registry, detector, spool, router.handle_async,
                                metrics=metrics, on_detected=journal.record)  # fmt: skip
        service.remember(journal.seen)  # a redelivery of a replayed reading is a duplicate
        if replayed:  # events of the replayed batches: the router joins them to their incidents
            await router.handle_async(replayed)
        async with alerts, spool, service as ingest:
            escalator.notifier = _notifier(alerts, registry.county)
            escalation = asyncio.create_task(escalator.run(stop))
            tasks = [escalation]
            if isinstance(tsdb, InfluxV1Sink) and options.worker == 0:  # InfluxQL reads
                tasks.append(asyncio.create_task(_hourly_aqi(HourlyAqi(tsdb, spool, registry),
                                                             stop)))  # fmt: skip
            log.info("ingest worker %d of %d on %s", options.worker, options.workers,
                     ", ".join(config.topic_filters))  # fmt: skip
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), options.checkpoint_s)
                journal.checkpoint(detector)
            await ingest.flush()
            journal.checkpoint(detector)
            await asyncio.gather(*tasks)
            # Readings in the detector's state over every run on this folder (restarts too).
            return {**ingest.counts, "detector_readings": journal.readings,
                    "detector_replayed": journal.replayed, "spooled_lines": spool.spooled_lines,
                    "spool_replayed_lines": spool.replayed_lines}  # fmt: skip
    finally:
        journal.close()
        if server is not None:
            server.close()


async def _hourly_aqi(job: HourlyAqi, stop: asyncio.Event) -> None:
    """The ``aqi`` measurement: the last hours recomputed every AQI_INTERVAL_S until stop."""
    while not stop.is_set():
        try:
            await job.update(time.time())
        except SinkError as exc:
            log.warning("hourly AQI not written: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), AQI_INTERVAL_S)


def _notifier(alerts: MqttLink, county: str) -> Notifier:
    """Officers are told on their MQTT alert topic, by signed webhook where they have a secret
    (TIANWANG_WEBHOOK_SECRET_<officer>), and by e-mail when SMTP is configured (TIANWANG_SMTP_*;
    grid/_notify.py)."""
    channels: list[MqttChannel | WebhookChannel | EmailChannel] = [
        MqttChannel(alerts, county), WebhookChannel(webhook_secrets_from_env())
    ]  # fmt: skip
    smtp = SmtpConfig.from_env()
    if smtp is not None:
        channels.append(EmailChannel(smtp))
    return Notifier(channels)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def main_ingest(options: IngestOptions) -> int:
    counts = asyncio.run(run_ingest(options))
    print(json.dumps({"ingest": "stopped", **counts}))
    return 0

"""Ingest: the MQTT subscriber service between the broker and the detector and TSDB."""

from ingest._influx import InfluxV1Sink, SinkError
from ingest._lines import MEASUREMENT
from ingest._liveness import RULE_OFFLINE
from ingest._partition import partition_filters
from ingest._quarantine import Quarantine, Rejected
from ingest._service import IngestConfig, IngestService, worker_config

__all__ = [
    "MEASUREMENT",
    "RULE_OFFLINE",
    "InfluxV1Sink",
    "IngestConfig",
    "IngestService",
    "Quarantine",
    "Rejected",
    "SinkError",
    "partition_filters",
    "worker_config",
]

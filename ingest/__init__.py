"""Ingest: the MQTT subscriber service between the broker and the detector and TSDB."""

from ingest._hourly_aqi import HourlyAqi
from ingest._influx import InfluxV1Sink, InfluxV2Sink, Sink, SinkError, SinkRejected
from ingest._journal import DetectorJournal
from ingest._lines import (
    AQI_MEASUREMENT,
    INGEST_MEASUREMENT,
    INGEST_REJECTED_MEASUREMENT,
    MEASUREMENT,
    NODE_HEALTH_MEASUREMENT,
    NODE_STATE_MEASUREMENT,
    SAMPLE_MEASUREMENT,
    node_tags,
    sample_lines,
)
from ingest._liveness import RULE_OFFLINE
from ingest._metrics import IngestMetrics
from ingest._partition import partition_filters
from ingest._quarantine import Quarantine, Rejected
from ingest._readback import StoredReading, count_stored, stored_readings
from ingest._service import IngestConfig, IngestService, worker_config
from ingest._spool import SpoolingSink

__all__ = [
    "AQI_MEASUREMENT",
    "INGEST_MEASUREMENT",
    "INGEST_REJECTED_MEASUREMENT",
    "MEASUREMENT",
    "NODE_HEALTH_MEASUREMENT",
    "NODE_STATE_MEASUREMENT",
    "RULE_OFFLINE",
    "SAMPLE_MEASUREMENT",
    "DetectorJournal",
    "HourlyAqi",
    "InfluxV1Sink",
    "InfluxV2Sink",
    "IngestConfig",
    "IngestMetrics",
    "IngestService",
    "Quarantine",
    "Rejected",
    "Sink",
    "SinkError",
    "SinkRejected",
    "SpoolingSink",
    "StoredReading",
    "count_stored",
    "node_tags",
    "partition_filters",
    "sample_lines",
    "stored_readings",
    "worker_config",
]

"""Ingest: the MQTT subscriber service between the broker and the detector and TSDB."""

from ingest._influx import InfluxV1Sink, InfluxV2Sink, Sink, SinkError, SinkRejected
from ingest._lines import MEASUREMENT, SAMPLE_MEASUREMENT, node_tags, sample_lines
from ingest._service import IngestConfig, IngestService, Rejected
from ingest._spool import SpoolingSink

__all__ = [
    "MEASUREMENT",
    "SAMPLE_MEASUREMENT",
    "InfluxV1Sink",
    "InfluxV2Sink",
    "IngestConfig",
    "IngestService",
    "Rejected",
    "Sink",
    "SinkError",
    "SinkRejected",
    "SpoolingSink",
    "node_tags",
    "sample_lines",
]

"""Ingest: the MQTT subscriber service between the broker and the detector and TSDB."""

from ingest._influx import InfluxV1Sink, SinkError
from ingest._lines import MEASUREMENT
from ingest._service import IngestConfig, IngestService, Rejected

__all__ = ["MEASUREMENT", "InfluxV1Sink", "IngestConfig", "IngestService", "Rejected", "SinkError"]

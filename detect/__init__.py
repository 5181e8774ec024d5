"""Streaming detector: regulatory exceedances over columnar batches, Numba kernels inside.

The rest of the project imports only these names.
"""

from detect._anomaly import (
    AnomalyConfig,
    AnomalyDetector,
    AnomalyFlags,
    AnomalyRule,
    anomaly_scores,
)
from detect._anomaly_events import ANOMALY_RULE_NAMES
from detect._aqi import DailyAqi, hj633
from detect._batch import ReadingBatch
from detect._detector import (
    RULE_1H,
    RULE_8H_MAX,
    RULE_24H,
    RULE_24H_WARNING,
    Detector,
    DetectorConfig,
    DetectorStats,
)
from detect._drift import DriftConfig, NeighbourDrift
from detect._events import ExceedanceEvent
from detect._hourly import ClosedHours, HourlyMeans
from detect._regulatory import ClosedDays, ClosedMax8h, DailyMeans, EightHourMeans, MovingMeans
from detect._warm import warm_up

__all__ = [
    "ANOMALY_RULE_NAMES",
    "RULE_1H",
    "RULE_8H_MAX",
    "RULE_24H",
    "RULE_24H_WARNING",
    "AnomalyConfig",
    "AnomalyDetector",
    "AnomalyFlags",
    "AnomalyRule",
    "ClosedDays",
    "ClosedHours",
    "ClosedMax8h",
    "DailyAqi",
    "DailyMeans",
    "Detector",
    "DetectorConfig",
    "DetectorStats",
    "DriftConfig",
    "EightHourMeans",
    "ExceedanceEvent",
    "HourlyMeans",
    "MovingMeans",
    "NeighbourDrift",
    "ReadingBatch",
    "anomaly_scores",
    "hj633",
    "warm_up",
]

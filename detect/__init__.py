"""Streaming detector: regulatory exceedances over columnar batches, Numba kernels inside.

The rest of the project imports only these names.
"""

from detect._batch import ReadingBatch
from detect._detector import RULE_1H, Detector, DetectorConfig, DetectorStats
from detect._events import ExceedanceEvent
from detect._hourly import ClosedHours, HourlyMeans

__all__ = [
    "RULE_1H",
    "ClosedHours",
    "Detector",
    "DetectorConfig",
    "DetectorStats",
    "ExceedanceEvent",
    "HourlyMeans",
    "ReadingBatch",
]

"""tianwang: contracts shared by every subsystem.

The topic scheme, the payload codec, the node registry, the clock and configuration
loading live here, so that edge, ingest, detect, grid, dashboards and firmware_sim agree
on them without importing each other.
"""

__version__ = "0.1.0"

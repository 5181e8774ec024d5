"""Grid: incidents, routed to the officer accountable for the place, kept in a store."""

from grid._router import IncidentRouter, Notifier, RoutedIncident
from grid._store import (
    ACTIVE_STATES,
    LEVELS,
    STATES,
    TRANSITIONS,
    AuditEntry,
    Extension,
    Incident,
    IncidentDraft,
    IncidentError,
    IncidentStore,
    UnknownIncident,
    load_findings,
    migrate,
)

__all__ = [
    "ACTIVE_STATES",
    "LEVELS",
    "STATES",
    "TRANSITIONS",
    "AuditEntry",
    "Extension",
    "Incident",
    "IncidentDraft",
    "IncidentError",
    "IncidentRouter",
    "IncidentStore",
    "Notifier",
    "RoutedIncident",
    "UnknownIncident",
    "load_findings",
    "migrate",
]

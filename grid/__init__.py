"""Grid: incidents, routed to the officer accountable for the place, kept in a store."""

from grid._router import IncidentRouter, Notifier, RoutedIncident
from grid._store import Incident, IncidentStore

__all__ = ["Incident", "IncidentRouter", "IncidentStore", "Notifier", "RoutedIncident"]

"""Grafana dashboards as code (grafana-foundation-sdk), provisioned and pushed.

Not built yet: the skeleton stores readings under the names in docs/protocol.md, which the
dashboards will query.
"""

__all__: list[str] = []
